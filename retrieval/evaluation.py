"""Retrieval evaluation: Hit@1, Hit@5 and MRR of moment search on a JSONL query set.

A line: {"id": str, "query": str, "expected": [{"media": "<file name>", "start": s, "end": s}]}.
A returned moment matches an expected window when it is in that recording and either its IoU
with the window is at least 0.5, or at least half of the moment lies inside the window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from clipcite.retrieval.filters import Filters
from clipcite.retrieval.schema import FRAMES, PASSAGES, SLIDES, TRANSCRIPT, Moment
from clipcite.retrieval.search import DEFAULT_WEIGHTS, Searcher, search


@dataclass
class Query:
    id: str
    query: str
    expected: list[dict[str, Any]]
    kind: str = ""


T = TypeVar("T")


def read_jsonl(path: Path, row: Callable[[dict[str, Any]], T], what: str = "row") -> list[T]:
    """Each non-blank line of a JSON-lines file made into a T by `row`; a line that is not JSON
    or lacks a key `row` reads is a ValueError naming the file and line."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(row(json.loads(line)))
        except (json.JSONDecodeError, KeyError) as e:
            raise ValueError(f"{path}:{n}: not a {what} line ({e})") from None
    return out


def load_queries(path: Path) -> list[Query]:
    return read_jsonl(path, lambda r: Query(r["id"], r["query"], r["expected"],
                                            r.get("kind", "")), "query")


def matches(moment: Moment, window: dict[str, Any]) -> bool:
    if Path(moment.path).name != window["media"]:
        return False
    overlap = max(0.0, min(moment.end, window["end"]) - max(moment.start, window["start"]))
    union = max(moment.end, window["end"]) - min(moment.start, window["start"])
    length = max(moment.end - moment.start, 1e-6)
    return (union > 0 and overlap / union >= 0.5) or overlap / length >= 0.5


def first_hit_rank(moments: Sequence[Moment], expected: Sequence[dict[str, Any]]) -> int | None:
    for rank, m in enumerate(moments, 1):
        if any(matches(m, w) for w in expected):
            return rank
    return None


@dataclass
class Report:
    name: str
    n: int
    hit1: float
    hit5: float
    mrr: float
    p50_ms: float
    misses: list[str] = field(default_factory=list)


def evaluate(searcher: Searcher, queries: Sequence[Query], k: int = 5, name: str = "fused",
             filters: Filters | None = None, **search_args: Any) -> Report:
    ranks: list[int | None] = []
    times: list[float] = []
    for q in queries:
        t = time.perf_counter()
        moments = search(searcher, q.query, k=k, filters=filters, **search_args)
        times.append(time.perf_counter() - t)
        ranks.append(first_hit_rank(moments, q.expected))
    n = max(len(queries), 1)
    times.sort()
    return Report(
        name=name, n=len(queries),
        hit1=sum(r == 1 for r in ranks) / n,
        hit5=sum(r is not None and r <= 5 for r in ranks) / n,
        mrr=sum(1.0 / r for r in ranks if r) / n,
        p50_ms=1000 * times[len(times) // 2] if times else 0.0,
        misses=[q.id for q, r in zip(queries, ranks) if r != 1],
    )


# name -> search arguments: each row adds one thing to the one above it.
ABLATIONS: dict[str, dict[str, Any]] = {
    "transcript only (dense)": {"modalities": (TRANSCRIPT,), "methods": ("dense",)},
    "slides only (dense + BM25)": {"modalities": (SLIDES,)},
    "keyword only (BM25)": {"modalities": (TRANSCRIPT, SLIDES), "methods": ("keyword",)},
    "transcript + slides (dense)": {"modalities": (TRANSCRIPT, SLIDES), "methods": ("dense",)},
    "+ BM25 (hybrid)": {"modalities": (TRANSCRIPT, SLIDES)},
    "fused without passages": {"modalities": (TRANSCRIPT, SLIDES, FRAMES), "weights": {
        key: w for key, w in DEFAULT_WEIGHTS.items() if key[0] != PASSAGES}},
    "fused (all modalities)": {"modalities": (TRANSCRIPT, SLIDES, FRAMES)},
}


def load_split(path: Path) -> dict[str, str]:
    """{recording file name: "tune" | "check"} from a split file ({"tune": [...], "check": [...]})."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {name: half for half in ("tune", "check") for name in data.get(half, [])}


def half_of(expected: Sequence[dict[str, Any]], query_id: str, split: dict[str, str]) -> str:
    """The half a query or answer belongs to: its expected recording's, or for one that expects
    nothing (an absent topic), by the parity of the number in its id."""
    for window in expected:
        if window.get("media") in split:
            return split[window["media"]]
    digits = "".join(ch for ch in query_id if ch.isdigit())
    return "tune" if digits and int(digits) % 2 else "check"


def by_half(queries: Sequence[Query], split: dict[str, str]) -> dict[str, list[Query]]:
    halves: dict[str, list[Query]] = {"tune": [], "check": []}
    for q in queries:
        halves[half_of(q.expected, q.id, split)].append(q)
    return halves


def ablation(searcher: Searcher, queries: Sequence[Query], k: int = 5) -> list[Report]:
    return [evaluate(searcher, queries, k, name, **args) for name, args in ABLATIONS.items()]


def table(reports: Sequence[Report]) -> str:
    lines = ["| configuration | queries | Hit@1 | Hit@5 | MRR | p50 ms |",
             "|---|---|---|---|---|---|"]
    for r in reports:
        lines.append(f"| {r.name} | {r.n} | {r.hit1:.3f} | {r.hit5:.3f} | {r.mrr:.3f} | "
                     f"{r.p50_ms:.0f} |")
    return "\n".join(lines)
