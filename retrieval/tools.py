"""The retrieval tools: plain typed functions that the assistant and the UI call.

Each tool takes the caller's Filters, whose `groups` are enforced in `visible_recordings`
below every tool: what a caller may not see is never read into a result, so it cannot leak
through any tool, query or filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from clipcite.retrieval.catalog import Recording
from clipcite.retrieval.filters import Filters, visible_recordings
from clipcite.retrieval.index import Hit, Index
from clipcite.retrieval.schema import AUDIO, FRAMES, MODALITIES, PASSAGES, SLIDES, TRANSCRIPT, Moment
from clipcite.retrieval.search import Like, Searcher, search
from clipcite.retrieval.speakers import Speaker, SpeakerError, SpeakerTurn


class NotFound(Exception):
    """No such recording for this caller (absent and forbidden look the same, on purpose)."""


def search_transcript(searcher: Searcher, query: str | Sequence[str], k: int = 10,
                      filters: Filters | None = None) -> list[Moment]:
    """Moments where the words spoken match the question (keywords and meaning)."""
    return search(searcher, query, k, filters, modalities=(TRANSCRIPT,))


def search_slides(searcher: Searcher, query: str | Sequence[str], k: int = 10,
                  filters: Filters | None = None) -> list[Moment]:
    """Moments where text on screen (slides, shared screens) matches the question."""
    return search(searcher, query, k, filters, modalities=(SLIDES,))


def search_frames(searcher: Searcher, query: str | Sequence[str], k: int = 10,
                  filters: Filters | None = None) -> list[Moment]:
    """Moments whose picture matches a description (CLIP); empty when CLIP is off."""
    if searcher.clip is None:
        return []
    return search(searcher, query, k, filters, modalities=(FRAMES,), methods=("dense",))


def search_audio(searcher: Searcher, query: str | Sequence[str], k: int = 10,
                 filters: Filters | None = None) -> list[Moment]:
    """Moments whose sound matches a description ("applause", "music"; CLAP); empty when off."""
    if searcher.clap is None:
        return []
    return search(searcher, query, k, filters, modalities=(AUDIO,), methods=("dense",))


def search_all(searcher: Searcher, query: str | Sequence[str], k: int = 10,
               filters: Filters | None = None) -> list[Moment]:
    """Every modality, keywords and meaning, all phrasings fused: the default search."""
    return search(searcher, query, k, filters)


def passages_about(searcher: Searcher, queries: Sequence[str], k: int = 5,
                   filters: Filters | None = None) -> list[Moment]:
    """The k passages (stretches of several turns) most like any of the question's phrasings,
    by meaning alone, best first; a Moment's score is the e5 cosine similarity. A question
    about a discussion ("what did marketing think of the flip top?") is closer to the
    stretch that holds it than to any one line. Passages hold no speaker: empty when the
    filters name one."""
    filters = filters or Filters()
    if filters.speaker or k <= 0:
        return []
    recordings = {r.gen: r for r in visible_recordings(searcher.index, filters) if r.gen}
    if not recordings:
        return []
    best: dict[str, Moment] = {}
    for query in dict.fromkeys(q for q in queries if q.strip()):
        vector = searcher.query_vector(PASSAGES, query)
        for hit in searcher.index.query(PASSAGES, vector, k, list(recordings)):
            rec = recordings.get(hit.metadata.get("gen", ""))
            if rec is None:
                continue
            moment = replace(_moment(rec, hit), score=1.0 - hit.distance)
            if hit.id not in best or moment.score > best[hit.id].score:
                best[hit.id] = moment
    return sorted(best.values(), key=lambda m: m.score, reverse=True)[:k]


class Example(Protocol):
    """A clip or screenshot to search by, as ingestion/example.py's read_example gives it
    (a protocol, so retrieval does not import the ingestion models)."""

    kind: str  # "audio" | "image"
    text: str  # the clip's words or the image's on-screen text ("" when none)
    voice: np.ndarray | None
    image: np.ndarray | None


def example_query(example: Example, question: str = "") -> str:
    """The words searched for an example: the caller's question, if any, then the example's."""
    return " ".join(filter(None, [question.strip(), example.text]))


def search_like(searcher: Searcher, example: Example, question: str = "", k: int = 10,
                filters: Filters | None = None, also: Sequence[str] = ()) -> list[Moment]:
    """Moments like an example: `clipcite search --like` and a file attached in the web chat.

    A clip's words are searched everywhere and moments in its voice rank higher; an image's
    on-screen text is looked for on screen (slides), and its picture in frames when CLIP is on.
    """
    modalities = MODALITIES
    if example.kind == "image":
        modalities = (SLIDES, *(() if example.image is None else (FRAMES,)))
    return search(searcher, [example_query(example, question), *also], k, filters,
                  modalities=modalities, like=Like(image=example.image, voice=example.voice))


@dataclass
class RecordingSummary:
    media_id: str
    title: str
    path: str
    duration: float | None
    recorded_at: float | None
    tags: list[str]
    segments: dict[str, int]


def list_recordings(searcher: Searcher, filters: Filters | None = None) -> list[RecordingSummary]:
    """The searchable recordings the caller may see, filtered like a search."""
    return [RecordingSummary(r.media_id, r.title, r.path, r.duration, r.recorded_at,
                             list(r.tags), dict(r.counts))
            for r in visible_recordings(searcher.index, filters or Filters())]


def get_context(searcher: Searcher, media_id: str, start: float, end: float,
                padding: float = 30.0, filters: Filters | None = None) -> list[Moment]:
    """The transcript (and slides) around a moment, in time order: what was said before/after."""
    rec = _visible(searcher, media_id, filters)
    return _lines(searcher.index, rec, (TRANSCRIPT, SLIDES), start - padding, end + padding)


def _visible(searcher: Searcher, media_id: str, filters: Filters | None) -> Recording:
    """The recording, if the caller's groups may see it and it is searchable."""
    allowed = {r.media_id: r for r in visible_recordings(
        searcher.index, Filters(groups=(filters or Filters()).groups))}
    rec = allowed.get(media_id)
    if rec is None or rec.gen is None:
        raise NotFound(f"no recording {media_id!r}")
    return rec


