"""QMSum benchmark: clipcite's search, answers and summaries on 35 real meetings (run on demand).

    .venv/bin/python eval/qmsum.py                         # convert, build, search tables
    .venv/bin/python eval/qmsum.py --half tune             # score only the tune half
    .venv/bin/python eval/qmsum.py --meetings ES2006a,Bed002 --no-build
    .venv/bin/python eval/qmsum.py --no-clipcite           # naive peer and chance only
    .venv/bin/python eval/qmsum.py --answers 20            # + cited answers (slow: local LLM)
    .venv/bin/python eval/qmsum.py --summaries 4           # + whole-meeting summaries (slower)
    .venv/bin/python eval/qmsum.py convert                 # only write the WebVTT files
    .venv/bin/python eval/qmsum.py build                   # convert + `clipcite ingest`

Data: ../shared/qmsum/val/*.json (the QMSum validation split; see its README). Each meeting is
written as WebVTT, one cue per speaker turn with a `<v Speaker>` voice tag, transcription marks
({vocalsound}, {disfmarker}, ...) removed, the tokenisation undone ("it 's ." -> "it's.") and
AMI's spelled acronyms joined ("L_C_D_" -> "LCD"); turns with no word left are skipped (their
indices kept). The naive peer reads the same cleaned text. QMSum has no timestamps, so turns
get synthetic times from their word counts: 150 words per minute (WORDS_PER_MINUTE), at least
1.0 s a turn, 0.2 s between turns. A moment or citation is mapped back to the turn at its
middle time.

The tune/check split (eval/qmsum_split.json) is by meeting, stratified by source, made once with
a fixed seed and never regenerated while the file exists. The archive is always all 35 meetings
(the index and the naive peer hold every one); --meetings / --half only choose which meetings'
queries are scored.

Search: Hit@1, Hit@5, P@5 and MRR (within the top 5) for clipcite (the in-process search of
`clipcite search --recording`), a naive peer (one unit per turn, e5 + numpy BM25 fused by RRF),
its dense-only and BM25-only rows, and chance; within the named meeting and across the archive.
Writes markdown tables to stdout and tests/artifacts/qmsum/results-<timestamp>.json.
Needs `pip install rouge-score==0.1.2` for --answers / --summaries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from clipcite.ui.environment import set_defaults  # noqa: E402

set_defaults()  # before any model library loads, as the CLI does

CLI = REPO / ".venv" / "bin" / "clipcite"
DATA = REPO.parent / "shared" / "qmsum" / "val"
WORK = REPO / "tests" / "artifacts" / "qmsum"
SPLIT_FILE = REPO / "eval" / "qmsum_split.json"

WORDS_PER_MINUTE = 150
MIN_TURN_SECONDS = 1.0
TURN_GAP_SECONDS = 0.2
SPLIT_SEED = 20250611
K = 5
RRF_K = 60
BM25_K1, BM25_B = 1.2, 0.75
PEER_MAX_CHARS = 2000  # e5 reads ~512 tokens; longer turns only cost encoding time
TEXT_MODEL = "multilingual-e5-small"
SUMMARY_QUESTION = "Summarize the whole meeting."
NAIVE_SUMMARY_TOKENS = 3000  # of transcript, approximated as words * 1.3
HALVES = ("tune", "check")


# -- data -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    meeting: str
    n: int  # position in the meeting's specific_query_list
    query: str
    answer: str
    relevant: frozenset[int]  # turn indices (inclusive spans, expanded)

    @property
    def id(self) -> str:
        return f"{self.meeting}#{self.n}"


@dataclass
class Meeting:
    id: str
    turns: list[tuple[str, str]]  # (speaker, cleaned text; "" for a skipped turn)
    queries: list[Query]
    general: list[tuple[str, str]]  # (query, reference answer)
    raw: dict[str, Any] = field(repr=False)

    @property
    def spoken(self) -> list[int]:
        return [i for i, (_, text) in enumerate(self.turns) if text]


_MARKS = re.compile(r"\{[^{}]*\}")
# QMSum is tokenised ("it 's", "great ."): rejoined so segmenters see sentence ends.
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:%])")
_SPACE_BEFORE_CLITIC = re.compile(r"\s+(n't|'s|'re|'ve|'ll|'d|'m)\b", re.I)
_WORDY = re.compile(r"[A-Za-z0-9]")
# AMI spells letter by letter: "L_C_D_s", "T_V_". Written as a real transcript would ("LCDs",
# "TV"), or BM25 could never match a question's "LCD" (it tokenises "l", "c", "d").
_SPELLED = re.compile(r"\b((?:[A-Za-z]_)+)")


def clean_turn(content: str) -> str:
    """Marks removed, spelled acronyms joined, whitespace normalised; "" when no word is
    left (a turn to skip)."""
    text = _SPELLED.sub(lambda m: m.group(1).replace("_", ""), _MARKS.sub(" ", content))
    text = " ".join(text.split())
    text = _SPACE_BEFORE_CLITIC.sub(r"\1", _SPACE_BEFORE_PUNCT.sub(r"\1", text))
    return text if _WORDY.search(text) else ""


def load_meeting(path: Path) -> Meeting:
    raw = json.loads(path.read_text(encoding="utf-8"))
    turns = [(" ".join(t["speaker"].split()), clean_turn(t["content"]))
             for t in raw["meeting_transcripts"]]
    queries = []
    for n, q in enumerate(raw["specific_query_list"]):
        relevant = {i for a, b in q["relevant_text_span"]
                    for i in range(int(a), int(b) + 1) if i < len(turns)}
        queries.append(Query(path.stem, n, q["query"], q["answer"], frozenset(relevant)))
    general = [(g["query"], g["answer"]) for g in raw.get("general_query_list", [])]
    return Meeting(path.stem, turns, queries, general, raw)


def load_all(data: Path = DATA) -> dict[str, Meeting]:
    return {p.stem: load_meeting(p) for p in sorted(data.glob("*.json"))}


def source_of(meeting_id: str) -> str:
    if re.fullmatch(r"(ES|IS|TS)\d{4}[a-d]", meeting_id):
        return "AMI"
    if re.fullmatch(r"B(ed|mr|ro)\d{3}", meeting_id):
        return "ICSI"
    if re.fullmatch(r"(covid|education)_\d+", meeting_id):
        return "Parliament"
    raise ValueError(f"unknown QMSum source for {meeting_id!r}")


def series_of(meeting_id: str) -> str:
    """AMI ES2006a-d share a team and project, ICSI Bed/Bmr/Bro a research group,
    covid_*/education_* a committee (Canadian / Welsh)."""
    source = source_of(meeting_id)
    if source == "AMI":
        return meeting_id[:-1]
    return meeting_id[:3] if source == "ICSI" else meeting_id.split("_")[0]


# -- WebVTT -----------------------------------------------------------------------------------
def turn_ms(text: str) -> int:
    """A turn's synthetic length in milliseconds (integer ms: no drift over 1,000 turns)."""
    return round(1000 * max(MIN_TURN_SECONDS, len(text.split()) * 60.0 / WORDS_PER_MINUTE))


