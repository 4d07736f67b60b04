"""Moment search across the collections.

Each collection is searched on its own (transcript and slides by text embedding, frames by
CLIP when enabled); the ranked lists are fused by reciprocal rank fusion, which needs no score
calibration between collections whose distances mean different things.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.catalog import Recording
from retrieval.clip import ClipEncoder
from retrieval.encoders import TextEncoder
from retrieval.index import Hit, Index
from retrieval.schema import FRAMES, SLIDES, TRANSCRIPT, Moment

RRF_K = 60


@dataclass
class Searcher:
    """What a search needs: the index and the query encoders that built it."""

    index: Index
    text: TextEncoder
    clip: ClipEncoder | None = None

    def dense(self, modality: str, query: str, k: int, gens: Sequence[str]) -> list[Hit]:
        if modality == FRAMES:
            if self.clip is None:
                return []
            vector = self.clip.embed_texts([query])[0]
        else:
            vector = self.text.embed_queries([query])[0]
        return self.index.query(modality, vector, k, gens)


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


def to_moment(hit: Hit, score: float, recordings: dict[str, Recording]) -> Moment:
    meta = hit.metadata
    rec = recordings.get(meta["media_id"])
    return Moment(
        media_id=meta["media_id"],
        path=rec.path if rec else meta["path"],
        title=rec.title if rec else meta["title"],
        start=float(meta["start"]), end=float(meta["end"]), score=round(score, 6),
        modality=hit.modality, text=hit.text, speaker=meta.get("speaker") or None,
    )


def search(searcher: Searcher, query: str, k: int = 10,
           groups: frozenset[str] | None = None) -> list[Moment]:
    """The k best moments for a query among the recordings the caller may see."""
    query = " ".join(query.split())
    if not query:
        return []
    recordings = {r.media_id: r for r in searcher.index.catalog.visible(groups)}
    gens = [r.gen for r in recordings.values() if r.gen]
    depth = max(k * 3, 20)
    lists = [searcher.dense(m, query, depth, gens) for m in (TRANSCRIPT, SLIDES, FRAMES)]
    fused = rrf([hits for hits in lists if hits])
    return [to_moment(hit, score, recordings) for hit, score in fused[:k]]