def _moment(rec: Recording, hit: Hit) -> Moment:
    return Moment(media_id=rec.media_id, path=rec.path, title=rec.title,
                  start=float(hit.metadata["start"]), end=float(hit.metadata["end"]), score=0.0,
                  modality=hit.modality, text=hit.text,
                  speaker=hit.metadata.get("speaker") or None)


def _lines(index: Index, rec: Recording, modalities: Sequence[str], lo: float = float("-inf"),
           hi: float = float("inf")) -> list[Moment]:
    # The stretch is read from the index, not filtered after reading every line of the
    # recording (a follow-up on a 90-minute meeting loaded ~1,500 segments).
    bounds = ([{"end": {"$gte": float(lo)}}] if lo != float("-inf") else []) + \
        ([{"start": {"$lte": float(hi)}}] if hi != float("inf") else [])
    where = bounds[0] if len(bounds) == 1 else ({"$and": bounds} if bounds else None)
    out = [_moment(rec, hit) for modality in modalities
           for hit in index.segments(modality, [rec.gen] if rec.gen else [], where)]
    out.sort(key=lambda m: (m.start, m.modality))
    return out


def recording_segments(searcher: Searcher, media_id: str,
                       filters: Filters | None = None) -> list[Moment]:
    """Every transcript segment of one recording, for summaries that must cover all of it."""
    return [m for m in get_context(searcher, media_id, 0.0, float("inf"), 0.0, filters)
            if m.modality == TRANSCRIPT]


def recording_lines_with_vectors(searcher: Searcher, media_id: str,
                                 filters: Filters | None = None
                                 ) -> tuple[list[Moment], np.ndarray]:
    """Every transcript segment of one recording in time order, with its stored text vector
    (rows in the same order), for choosing the lines that represent a long recording."""
    rec = _visible(searcher, media_id, filters)
    hits = searcher.index.segments(TRANSCRIPT, [rec.gen])
    found = searcher.index.vectors(TRANSCRIPT, [h.id for h in hits])
    hits = [h for h in hits if h.id in found]
    dim = next(iter(found.values())).shape[0] if found else 0
    vectors = np.stack([found[h.id] for h in hits]) if hits else np.zeros((0, dim), np.float32)
    return [_moment(rec, h) for h in hits], vectors


def find_recording(index: Index, ref: str, groups: frozenset[str] | None = None) -> Recording:
    """A searchable recording the caller may see, by media id, file path, file name or title.

    A title may also be a part of one, when only one recording's title holds it.
    """
    import os

    recs = visible_recordings(index, Filters(groups=groups))
    wanted = ref.strip()
    absolute = os.path.abspath(os.path.expanduser(wanted))
    for rec in recs:
        if wanted in (rec.media_id, rec.path) or rec.path == absolute:
            return rec
    named = [r for r in recs if wanted.casefold() in
             (Path(r.path).name.casefold(), Path(r.path).stem.casefold())]
    if len(named) == 1:
        return named[0]
    exact = [r for r in recs if r.title.casefold() == wanted.casefold()]
    partial = [r for r in recs if wanted.casefold() in r.title.casefold()]
    found = exact or partial
    if len(found) == 1:
        return found[0]
    if found:
        titles = "; ".join(r.title for r in found[:5])
        raise NotFound(f'"{ref}" matches several recordings ({titles}): give its path or id')
    raise NotFound(f'no indexed recording "{ref}" (see `clipcite status`)')


def transcript(index: Index, rec: Recording) -> list[Moment]:
    """Every transcript line of a recording found with find_recording (which checked access)."""
    return _lines(index, rec, (TRANSCRIPT,))


def speaker_turns(index: Index, rec: Recording) -> list[SpeakerTurn]:
    """Who spoke when in a recording, with names where known."""
    return index.speakers.turns(rec)


def speakers(index: Index, rec: Recording) -> list[Speaker]:
    """A recording's speakers: label, name (confirmed or suggested) and speaking time."""
    return index.speakers.speakers(rec)


def rename_speaker(index: Index, rec: Recording, speaker: str, name: str) -> Speaker:
    """Give a recording's speaker a name (or confirm a suggested one), in place.

    The stored segments' metadata changes (no re-embedding), so search results, the speaker
    filter and answers show the name at once, and the name's voice print grows by this speaker.
    """
    store = index.speakers
    found = store.find(rec, speaker)
    name = " ".join(name.split())
    if not name or len(name) > 80:
        raise SpeakerError("a speaker's name needs 1 to 80 characters")
    for other in store.speakers(rec):
        if other.label != found.label and other.shown.casefold() == name.casefold():
            raise SpeakerError(f'"{other.shown}" already names another speaker in {rec.title}')
    # Segments first, by their label: a crash before the catalog update is repaired by
    # running the same rename again, and never leaves segments under a name nobody has.
    index.set_speaker(rec, found.label, name)
    store.set_name(rec, found.label, name)
    return store.find(rec, name)


def slides(index: Index, rec: Recording) -> list[Moment]:
    """Every slide (text on screen) segment of a recording found with find_recording, in time
    order: where the pictures change, for a timeline of thumbnails."""
    return _lines(index, rec, (SLIDES,))