def vtt_clock(ms: int) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(meeting: Meeting | dict[str, Any],
           meeting_id: str = "") -> tuple[str, list[tuple[float, float]]]:
    """WebVTT with one cue per spoken turn (cue id `turn-<index>`), and (start, end) for every
    original turn index; a skipped turn gets a zero-length slot at the current time."""
    if isinstance(meeting, dict):
        meeting_id = meeting_id or "meeting"
        turns = [(" ".join(t["speaker"].split()), clean_turn(t["content"]))
                 for t in meeting["meeting_transcripts"]]
    else:
        meeting_id, turns = meeting.id, meeting.turns
    lines = ["WEBVTT", "",
             f"NOTE QMSum {meeting_id}: synthetic times at {WORDS_PER_MINUTE} words per minute, "
             f"at least {MIN_TURN_SECONDS} s a turn, {TURN_GAP_SECONDS} s between turns", ""]
    times: list[tuple[float, float]] = []
    now = 0  # ms
    for i, (speaker, text) in enumerate(turns):
        if not text:
            times.append((now / 1000, now / 1000))
            continue
        start, end = now, now + turn_ms(text)
        times.append((start / 1000, end / 1000))
        lines += [f"turn-{i}", f"{vtt_clock(start)} --> {vtt_clock(end)}",
                  f"<v {_escape(speaker)}>{_escape(text)}", ""]
        now = end + round(1000 * TURN_GAP_SECONDS)
    return "\n".join(lines), times


def convert(meetings: dict[str, Meeting], out: Path) -> dict[str, list[tuple[float, float]]]:
    """Writes <id>.vtt and <id>.times.json (only when changed: ingest is incremental by
    content, and an untouched file keeps its mtime)."""
    out.mkdir(parents=True, exist_ok=True)
    all_times = {}
    for mid, meeting in meetings.items():
        vtt, times = to_vtt(meeting)
        _write_if_changed(out / f"{mid}.vtt", vtt)
        _write_if_changed(out / f"{mid}.times.json", json.dumps(
            {"meeting": mid, "words_per_minute": WORDS_PER_MINUTE, "turn_times": times}))
        all_times[mid] = times
    return all_times


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def turn_at(times: Sequence[tuple[float, float]], t: float) -> int | None:
    """The spoken turn at time t; a time in the gap after a turn belongs to that turn."""
    best = None
    for i, (start, end) in enumerate(times):
        if end <= start:
            continue  # a skipped turn's zero-length slot
        if start > t:
            break
        best = i
    return best


# -- split ------------------------------------------------------------------------------------
def make_split(meeting_ids: Sequence[str], seed: int = SPLIT_SEED) -> dict[str, Any]:
    """Meetings dealt alternately into tune/check within each source, series by series (so a
    source's odd count does not always favour one half and every series is in both)."""
    rng = random.Random(seed)
    halves: dict[str, list[str]] = {"tune": [], "check": []}
    for source in sorted({source_of(m) for m in meeting_ids}):
        turn = rng.randrange(2)
        ids = [m for m in meeting_ids if source_of(m) == source]
        for series in sorted({series_of(m) for m in ids}):
            members = sorted(m for m in ids if series_of(m) == series)
            rng.shuffle(members)
            for m in members:
                halves[HALVES[turn % 2]].append(m)
                turn += 1
    how = (f"By meeting, stratified by source (AMI ES/IS/TS, ICSI Bed/Bmr/Bro, Parliament "
           f"covid/education) and within it by series: random.Random({seed}); per source "
           "(sorted) a start half = rng.randrange(2), then per series (sorted) the sorted ids "
           "are rng.shuffle()d and dealt alternately to tune/check, the alternation running on "
           "across the source's series. eval/qmsum.py make_split(); made once, never "
           "regenerated while this file exists.")
    return {"tune": sorted(halves["tune"]), "check": sorted(halves["check"]), "how": how,
            "seed": seed}


