"""The retrieval tools: plain typed functions that the assistant and the UI call.

Each tool takes the caller's Filters, whose `groups` are enforced in `visible_recordings`
below every tool: what a caller may not see is never read into a result, so it cannot leak
through any tool, query or filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.filters import Filters, visible_recordings
from retrieval.schema import FRAMES, SLIDES, TRANSCRIPT, Moment
from retrieval.search import Searcher, search


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


def search_all(searcher: Searcher, query: str | Sequence[str], k: int = 10,
               filters: Filters | None = None) -> list[Moment]:
    """Every modality, keywords and meaning, all phrasings fused: the default search."""
    return search(searcher, query, k, filters)


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
    allowed = {r.media_id: r for r in visible_recordings(
        searcher.index, Filters(groups=(filters or Filters()).groups))}
    rec = allowed.get(media_id)
    if rec is None or rec.gen is None:
        raise NotFound(f"no recording {media_id!r}")
    lo, hi = start - padding, end + padding
    out: list[Moment] = []
    for modality in (TRANSCRIPT, SLIDES):
        for hit in searcher.index.segments(modality, [rec.gen]):
            s, e = float(hit.metadata["start"]), float(hit.metadata["end"])
            if e >= lo and s <= hi:
                out.append(Moment(media_id=rec.media_id, path=rec.path, title=rec.title,
                                  start=s, end=e, score=0.0, modality=modality, text=hit.text,
                                  speaker=hit.metadata.get("speaker") or None))
    out.sort(key=lambda m: (m.start, m.modality))
    return out


def recording_segments(searcher: Searcher, media_id: str,
                       filters: Filters | None = None) -> list[Moment]:
    """Every transcript segment of one recording, for summaries that must cover all of it."""
    return [m for m in get_context(searcher, media_id, 0.0, float("inf"), 0.0, filters)
            if m.modality == TRANSCRIPT]