def load_split(meeting_ids: Sequence[str], path: Path = SPLIT_FILE) -> dict[str, str]:
    """meeting id -> "tune" | "check"; the file is written only if it does not exist."""
    if not path.exists():
        path.write_text(json.dumps(make_split(meeting_ids), indent=2) + "\n", encoding="utf-8")
        print(f"wrote the split {path.relative_to(REPO)}", file=sys.stderr)
    split = json.loads(path.read_text(encoding="utf-8"))
    half = {m: h for h in HALVES for m in split[h]}
    missing = sorted(set(meeting_ids) - set(half))
    if missing:
        raise ValueError(f"{path}: meetings in neither half: {', '.join(missing)}")
    return half


# -- metrics ----------------------------------------------------------------------------------
@dataclass
class Ranked:
    """One query's top results as (meeting id, turn index or None), best first."""

    query: Query
    hits: list[tuple[str, int | None]]
    ms: float = 0.0

    def relevant(self) -> list[bool]:
        return [m == self.query.meeting and t in self.query.relevant for m, t in self.hits[:K]]


@dataclass
class Scores:
    n: int
    hit1: float
    hit5: float
    p5: float
    mrr: float
    p50_ms: float | None = None


def score(rows: Sequence[Ranked]) -> Scores:
    rel = [r.relevant() for r in rows]
    n = max(len(rows), 1)
    ms = sorted(r.ms for r in rows if r.ms)
    return Scores(
        n=len(rows),
        hit1=sum(bool(x) and x[0] for x in rel) / n,
        hit5=sum(any(x) for x in rel) / n,
        p5=sum(sum(x) / K for x in rel) / n,
        mrr=sum(1.0 / (x.index(True) + 1) for x in rel if any(x)) / n,
        p50_ms=ms[len(ms) // 2] if ms else None)


def chance(n: int, r: int) -> Scores:
    """Expected scores of a random ranking of n units, r of them relevant (MRR within 5)."""
    if n <= 0 or r <= 0:
        return Scores(1, 0.0, 0.0, 0.0, 0.0)
    hit5 = 1.0 - math.comb(n - r, min(K, n)) / math.comb(n, min(K, n))
    mrr, none_yet = 0.0, 1.0
    for k in range(1, min(K, n) + 1):  # P(first relevant at k) = P(none before) * r/(n-k+1)
        mrr += none_yet * r / (n - k + 1) / k
        none_yet *= (n - k + 1 - r) / (n - k + 1)
    return Scores(1, r / n, hit5, r / n, mrr)


def mean_scores(parts: Sequence[Scores]) -> Scores:
    n = max(len(parts), 1)
    return Scores(len(parts), *(sum(getattr(p, f) for p in parts) / n
                                for f in ("hit1", "hit5", "p5", "mrr")))


# -- naive peer -------------------------------------------------------------------------------
_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class BM25:
    """Okapi BM25 over a fixed list of texts (numpy; an inverted index of term -> docs)."""

    def __init__(self, texts: Sequence[str], k1: float = BM25_K1, b: float = BM25_B) -> None:
        docs = [tokens(t) for t in texts]
        self.n = len(docs)
        lengths = np.array([len(d) for d in docs], dtype=np.float64)
        norm = k1 * (1 - b + b * lengths / max(lengths.mean(), 1e-9))
        postings: dict[str, dict[int, int]] = {}
        for i, doc in enumerate(docs):
            for tok in doc:
                postings.setdefault(tok, {}).setdefault(i, 0)
                postings[tok][i] += 1
        self.terms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for tok, counts in postings.items():
            ids = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            idf = math.log(1 + (self.n - len(ids) + 0.5) / (len(ids) + 0.5))
            self.terms[tok] = (ids, idf * tf * (k1 + 1) / (tf + norm[ids]))

    def scores(self, query: str) -> np.ndarray:
        out = np.zeros(self.n)
        for tok in tokens(query):  # a repeated query word counts again, as in Okapi's qtf=1 sum
            if tok in self.terms:
                ids, weights = self.terms[tok]
                out[ids] += weights
        return out


def rrf_rank(lists: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Candidate positions by reciprocal rank fusion (equal weights) of ranked position lists."""
    fused = np.zeros(size)
    for ranked in lists:
        fused[ranked] += 1.0 / (RRF_K + np.arange(1, len(ranked) + 1))
    return np.argsort(-fused, kind="stable")[:np.count_nonzero(fused)]


@dataclass
class Peer:
    """One unit per spoken turn of every meeting: "Speaker: text"."""

    units: list[tuple[str, int]]  # (meeting id, turn index)
    texts: list[str]
    vectors: np.ndarray
    bm25: BM25
    by_meeting: dict[str, np.ndarray]  # meeting id -> unit positions

    def rank(self, query_vector: np.ndarray, query: str, meeting: str | None,
             method: str = "fused") -> list[int]:
        """Unit positions, best first (top K); within one meeting when it is named."""
        cand = self.by_meeting[meeting] if meeting else np.arange(len(self.units))
        dense = np.argsort(-(self.vectors[cand] @ query_vector), kind="stable")
        bm = self.bm25.scores(query)[cand]
        keyword = np.argsort(-bm, kind="stable")[:np.count_nonzero(bm > 0)]
        order = {"dense": dense, "bm25": keyword,
                 "fused": rrf_rank([dense, keyword], len(cand))}[method]
        return [int(cand[i]) for i in order[:K]]


def unit_text(speaker: str, text: str) -> str:
    return f"{speaker}: {text}"


def embed_cached(encoder: Any, texts: Sequence[str], cache: Path,
                 batch: int = 64) -> np.ndarray:
    """Passage vectors, cached by text hash in an .npz; saved every few batches so an
    interrupted run resumes (20,000 turns take ~10 minutes on 2 cores)."""
    keys = [hashlib.sha1(f"{TEXT_MODEL}\n{t}".encode()).hexdigest() for t in texts]
    known: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache) as z:
            known = dict(zip(z["keys"].tolist(), z["vectors"]))
    todo = [i for i, k in enumerate(keys) if k not in known]
    started = time.monotonic()
    for n, at in enumerate(range(0, len(todo), batch)):
        part = todo[at:at + batch]
        for i, v in zip(part, encoder.embed_passages([texts[i] for i in part])):
            known[keys[i]] = v
        if n % 20 == 19 or at + batch >= len(todo):
            _save_vectors(cache, known)
            done = at + len(part)
            print(f"  embedded {done}/{len(todo)} turns "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    if len(known) > len(set(keys)):  # turns whose text changed: drop their old vectors
        known = {k: known[k] for k in keys}
        _save_vectors(cache, known)
    vectors = np.stack([known[k] for k in keys]).astype(np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def _save_vectors(cache: Path, known: dict[str, np.ndarray]) -> None:
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    os.replace(tmp, cache)


def build_peer(meetings: dict[str, Meeting], encoder: Any, cache: Path) -> Peer:
    units, texts = [], []
    for mid, meeting in meetings.items():
        for i in meeting.spoken:
            speaker, text = meeting.turns[i]
            units.append((mid, i))
            texts.append(unit_text(speaker, text))
    vectors = embed_cached(encoder, [t[:PEER_MAX_CHARS] for t in texts], cache)
    by_meeting = {mid: np.array([n for n, (m, _) in enumerate(units) if m == mid])
                  for mid in meetings}
    return Peer(units, texts, vectors, BM25(texts), by_meeting)


def peer_rankings(peer: Peer, queries: Sequence[Query], query_vectors: np.ndarray,
                  scope: str, method: str) -> list[Ranked]:
    # Not timed: the query vectors were encoded beforehand in one batch.
    return [Ranked(q, [peer.units[i] for i in peer.rank(
        v, q.query, q.meeting if scope == "within" else None, method)])
        for q, v in zip(queries, query_vectors)]


# -- clipcite ---------------------------------------------------------------------------------
def build_index(vtt_dir: Path, index: Path) -> int:
    """`clipcite ingest` of the WebVTT folder (incremental: unchanged files are skipped)."""
    # Its progress and summary table go to stderr: stdout is for this script's tables.
    return subprocess.run([str(CLI), "ingest", str(vtt_dir), "--index", str(index)],
                          stdout=sys.stderr).returncode


def open_clipcite(index: Path) -> Any:
    from clipcite.ui.cli import open_searcher
    from clipcite.ui.settings import Settings

    return open_searcher(Settings.load().with_overrides(index_dir=index))


def recordings_by_meeting(searcher: Any, meeting_ids: Sequence[str]) -> dict[str, str]:
    """meeting id -> media id, found by the recording's file name (<id>.vtt)."""
    by_name = {Path(r.path).name: r for r in searcher.index.catalog.all()}
    found = {}
    for mid in meeting_ids:
        rec = by_name.get(f"{mid}.vtt")
        if rec is not None and rec.status == "indexed" and rec.gen:
            found[mid] = rec.media_id
    return found


def moment_turn(media_to_meeting: dict[str, str], times: dict[str, list[tuple[float, float]]],
                media_id: str, start: float, end: float) -> tuple[str, int | None]:
    mid = media_to_meeting.get(media_id, f"other:{media_id}")
    return mid, (turn_at(times[mid], (start + end) / 2) if mid in times else None)


def clipcite_rankings(searcher: Any, queries: Sequence[Query], media: dict[str, str],
                      times: dict[str, list[tuple[float, float]]], scope: str,
                      **search_args: Any) -> list[Ranked]:
    from clipcite.retrieval.filters import Filters
    from clipcite.retrieval.search import search

    to_meeting = {v: k for k, v in media.items()}
    rows = []
    for q in queries:
        filters = Filters(recordings=(media[q.meeting],)) if scope == "within" else None
        t = time.perf_counter()
        moments = search(searcher, q.query, k=K, filters=filters, **search_args)
        ms = 1000 * (time.perf_counter() - t)
        rows.append(Ranked(q, [moment_turn(to_meeting, times, m.media_id, m.start, m.end)
                               for m in moments], ms))
    return rows


# -- tables -----------------------------------------------------------------------------------
def by_half(rows: Sequence[Any], half: dict[str, str],
            meeting_of: Callable[[Any], str]) -> Iterator[tuple[str, list[Any]]]:
    for name in (*HALVES, "all"):
        part = [r for r in rows if name == "all" or half[meeting_of(r)] == name]
        if part:
            yield name, part


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


SEARCH_HEADER = ("system", "split", "meetings", "queries", "Hit@1", "Hit@5", "P@5", "MRR",
                 "p50 ms")


def search_row(system: str, scope: str, split: str, meetings: int, s: Scores) -> dict[str, Any]:
    return {"table": "search", "system": system, "scope": scope, "split": split,
            "meetings": meetings, "queries": s.n, "hit1": round(s.hit1, 4),
            "hit5": round(s.hit5, 4), "p5": round(s.p5, 4), "mrr": round(s.mrr, 4),
            "p50_ms": None if s.p50_ms is None else round(s.p50_ms, 1)}


# -- answers ----------------------------------------------------------------------------------
_CITE_MARK = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def rouge(prediction: str, reference: str, kinds: Sequence[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
    got = scorer.score(reference, _CITE_MARK.sub("", prediction))
    return {k: got[k].fmeasure for k in kinds}


def interleave_halves(items: Sequence[Any], half: dict[str, str],
                      meeting_of: Callable[[Any], str], key: Callable[[Any], str]) -> list[Any]:
    """Tune, check, tune, ...; each half in a seeded random order. Not the files' order:
    QMSum lists a meeting's "Summarize the discussion about ..." queries first, and sorted
    meeting ids put the long ICSI meetings first."""
    lists = []
    for h in HALVES:
        part = sorted((x for x in items if half[meeting_of(x)] == h), key=key)
        random.Random(SPLIT_SEED).shuffle(part)
        lists.append(part)
    out = []
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x)]
    return out


def citation_rows(cites: Sequence[tuple[str, float, float]], q: Query,
                  media: dict[str, str],
                  times: dict[str, list[tuple[float, float]]]) -> list[bool]:
    to_meeting = {v: k for k, v in media.items()}
    return [Ranked(q, [moment_turn(to_meeting, times, m, s, e)]).relevant()[0]
            for m, s, e in cites]


def run_answers(assistant: Any, queries: Sequence[Query], media: dict[str, str],
                times: dict[str, list[tuple[float, float]]],
                progress: Path | None = None) -> list[dict[str, Any]]:
    from clipcite.retrieval.filters import Filters

    out = []
    for n, q in enumerate(queries, 1):
        assistant.filters = Filters(recordings=(media[q.meeting],))  # `ask --recording`
        t0 = time.perf_counter()
        first = total = None
        reply = None
        for event in assistant.turn(q.query):
            if event.kind == "token" and first is None:
                first = time.perf_counter() - t0
            elif event.kind == "reply":
                reply, total = event.data, time.perf_counter() - t0
        cites = [(c.media_id, c.start, c.end) for c in reply.citations]
        right = citation_rows(cites, q, media, times)
        out.append({"query": q.id, "system": "clipcite", "intent": reply.intent,
                    "answer": reply.answer, "citations": len(cites), "right": sum(right),
                    "first_token_s": first, "total_s": total,
                    "timings": {k: round(v, 3) for k, v in reply.timings.items()},
                    **rouge(reply.answer, q.answer, ("rouge1", "rougeL"))})
        if progress is not None:  # a long run keeps what it has measured
            with progress.open("a", encoding="utf-8") as f:
                f.write(json.dumps(out[-1], ensure_ascii=False) + "\n")
        print(f"  answer {n}/{len(queries)} {q.id} [{reply.intent}] {total:.1f} s, "
              f"{sum(right)}/{len(cites)} citations right", file=sys.stderr)
    return out


def naive_extracts(peer: Peer, queries: Sequence[Query],
                   query_vectors: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The peer's two best turns in the meeting, quoted as the answer and cited."""
    out = []
    for q in queries:
        t = time.perf_counter()
        top = peer.rank(query_vectors[q.id], q.query, q.meeting)[:2]
        answer = "\n".join(f"\u201c{peer.texts[i]}\u201d" for i in top)
        total = time.perf_counter() - t
        right = [peer.units[i][1] in q.relevant for i in top]
        out.append({"query": q.id, "system": "naive extract", "intent": "extract",
                    "answer": answer, "citations": len(top), "right": sum(right),
                    "first_token_s": total, "total_s": total,
                    **rouge(answer, q.answer, ("rouge1", "rougeL"))})
    return out


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p50 of 10 values is the 5th smallest)."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


ANSWER_HEADER = ("system", "split", "answers", "citations", "citation precision",
                 ">=1 right citation", "no citation (not found)", "ROUGE-1", "ROUGE-L",
                 "first token p50 s", "first token p95 s", "answer p50 s", "answer p95 s")


def answer_row(system: str, split: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    cites = sum(r["citations"] for r in rows)
    return {"table": "answers", "system": system, "split": split, "answers": len(rows),
            "citations": cites,
            "citation_precision": sum(r["right"] for r in rows) / cites if cites else None,
            "answers_with_right_citation": sum(r["right"] > 0 for r in rows) / len(rows),
            "uncited_answers": sum(r["citations"] == 0 for r in rows) / len(rows),
            "rouge1": statistics.mean(r["rouge1"] for r in rows),
            "rougeL": statistics.mean(r["rougeL"] for r in rows),
            "first_token_p50_s": percentile([r["first_token_s"] for r in rows], 50),
            "first_token_p95_s": percentile([r["first_token_s"] for r in rows], 95),
            "answer_p50_s": percentile([r["total_s"] for r in rows], 50),
            "answer_p95_s": percentile([r["total_s"] for r in rows], 95)}


LATENCY_HEADER = ("kind", "split", "answers", "first words p50 s", "first words p95 s",
                  "whole answer p50 s", "whole answer p95 s")
# The assistant's intents as the kinds of question a reader asks.
KINDS = {"answer": "question", "find": "question", "summarize": "topic summary"}


def latency_rows(rows: Sequence[dict[str, Any]], half: dict[str, str]) -> list[list[Any]]:
    """clipcite's first-words and whole-answer p50 / p95 by kind of question (a question, or a
    summary of one topic of the meeting) and half: a kind's slow replies are not averaged away
    by the other's."""
    table = []
    for kind in dict.fromkeys(KINDS.values()):
        mine = [r for r in rows if r["system"] == "clipcite"
                and KINDS.get(r["intent"], "question") == kind]
        for split, part in by_half(mine, half, lambda r: r["query"].split("#")[0]):
            table.append([kind, split, len(part),
                          *(percentile([r[key] for r in part], p)
                            for key in ("first_token_s", "total_s") for p in (50, 95))])
    return table


# -- summaries --------------------------------------------------------------------------------
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_HEADING = re.compile(r"^[A-Z][A-Za-z ]{0,40}:$")


def summary_units(text: str) -> list[str]:
    """Bullet points, and the sentences of any other line (headings such as "Main points:"
    are not units)."""
    from clipcite.assistant.evidence import split_sentences

    units = []
    for line in text.splitlines():
        line = line.strip()
        if not line or _HEADING.match(line):
            continue
        units += [line] if _BULLET.match(line) else split_sentences(line)
    return units


def cited_share(text: str) -> float | None:
    units = summary_units(text)
    return sum(bool(_CITE_MARK.search(u)) for u in units) / len(units) if units else None


def reference_summary(meeting: Meeting) -> tuple[str, str]:
    """The general query's reference (ICSI words it "What was the meeting about?" etc.)."""
    for query, answer in meeting.general:
        if re.search(r"summari[sz]e", query, re.I):
            return query, answer
    return meeting.general[0]


def transcript_head(meeting: Meeting, tokens_limit: int) -> str:
    lines, used = [], 0.0
    for i in meeting.spoken:
        speaker, text = meeting.turns[i]
        line = unit_text(speaker, text)
        cost = len(line.split()) * 1.3
        if used + cost > tokens_limit:
            words = int((tokens_limit - used) / 1.3)
            if words > 0:
                lines.append(" ".join(line.split()[:words]))
            break
        lines.append(line)
        used += cost
    return "\n".join(lines)


def naive_summary(chat: Any, meeting: Meeting) -> tuple[str, int]:
    """The LLM prompted with "Summarize the meeting." over the transcript's first 3,000
    (approximate) tokens; shrunk by a sixth if the local model's context still overflows."""
    limit = NAIVE_SUMMARY_TOKENS
    while True:
        head = transcript_head(meeting, limit)
        try:
            return chat.complete([{"role": "user", "content":
                                   f"Meeting transcript:\n{head}\n\nSummarize the meeting."}]
                                 ).strip(), limit
        except Exception as e:  # noqa: BLE001 - llama.cpp: "Requested tokens exceed context"
            if limit < 500 or "context" not in str(e).lower():
                raise
            limit = int(limit * 5 / 6)


def meeting_minutes(times: Sequence[tuple[float, float]]) -> float:
    return max((e for _, e in times), default=0.0) / 60


def _summary_file(index: Any, media_id: str) -> Path | None:
    """Where the assistant caches this recording's whole summary (assistant/summary_cache.py:
    index_dir/summaries/<generation>.json)."""
    from clipcite.assistant.summary_cache import SummaryCache

    rec = index.catalog.get(media_id)
    return SummaryCache(index.directory).directory / f"{rec.gen}.json" if rec and rec.gen \
        else None


def summary_cached(index: Any, media_id: str) -> bool:
    path = _summary_file(index, media_id)
    return path is not None and path.exists()


def forget_summary(index: Any, media_id: str) -> bool:
    """Drop the cached summary so its making is timed (a cached one is read in ~0 s)."""
    path = _summary_file(index, media_id)
    if path is None or not path.exists():
        return False
    path.unlink()
    return True


def run_summaries(assistant: Any, meetings: Sequence[Meeting], media: dict[str, str],
                  times: dict[str, list[tuple[float, float]]],
                  fresh: bool = True) -> list[dict[str, Any]]:
    from clipcite.retrieval.filters import Filters

    out = []
    for n, m in enumerate(meetings, 1):
        _, reference = reference_summary(m)
        assistant.filters = Filters(recordings=(media[m.id],))
        was_cached = forget_summary(assistant.searcher.index, media[m.id]) if fresh else \
            summary_cached(assistant.searcher.index, media[m.id])
        t = time.perf_counter()
        reply = assistant.ask(SUMMARY_QUESTION)
        seconds = time.perf_counter() - t
        kinds = ("rouge1", "rouge2", "rougeL")
        out.append({"meeting": m.id, "system": "clipcite", "intent": reply.intent,
                    "answer": reply.answer, "cited_share": cited_share(reply.answer),
                    "seconds": seconds, "minutes": meeting_minutes(times[m.id]),
                    "from_cache": was_cached and not fresh,
                    **rouge(reply.answer, reference, kinds)})
        t = time.perf_counter()
        text, used = naive_summary(assistant.chat, m)
        naive_s = time.perf_counter() - t
        out.append({"meeting": m.id, "system": "naive LLM (first tokens)", "intent": "-",
                    "answer": text, "cited_share": cited_share(text), "seconds": naive_s,
                    "minutes": meeting_minutes(times[m.id]), "transcript_tokens": used,
                    **rouge(text, reference, kinds)})
        print(f"  summary {n}/{len(meetings)} {m.id}: {seconds:.0f} s (naive {naive_s:.0f} s)",
              file=sys.stderr)
    return out


SUMMARY_HEADER = ("system", "split", "meetings", "ROUGE-1", "ROUGE-2", "ROUGE-L",
                  "cited units", "s / summary", "meeting min")


def summary_row(system: str, split: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    shares = [r["cited_share"] for r in rows if r["cited_share"] is not None]
    return {"table": "summaries", "system": system, "split": split, "meetings": len(rows),
            **{k: statistics.mean(r[k] for r in rows) for k in ("rouge1", "rouge2", "rougeL")},
            "cited_share": statistics.mean(shares) if shares else None,
            "seconds": statistics.mean(r["seconds"] for r in rows),
            "minutes": statistics.mean(r["minutes"] for r in rows)}


# -- the run ----------------------------------------------------------------------------------
def ingest_works(index: Path) -> bool:
    """Whether `clipcite ingest` took the .vtt files (it exits 0 while some file passes, so
    the catalog is read: sqlite directly, not a second Chroma client in this process)."""
    import sqlite3

    from clipcite.retrieval.index import CATALOG_FILE

    path = index / CATALOG_FILE
    if not path.exists():
        return False
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT path, status FROM recordings").fetchall()
    return any(p.endswith(".vtt") and status == "indexed" for p, status in rows)


def search_tables(args: argparse.Namespace, meetings: dict[str, Meeting], scored: list[str],
                  half: dict[str, str], times: dict[str, list[tuple[float, float]]],
                  results: dict[str, Any]) -> tuple[Any, Peer, dict[str, np.ndarray],
                                                    dict[str, str]]:
    from clipcite.retrieval.encoders import load_text_encoder

    queries = [q for mid in scored for q in meetings[mid].queries]
    encoder = load_text_encoder(TEXT_MODEL)
    print(f"naive peer: {sum(len(m.spoken) for m in meetings.values())} turns", file=sys.stderr)
    peer = build_peer(meetings, encoder, WORK / "peer_vectors.npz")
    qv = encoder.embed_queries([q.query for q in queries])
    qv = qv / np.maximum(np.linalg.norm(qv, axis=1, keepdims=True), 1e-9)
    vectors = {q.id: v for q, v in zip(queries, qv)}

    searcher, media = None, {}
    if not args.no_clipcite:
        searcher = open_clipcite(args.index)
        media = recordings_by_meeting(searcher, list(meetings))
        missing = [m for m in scored if m not in media]
        if missing:
            print(f"clipcite: not in the index {args.index}: {', '.join(missing)} "
                  "(scored without them)", file=sys.stderr)

    n_all = sum(len(m.spoken) for m in meetings.values())
    for scope in ("within", "across"):
        systems: list[tuple[str, list[Ranked]]] = []
        if searcher is not None and media:
            mine = [q for q in queries if q.meeting in media]
            systems.append(("clipcite", clipcite_rankings(searcher, mine, media, times, scope)))
            if args.ablation:
                for name, methods in (("clipcite dense only", ("dense",)),
                                      ("clipcite BM25 only", ("keyword",))):
                    systems.append((name, clipcite_rankings(searcher, mine, media, times, scope,
                                                            methods=methods)))
        for name, method in (("naive peer (e5 + BM25, RRF)", "fused"),
                             ("naive peer dense only", "dense"), ("naive peer BM25 only", "bm25")):
            systems.append((name, peer_rankings(peer, queries, qv, scope, method)))
        table = []
        for name, rows in systems:
            for split, part in by_half(rows, half, lambda r: r.query.meeting):
                row = search_row(name, scope, split, len({r.query.meeting for r in part}),
                                 score(part))
                table.append(row)
                results["rows"].append(row)
            results["queries"] += [{"system": name, "scope": scope, "query": r.query.id,
                                    "split": half[r.query.meeting], "top": r.hits,
                                    "relevant": r.relevant()} for r in rows]
        for split, part in by_half(queries, half, lambda q: q.meeting):
            per = [chance(len(meetings[q.meeting].spoken) if scope == "within" else n_all,
                          len(q.relevant & set(meetings[q.meeting].spoken))) for q in part]
            row = search_row("chance", scope, split, len({q.meeting for q in part}),
                             mean_scores(per))
            table.append(row)
            results["rows"].append(row)
        title = "within the named meeting" if scope == "within" else \
            "across the archive (meeting not named)"
        print(f"\n### Search, {title}: k = {K}, archive of {len(meetings)} meetings\n")
        print(markdown(SEARCH_HEADER, [
            (r["system"], r["split"], r["meetings"], r["queries"], r["hit1"], r["hit5"],
             r["p5"], r["mrr"], r["p50_ms"]) for r in table]))
    return searcher, peer, vectors, media


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:10]))
    parser.add_argument("step", nargs="?", default="run", choices=("run", "convert", "build"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--index", type=Path, default=WORK / "index")
    parser.add_argument("--meetings", help="comma-separated meeting ids to score")
    parser.add_argument("--half", choices=HALVES, help="score only this half of the split")
    parser.add_argument("--no-build", action="store_true", help="search the index as it is")
    parser.add_argument("--no-clipcite", action="store_true", help="naive peer and chance only")
    parser.add_argument("--ablation", action="store_true",
                        help="also clipcite dense-only and BM25-only rows")
    parser.add_argument("--answers", type=int, default=0, metavar="N",
                        help="N specific queries through the assistant (slow)")
    parser.add_argument("--summaries", type=int, default=0, metavar="N",
                        help="N whole-meeting summaries (slower)")
    parser.add_argument("--cached-summaries", action="store_true",
                        help="use summaries the index has cached (default: remake and time "
                             "them)")
    args = parser.parse_args()

    meetings = load_all(args.data)
    half = load_split(list(meetings))
    times = convert(meetings, WORK / "vtt")
    print(f"converted {len(meetings)} meetings to {WORK / 'vtt'} ({WORDS_PER_MINUTE} words per "
          f"minute, >= {MIN_TURN_SECONDS} s a turn, {TURN_GAP_SECONDS} s gaps)", file=sys.stderr)
    if args.step == "convert":
        return 0
    if not args.no_build and not args.no_clipcite:
        code = build_index(WORK / "vtt", args.index)
        if code != 0 or not ingest_works(args.index):
            print(f"clipcite ingest did not index the WebVTT files (exit {code}): the clipcite "
                  "rows are left out", file=sys.stderr)
            args.no_clipcite = True
    if args.step == "build":
        return 0 if not args.no_clipcite else 1

    scored = [m for m in meetings if (not args.meetings or m in args.meetings.split(","))
              and (not args.half or half[m] == args.half)]
    unknown = set(args.meetings.split(",")) - set(meetings) if args.meetings else set()
    if unknown or not scored:
        parser.error(f"no such meetings: {', '.join(sorted(unknown)) or args.meetings}")
    if args.no_clipcite and (args.answers or args.summaries):
        parser.error("--answers / --summaries need the clipcite index")
    results: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "data": str(args.data),
        "split_file": str(SPLIT_FILE.relative_to(REPO)), "split": half,
        "scored_meetings": scored, "index": str(args.index), "k": K,
        "words_per_minute": WORDS_PER_MINUTE, "min_turn_seconds": MIN_TURN_SECONDS,
        "turn_gap_seconds": TURN_GAP_SECONDS, "rows": [], "queries": []}
    print(f"QMSum val: {len(scored)} of {len(meetings)} meetings scored; synthetic times at "
          f"{WORDS_PER_MINUTE} words per minute; split {SPLIT_FILE.relative_to(REPO)}")
    searcher, peer, vectors, media = search_tables(args, meetings, scored, half, times, results)

    if args.answers or args.summaries:
        from clipcite.assistant.agent import Assistant
        from clipcite.assistant.llm import load_chat_model
        from clipcite.ui.settings import Settings

        settings = Settings.load().with_overrides(index_dir=args.index)
        assistant = Assistant(searcher, load_chat_model(settings.llm_config()))
        assistant.warm_up()  # latency as in a running chat (as `clipcite eval-answers`)
    if args.answers:
        pool = [q for m in scored if m in media for q in meetings[m].queries]
        chosen = interleave_halves(pool, half, lambda q: q.meeting,
                                   lambda q: q.id)[:args.answers]
        progress = WORK / f"answers-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        rows = run_answers(assistant, chosen, media, times, progress) + \
            naive_extracts(peer, chosen, vectors)
        results["answers"] = rows
        table = [answer_row(system, split, part)
                 for system in ("clipcite", "naive extract")
                 for split, part in by_half([r for r in rows if r["system"] == system], half,
                                            lambda r: r["query"].split("#")[0])]
        results["rows"] += table
        intents: dict[str, int] = {}
        for r in rows:
            if r["system"] == "clipcite":
                intents[r["intent"]] = intents.get(r["intent"], 0) + 1
        print(f"\n### Answers ({len(chosen)} specific queries, meeting named; assistant "
              f"intents: {intents})\n")
        print(markdown(ANSWER_HEADER, [[r[k] for k in (
            "system", "split", "answers", "citations", "citation_precision",
            "answers_with_right_citation", "uncited_answers", "rouge1", "rougeL",
            "first_token_p50_s",
            "first_token_p95_s", "answer_p50_s", "answer_p95_s")] for r in table]))
        print("\nclipcite's latency by kind of question:\n")
        print(markdown(LATENCY_HEADER, latency_rows(rows, half)))
    if args.summaries:
        order = interleave_halves([m for m in scored if m in media], half, str, str)
        chosen_meetings = [meetings[m] for m in order[:args.summaries]]
        rows = run_summaries(assistant, chosen_meetings, media, times,
                             fresh=not args.cached_summaries)
        results["summaries"] = rows
        table = [summary_row(system, split, part)
                 for system in ("clipcite", "naive LLM (first tokens)")
                 for split, part in by_half([r for r in rows if r["system"] == system], half,
                                            lambda r: r["meeting"])]
        results["rows"] += table
        made = "read from the index's cache where present" if args.cached_summaries else \
            "made afresh (cache entry dropped first)"
        print(f"\n### Summaries (\"{SUMMARY_QUESTION}\", meeting named, {made}; naive LLM: "
              f"first {NAIVE_SUMMARY_TOKENS} tokens of the transcript)\n")
        print(markdown(SUMMARY_HEADER, [[r[k] for k in (
            "system", "split", "meetings", "rouge1", "rouge2", "rougeL", "cited_share",
            "seconds", "minutes")] for r in table]))

    out = WORK / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
