"""Fused search latency, build cost and memory at 10k / 100k / 1M segments (synthetic index).

    .venv/bin/python eval/bench_search.py [--sizes 10000,100000,1000000] [--queries 50]
        [--dir tests/artifacts/bench-search] [--max-build-minutes M] [--vectors clustered]
        [--per-recording 200] [--rebuild] [--measure-runs 3] [--bm25-only]

For each size an index is built once under DIR/seg<N>/ through the real write path
(`ingestion.writer.write_recording`: begin_generation, Index.add per modality, commit_generation)
and reused by later runs; an interrupted build resumes at the next uncommitted recording.
Segments are 90% transcript and 10% slides, 200 per recording, with meeting-like text drawn from
Zipf-distributed word lists (so BM25 sees a realistic term distribution) and random unit
vectors (384-d) instead of e5 passages, which would take hours at 1M. Queries go through the
real `Searcher` with the real e5 encoder, so query encoding is inside every latency.

Each size is measured in fresh processes: --measure-runs of them (the table shows each
statistic's median, since other work shares the cores) run 3 warm-up queries then N queries
(fused, dense-only, keyword-only, plus a breakdown of their parts); others open the index cold
(Index(dir), the first BM25 scan, the first search). Progress goes to stderr, the markdown
tables to stdout. A build stopped by --max-build-minutes is measured as far as it got, and
resumed by the next run. --bm25-only builds and measures just the catalog and the keyword index
(DIR/seg<N>-bm25/), which takes minutes at 1M where the HNSW build takes hours.
Target on 2 cores: fused p50 <= 100 ms at 100k segments.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CORPUS_VERSION = 4  # bump when the generator or stored format changes: other versions are rebuilt
DIM = 384
SLIDE_SHARE = 0.1
WARMUP = 3
TARGET_MS = 100.0
TARGET_SIZE = 100_000
DONE_FILE = "bench.json"
PROGRESS_FILE = "bench-progress.json"
# Recording i belongs to access group team<i % GROUPS>: a caller in one group sees a tenth.
GROUPS = 10

# -- word lists -------------------------------------------------------------------------------
# Head words are ordinary meeting vocabulary; a deterministic tail of made-up jargon (product
# names, internal acronyms) stretches nouns to a few thousand types, so most query terms are
# rare (short posting lists) while a few are very common (long ones), as in real transcripts.
NAMES = """Sarah Mark Tom Priya Diane Sheila Omar Lena Raj Chen Maria Jonas Aisha Ben Carla David
Elena Farid Grace Hiro Ines Jakob Kofi Laura Mateo Nadia Oliver Paula Quinn Rosa Sam Tariq Uma
Victor Wen Xavier Yara Zoe Alice Bruno Chloe Dmitri Emma Felix Gita Hannah Ivan Julia Karim Leo
Mia Nikolai Olga Pedro Rhea Stefan Tanya Ugo Vera Will""".split()
NOUNS = """budget deadline meeting project team customer release plan report review roadmap
schedule launch contract invoice account vendor product feature issue ticket bug test build
deployment server database migration design proposal estimate forecast revenue cost quarter
target metric dashboard survey feedback training onboarding policy process workflow approval
request decision risk dependency milestone sprint backlog story task owner stakeholder sponsor
partner supplier order shipment warehouse inventory price discount margin payroll hiring
candidate interview offer laptop badge office room floor building desk printer network password
incident outage alert backup license subscription renewal audit compliance security privacy
contractor agency campaign website app page login checkout cart payment refund support call
email message document spreadsheet slide deck presentation demo prototype pilot rollout
integration api endpoint service cluster region capacity latency storage cloud invoice template
agenda minutes action item summary update status blocker question answer problem solution idea
option scope requirement specification architecture diagram interface screen report analysis
data model pipeline query index search result version branch merge review change request
schedule calendar holiday vacation leave benefit bonus salary expense receipt travel flight
hotel conference workshop webinar newsletter announcement goal objective initiative program
portfolio department division headquarters branch site location region market segment
competitor trend growth churn retention conversion funnel lead prospect deal pipeline quota
commission territory forecast board committee council vote policy guideline standard
checklist procedure manual handbook course certificate exam module lesson quiz""".split()
VERBS = """review approve send finish update check fix ship deploy test schedule move cancel
postpone discuss share prepare draft sign renew migrate upgrade replace hire onboard train
escalate report track measure estimate budget plan book order pay refund close open merge
release document present demo validate audit confirm follow assign prioritize split finalize
circulate collect compare analyze investigate reproduce monitor configure install remove
archive restore backup invite notify remind call email""".split()
ADJECTIVES = """new old final current next previous quarterly monthly weekly annual urgent
critical minor major small large internal external public private regional global remote
onsite shared updated revised late early pending approved blocked delayed ready missing
broken stable slow fast expensive cheap available overdue strategic technical legal
financial operational customer-facing""".split()
PERIODS = "week month quarter year sprint cycle".split()
DAYS = """Monday Tuesday Wednesday Thursday Friday tomorrow today next-week end-of-month
January February March April May June July August September October November
December""".split()
FILLERS = ["", "", "", "So ", "Okay, ", "Um, ", "Yeah, ", "Right, ", "Well, ", "And "]

TRANSCRIPT_TEMPLATES = [
    "I think we should {V} the {N} before {D}.",
    "{P}, can you {V} the {A} {N} for the {J} team?",
    "The {N} is at {X} percent, which is {A} compared to last {T}.",
    "So the {J} {N} came in at {X} thousand dollars.",
    "We agreed that {P} will {V} the {N} by {D}.",
    "Let's move on to the {N} {N2}.",
    "Ticket {C} is still blocking the {J} {N}.",
    "{P} mentioned the {N} was {A} again this {T}.",
    "I can {V} that after the {N} review.",
    "Does anyone know who owns the {J} {N}?",
    "The {A} {N} for {J} is due on {D}.",
    "We need {X} more people on the {N} if we want to {V} it by {D}.",
    "Last {T} the {N} dropped by {X} percent.",
    "My main concern is the {N}, it is {A} and nobody has time to {V} it.",
    "{P} and {P2} will {V} the {N} together.",
    "Remember the {J} {N} moved to room {X}.",
    "The {N} from {J} still has not arrived.",
    "We should {V} the {N} with {P} first.",
    "Can we get the {A} {N} numbers before {D}?",
    "It costs about {X} dollars per {N} per {T}.",
    "I sent the {N} to {P} yesterday.",
    "The {J} {N} is {A}, so we will {V} it next {T}.",
]
SLIDE_BULLETS = [
    "{N}: {X}%", "{V} {N} by {D}", "Owner: {P}", "{J} {N} ({A})", "{X} {N}s this {T}",
    "Next step: {V} the {N}", "Risk: {A} {N}", "Ticket {C}", "{N} vs {N2}: {X} / {X2}",
]
SLIDE_TITLES = ["{A} {N} review", "Q{Q} {N} plan", "{J} {N}", "{N} status", "Agenda",
                "{N} and {N2}", "Action items", "{J} roadmap"]
QUERY_TEMPLATES = [
    "what did {P} say about the {N}", "when is the {N} deadline", "{J} {N} budget",
    "who will {V} the {A} {N}", "ticket {C}", "how much did the {J} {N} cost",
    "which room did the {J} {N} move to", "why is the {N} {A}",
    "what percent did the {N} drop last {T}", "who owns the {J} {N}",
    "{N} numbers for {D}", "plan to {V} the {N} with {P}",
]


def _jargon(count: int) -> list[str]:
    """Deterministic pronounceable made-up words (product names, internal jargon)."""
    rng = np.random.default_rng(7)
    onsets = "b br c ch d f g gr k l m n p pr r s st t tr v z".split()
    vowels = "a e i o u ai ou ea".split()
    codas = ["", "", "n", "r", "x", "s", "l", "m", "nt", "rk"]
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        word = "".join(onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))]
                       for _ in range(int(rng.integers(2, 4)))) + codas[rng.integers(len(codas))]
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class Vocabulary:
    """Zipf samplers over each word class; draws in bulk because 1M segments need ~30M words."""

    def __init__(self, jargon: int = 3000) -> None:
        jargon_words = _jargon(jargon)
        self.lists: dict[str, list[str]] = {
            "N": NOUNS + jargon_words[: jargon // 2], "J": jargon_words[jargon // 2:],
            "V": VERBS, "A": ADJECTIVES, "P": NAMES, "D": DAYS, "T": PERIODS,
        }
        self.probs = {key: self._zipf(len(words)) for key, words in self.lists.items()}

    @staticmethod
    def _zipf(n: int, s: float = 1.05) -> np.ndarray:
        p = 1.0 / np.arange(1, n + 1) ** s
        return p / p.sum()

    def size(self) -> int:
        return len({w.lower() for words in self.lists.values() for w in words})

    def stream(self, rng: np.random.Generator, key: str, n: int) -> Iterator[str]:
        words = self.lists[key]
        for i in rng.choice(len(words), size=n, p=self.probs[key]):
            yield words[i]


class Filler:
    """Fills {N} {P} {X} ... slots of templates from pre-drawn word streams."""

    def __init__(self, vocab: Vocabulary, rng: np.random.Generator, n_slots: int) -> None:
        self.rng = rng
        self.streams = {k: vocab.stream(rng, k, n_slots) for k in vocab.lists}
        self.numbers = iter(rng.integers(2, 500, size=n_slots).tolist())
        self.vocab = vocab

    def word(self, key: str) -> str:
        try:
            return next(self.streams[key])
        except StopIteration:  # ran past the pre-drawn amount: draw another batch
            self.streams[key] = self.vocab.stream(self.rng, key, 4096)
            return next(self.streams[key])

    def number(self) -> int:
        try:
            return next(self.numbers)
        except StopIteration:
            self.numbers = iter(self.rng.integers(2, 500, size=4096).tolist())
            return next(self.numbers)

    def fill(self, template: str) -> str:
        slots = {k: self.word(k) for k in "NJVAPDT" if "{" + k in template}
        if "{N2" in template:
            slots["N2"] = self.word("N")
        if "{P2" in template:
            slots["P2"] = self.word("P")
        if "{X" in template:
            slots["X"], slots["X2"] = self.number(), self.number()
        if "{C" in template:
            slots["C"] = f"{'ABCDEFGHJK'[self.number() % 10]}-{self.number()}"
        if "{Q" in template:
            slots["Q"] = 1 + self.number() % 4
        return template.format(**slots)


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    # Templates are Zipf-ish too: a few phrasings dominate, as in speech.
    weights = 1.0 / np.arange(1, len(items) + 1) ** 0.7
    return items[int(rng.choice(len(items), p=weights / weights.sum()))]


def _spoken(filler: str, sentence: str) -> str:
    if filler and sentence.split()[0] not in NAMES:
        sentence = sentence[0].lower() + sentence[1:]
    return filler + sentence


@functools.cache
def _topics() -> np.ndarray:
    return np.random.default_rng(11).standard_normal((256, DIM), dtype=np.float32)


def make_recording(i: int, per_recording: int, vocab: Vocabulary,
                   vectors: str = "random") -> dict[str, Any]:
    """Recording number i (deterministic in i): its info, segments and unit vectors."""
    from clipcite.retrieval.schema import SLIDES, TRANSCRIPT, Segment

    rng = np.random.default_rng([CORPUS_VERSION, i])
    n_slides = max(1, round(per_recording * SLIDE_SHARE))
    n_speech = per_recording - n_slides
    fill = Filler(vocab, rng, n_slots=per_recording * 14)
    speakers = list(rng.choice(NAMES, size=int(rng.integers(2, 7)), replace=False))
    speech: list[Segment] = []
    t = 0.0
    for _ in range(n_speech):
        sentences = [_spoken(FILLERS[int(rng.integers(len(FILLERS)))],
                             fill.fill(_pick(rng, TRANSCRIPT_TEMPLATES)))
                     for _ in range(int(rng.integers(1, 4)))]
        length = 3.0 + 3.5 * len(sentences) + float(rng.random()) * 2
        speech.append(Segment(TRANSCRIPT, t, t + length, " ".join(sentences),
                              speaker=str(speakers[int(rng.integers(len(speakers)))])))
        t += length + 0.4
    duration = t
    # As ingestion segments slides (ingestion/visual.py): one segment per line, the title alone
    # and then "Title: bullet", every line carrying its slide's time on screen.
    decks: list[list[str]] = []
    while sum(len(d) for d in decks) < n_slides:
        title = fill.fill(_pick(rng, SLIDE_TITLES)).capitalize()
        decks.append([title] + [f"{title}: {fill.fill(_pick(rng, SLIDE_BULLETS))}"
                                for _ in range(int(rng.integers(2, 6)))])
    step = duration / len(decks)
    slides = [Segment(SLIDES, s * step, (s + 1) * step, line)
              for s, deck in enumerate(decks) for line in deck][:n_slides]

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, DIM), dtype=np.float32)
        if vectors == "clustered":
            # Sensitivity check: real e5 passages lie near a few topics, not spread uniformly
            # over the sphere; uniform random vectors are HNSW's worst case (slowest build).
            topics = _topics()[rng.integers(0, len(_topics()), size=3)]
            v = topics[rng.integers(0, 3, size=n)] + 0.6 * v
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    title = f"{fill.fill('{A} {N} sync').capitalize()} #{i}"
    return {"media_id": f"rec{i:07d}", "path": f"/bench/meetings/rec{i:07d}.mp4", "title": title,
            "recorded_at": 1.70e9 + i * 3600.0, "duration": duration,
            "groups": [f"team{i % GROUPS}"],
            "segments": {TRANSCRIPT: speech, SLIDES: slides},
            "vectors": {TRANSCRIPT: unit(n_speech), SLIDES: unit(n_slides)}}


def make_queries(n: int, vocab: Vocabulary, seed: int = 99) -> list[str]:
    rng = np.random.default_rng(seed)
    fill = Filler(vocab, rng, n_slots=n * 6)
    return [fill.fill(QUERY_TEMPLATES[int(rng.integers(len(QUERY_TEMPLATES)))]) for _ in range(n)]


# -- build ------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def _timed(fn: Callable[..., Any], acc: dict[str, float], key: str) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[key] += time.perf_counter() - t
    return wrapper


def build(directory: Path, size: int, per_recording: int, vectors: str,
          deadline: float | None = None) -> dict[str, Any]:
    """Write `size` segments as size/per_recording recordings; resumes an interrupted build.

    Stops after the recording in progress when `deadline` (Unix time) passes; the result then
    says `partial` and the index holds every recording committed so far (searchable as is).
    """
    from clipcite.ingestion.extract import Extraction, package_versions
    from clipcite.ingestion.writer import write_recording
    from clipcite.retrieval.catalog import Recording
    from clipcite.retrieval.encoders import DEFAULT_TEXT_MODEL
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.schema import SLIDES, TRANSCRIPT

    n_recordings = size // per_recording
    index = Index(directory)
    # A killed build leaves its last generation uncommitted: the real garbage collection
    # removes it, exactly as after a crashed ingest.
    index.collect_garbage()
    done = {r.media_id for r in index.catalog.all()}
    state = _read_json(directory / PROGRESS_FILE) or {
        "version": CORPUS_VERSION, "per_recording": per_recording, "vectors": vectors,
        "add_s": 0.0, "fts_s": 0.0, "write_s": 0.0, "generate_s": 0.0, "runs": 0,
        "peak_mb": 0.0, "checkpoints": []}
    state["runs"] += 1
    acc = {"add": 0.0, "fts": 0.0}
    # Index.add writes Chroma (keyword rows are committed once per recording, from
    # commit_generation): timing both splits the write into its stores.
    index.keywords.add_rows = _timed(  # type: ignore[method-assign]
        index.keywords.add_rows, acc, "fts")
    index.add = _timed(index.add, acc, "add")  # type: ignore[method-assign]
    vocab = Vocabulary()
    last_report = 0.0
    total = len(done)
    for i in range(n_recordings):
        media_id = f"rec{i:07d}"
        if media_id in done:
            continue
        if deadline is not None and time.time() > deadline:
            break
        t = time.perf_counter()
        data = make_recording(i, per_recording, vocab, vectors)
        state["generate_s"] += time.perf_counter() - t
        models = {TRANSCRIPT: DEFAULT_TEXT_MODEL, SLIDES: DEFAULT_TEXT_MODEL,
                  "versions": package_versions()}
        extraction = Extraction(duration=data["duration"], title_tag=None, created_at=None,
                                segments=data["segments"], vectors=data["vectors"],
                                models=models, notes=[], timings={})
        rec = Recording(media_id=media_id, path=data["path"], title=data["title"],
                        status="pending", duration=data["duration"],
                        recorded_at=data["recorded_at"], tags=["bench"],
                        groups=data["groups"])
        before = dict(acc)
        t = time.perf_counter()
        write_recording(index, rec, extraction)
        state["write_s"] += time.perf_counter() - t
        state["add_s"] += acc["add"] - before["add"]
        state["fts_s"] += acc["fts"] - before["fts"]
        state["peak_mb"] = max(state["peak_mb"], _rss_mb())
        total += 1
        if total % 25 == 0 or total == n_recordings:
            # (segments, cumulative write seconds): the rate late in the build, for estimates.
            state["checkpoints"].append([total * per_recording, round(state["write_s"], 2)])
        _write_json(directory / PROGRESS_FILE, state)
        now = time.perf_counter()
        if now - last_report > 15 or total == n_recordings:
            last_report = now
            print(f"  [{size}] {total}/{n_recordings} recordings, "
                  f"{total * per_recording / state['write_s']:,.0f} segments/s overall, "
                  f"{_recent_rate(state['checkpoints']):,.0f} recently; chroma "
                  f"{state['add_s']:.0f} s, keywords {state['fts_s']:.0f} s, "
                  f"rss {_rss_mb():.0f} MB", file=sys.stderr, flush=True)
    result = {"version": CORPUS_VERSION, "vectors": vectors, "segments": total * per_recording,
              "target_segments": n_recordings * per_recording, "partial": total < n_recordings,
              "recordings": total, "per_recording": per_recording,
              "chroma_s": state["add_s"], "fts_s": state["fts_s"],
              "write_s": state["write_s"], "generate_s": state["generate_s"],
              "runs": state["runs"], "build_peak_mb": state["peak_mb"],
              "recent_rate": _recent_rate(state["checkpoints"]), "vocabulary": vocab.size()}
    if not result["partial"]:
        _write_json(directory / DONE_FILE, result)
    return result


def _recent_rate(checkpoints: list[list[float]]) -> float:
    """Segments per second of writing over the last ~10% of the build so far."""
    if len(checkpoints) < 2:
        return checkpoints[0][0] / checkpoints[0][1] if checkpoints else float("nan")
    last = checkpoints[-1]
    first = next((c for c in checkpoints if c[0] >= 0.9 * last[0]), checkpoints[-2])
    if first is last:
        first = checkpoints[-2]
    return (last[0] - first[0]) / max(last[1] - first[1], 1e-9)


# -- measure ----------------------------------------------------------------------------------
FILTERED = ("tenth", "speaker", "recording")


def filtered_case(case: str, i: int, n_recordings: int) -> Any:
    """Query i's filter of each kind: a caller in one access group (a tenth of the archive),
    one speaker (2-6 of NAMES speak in each recording), one recording."""
    from clipcite.retrieval.filters import Filters

    if case == "tenth":
        return Filters(groups=frozenset({f"team{i % GROUPS}"}))
    if case == "speaker":
        return Filters(speaker=NAMES[i % len(NAMES)])
    return Filters(recordings=(f"rec{(i * 7919) % max(n_recordings, 1):07d}",))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def measure(directory: Path, n_queries: int) -> dict[str, Any]:
    """Latencies over n_queries (after warm-up) in this fresh process, and its peak RSS."""
    from clipcite.retrieval.encoders import load_text_encoder
    from clipcite.retrieval.filters import Filters, visible_recordings
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.schema import SLIDES, TRANSCRIPT
    from clipcite.retrieval.search import Searcher, search

    index = Index(directory)
    searcher = Searcher(index=index, text=load_text_encoder())
    queries = make_queries(WARMUP + n_queries, Vocabulary())
    for q in queries[:WARMUP]:
        search(searcher, q, k=10)
    depth = 40  # what search() asks each list for at k=10: max(k * 4, 20)
    gens = [r.gen for r in visible_recordings(index, Filters()) if r.gen]
    allowed = set(gens)
    col = index.collection(TRANSCRIPT)
    times: dict[str, list[float]] = {}

    def timed(key: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = fn()
        times.setdefault(key, []).append((time.perf_counter() - t) * 1000)
        return out

    results = 0
    for i, q in enumerate(queries[WARMUP:]):
        results += len(timed("fused", lambda: search(searcher, q, k=10)))
        for case in FILTERED:
            chosen = filtered_case(case, i, len(gens))
            timed(f"filtered_{case}", lambda: search(searcher, q, k=10, filters=chosen))
        timed("dense_only", lambda: search(searcher, q, k=10, methods=("dense",)))
        timed("keyword_only", lambda: search(searcher, q, k=10, methods=("keyword",)))
        # The parts, to see what dominates: encoding, the catalog read, each store as search
        # calls it, and the alternatives measured against (a Chroma query with the visible-
        # generations filter or loading every result).
        vec = timed("encode", lambda: searcher.text.embed_queries([q])[0])
        timed("catalog", lambda: visible_recordings(index, Filters()))
        hits = timed("index_query", lambda: index.query(TRANSCRIPT, vec, depth, gens,
                                                        hydrate=False))
        timed("chroma_filtered", lambda: col.query(
            query_embeddings=np.asarray([vec]), n_results=depth, where={"gen": {"$in": gens}},
            include=["documents", "metadatas", "distances"]))
        timed("chroma_unfiltered", lambda: col.query(
            query_embeddings=np.asarray([vec]), n_results=depth,
            include=["documents", "metadatas", "distances"]))
        timed("keyword_scan", lambda: index.keywords.search_modalities(
            q, (TRANSCRIPT, SLIDES), gens, depth))
        timed("hydrate", lambda: index.hydrate(hits[:30], allowed))  # what search() loads
    stats = {f"{k}_p50": _pct(v, 50) for k, v in times.items()}
    stats.update({f"{k}_p95": _pct(v, 95) for k, v in times.items()})
    stats.update({"queries": n_queries, "gens": len(gens), "results": results / n_queries,
                  "search_peak_mb": _rss_mb(), "example_queries": queries[WARMUP:WARMUP + 3]})
    return stats


def cold(directory: Path, started: float) -> dict[str, Any]:
    """Open the index in this new process and answer one query (the OS page cache may be warm).

    The e5 model loads on its first use, so one encode runs before the timed query: the first
    query's time is then the index's own cold cost (catalog, HNSW and keyword index pages).
    """
    t = time.perf_counter()
    from clipcite.retrieval.encoders import load_text_encoder
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.search import Searcher, search
    imports = time.perf_counter() - t
    t = time.perf_counter()
    encoder = load_text_encoder()
    encoder.embed_queries(["warm up the encoder"])
    encode_first_s = time.perf_counter() - t
    t = time.perf_counter()
    index = Index(directory)
    open_s = time.perf_counter() - t
    query = make_queries(1, Vocabulary(), seed=5)[0]
    gens = [r.gen for r in index.catalog.visible() if r.gen]
    # BM25 has little to load (tantivy maps its files and reads on demand): its "load" is the
    # first scan in a new process, timed before the first search warms those pages.
    t = time.perf_counter()
    index.keywords.search_modalities(query, ("transcript", "slides"), gens, 40)
    bm25_first_s = time.perf_counter() - t
    t = time.perf_counter()
    search(Searcher(index=index, text=encoder), query, k=10)
    first_s = time.perf_counter() - t
    return {"imports_s": imports, "encode_first_s": encode_first_s, "open_s": open_s,
            "bm25_first_s": bm25_first_s, "first_query_s": first_s,
            "process_s": time.perf_counter() - started}


def disk_mb(path: Path) -> dict[str, float]:
    def size(p: Path) -> float:
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        return sum(f.stat().st_blocks * 512 for f in files) / 2**20
    return {"chroma_mb": size(path / "chroma"),
            "catalog_mb": sum(size(f) for f in path.glob("catalog.sqlite3*"))
            + size(path / "keywords")}  # the keyword index, in the catalog file until tantivy


# -- BM25 and catalog alone (where the Chroma build would take hours) --------------------------
def build_bm25(directory: Path, size: int, per_recording: int) -> dict[str, Any]:
    """The catalog and keyword documents of `size` segments (same texts as build(), no
    vectors), as write_recording writes them: begin_generation, one keyword commit of the
    recording's rows (Index.add holds them back until the catalog commits), commit."""
    import uuid

    from clipcite.retrieval.catalog import Recording
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.schema import segment_id

    index = Index(directory)
    index.collect_garbage()
    done = {r.media_id for r in index.catalog.all()}
    vocab = Vocabulary()
    fts_s = generate_s = 0.0
    for i in range(size // per_recording):
        media_id = f"rec{i:07d}"
        if media_id in done:
            continue
        t = time.perf_counter()
        data = make_recording(i, per_recording, vocab)
        generate_s += time.perf_counter() - t
        t = time.perf_counter()
        gen = uuid.uuid4().hex[:12]
        index.catalog.begin_generation(gen)
        index.keywords.add_rows([(segment_id(media_id, gen, modality, n), gen, modality, g.text)
                                 for modality, segments in data["segments"].items()
                                 for n, g in enumerate(segments)])
        index.catalog.commit_generation(Recording(
            media_id=media_id, path=data["path"], title=data["title"], status="pending",
            duration=data["duration"], recorded_at=data["recorded_at"], tags=["bench"],
            groups=data["groups"], gen=gen))
        fts_s += time.perf_counter() - t
        if i % 500 == 0:
            print(f"  [bm25 {size}] {i} recordings, keywords {fts_s:.0f} s", file=sys.stderr,
                  flush=True)
    result = {"segments": size, "recordings": size // per_recording, "fts_s": fts_s,
              "generate_s": generate_s, "build_peak_mb": _rss_mb()}
    _write_json(directory / DONE_FILE, result)
    return result


def measure_bm25(directory: Path, n_queries: int) -> dict[str, Any]:
    """Cold first scan, then p50/p95 of the keyword scan and the catalog read, peak RSS."""
    from clipcite.retrieval.filters import Filters, visible_recordings
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.schema import SLIDES, TRANSCRIPT

    t = time.perf_counter()
    index = Index(directory)
    open_s = time.perf_counter() - t
    queries = make_queries(WARMUP + n_queries, Vocabulary())
    gens = [r.gen for r in visible_recordings(index, Filters()) if r.gen]
    t = time.perf_counter()
    index.keywords.search_modalities(queries[0], (TRANSCRIPT, SLIDES), gens, 40)
    first_s = time.perf_counter() - t
    scan, catalog, tenth, one = [], [], [], []
    for i, q in enumerate(queries[WARMUP:]):
        t = time.perf_counter()
        index.keywords.search_modalities(q, (TRANSCRIPT, SLIDES), gens, 40)
        scan.append((time.perf_counter() - t) * 1000)
        # The keyword half of filtered searches: a tenth of the generations, and one.
        for chosen, times in (([g for n, g in enumerate(gens) if n % GROUPS == i % GROUPS],
                               tenth), ([gens[(i * 7919) % len(gens)]], one)):
            t = time.perf_counter()
            index.keywords.search_modalities(q, (TRANSCRIPT, SLIDES), chosen, 40)
            times.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        visible_recordings(index, Filters())
        catalog.append((time.perf_counter() - t) * 1000)
    index.catalog._changed()  # one uncached catalog read, what the first search pays
    t = time.perf_counter()
    visible_recordings(index, Filters())
    catalog_cold_ms = (time.perf_counter() - t) * 1000
    return {"open_s": open_s, "bm25_first_s": first_s, "scan_p50": _pct(scan, 50),
            "scan_p95": _pct(scan, 95), "catalog_p50": _pct(catalog, 50),
            "scan_tenth_p50": _pct(tenth, 50), "scan_one_p50": _pct(one, 50),
            "catalog_uncached_ms": catalog_cold_ms, "search_peak_mb": _rss_mb()}


def bench_bm25(size: int, args: argparse.Namespace) -> dict[str, Any]:
    directory = args.dir / f"seg{size}-bm25"
    args.dir.mkdir(parents=True, exist_ok=True)
    with open(args.dir / f"seg{size}-bm25.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = _read_json(directory / DONE_FILE)
        if args.rebuild or not done or done.get("segments") != size:
            print(f"building BM25 + catalog for {size:,} segments ({_load()}) ...",
                  file=sys.stderr)
            args.child_size = size
            done = run_child("build-bm25", directory, args)
        row = {**done, **disk_mb(directory), "load_before": _load()}
        runs = [run_child("measure-bm25", directory, args) for _ in range(args.measure_runs)]
        for key in runs[0]:
            row[key] = float(np.median([r[key] for r in runs]))
        row["load_after"] = _load()
        return row


def table_bm25(rows: list[dict[str, Any]]) -> str:
    head = ["segments", "recordings", "keyword build s", "catalog + keywords MB", "BM25 scan p50 ms",
            "BM25 scan p95 ms", "scan p50 ms, a tenth of gens / one gen",
            "catalog read p50 ms (cached / uncached)",
            "BM25 cold 1st scan s", "peak RSS MB", "load avg before -> after"]
    lines = ["BM25 and catalog alone (--bm25-only; one keyword scan = both text modalities, "
             "depth 40, all generations visible):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            f"{r['segments']:,}", f"{r['recordings']:,}", f"{r['fts_s']:.0f}",
            f"{r['catalog_mb']:,.0f}", f"**{r['scan_p50']:.0f}**", f"{r['scan_p95']:.0f}",
            f"{r.get('scan_tenth_p50', float('nan')):.1f} / "
            f"{r.get('scan_one_p50', float('nan')):.1f}",
            f"{r['catalog_p50']:.2f} / {r['catalog_uncached_ms']:.0f}",
            f"{r['bm25_first_s']:.2f}", f"{r['search_peak_mb']:,.0f}",
            f"{r['load_before']} -> {r['load_after']}"]) + " |")
    return "\n".join(lines)


# -- driver -----------------------------------------------------------------------------------
def run_child(mode: str, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, __file__, "--child", mode, "--child-dir", str(directory),
           "--queries", str(args.queries), "--per-recording", str(args.per_recording),
           "--vectors", args.vectors, "--child-started", repr(time.time())]
    if mode in ("build", "build-bm25"):
        cmd += ["--child-size", str(args.child_size)]
        if args.max_build_minutes:
            cmd += ["--child-deadline", repr(time.time() + args.max_build_minutes * 60)]
    # stderr passes through, so build progress shows live.
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _code_state() -> str:
    """The commit measured, and retrieval/ files changed since it (numbers depend on them)."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True).stdout
    try:
        head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
        dirty = git("status", "--porcelain", "--", "retrieval").split()
    except OSError:
        return "unknown (no git)"
    changed = [f for f in dirty if f.startswith("retrieval/")]
    return f"commit {head}" + (f", uncommitted changes in {', '.join(changed)}" if changed else "")


def _load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def bench_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    suffix = "" if args.vectors == "random" else f"-{args.vectors}"
    directory = args.dir / f"seg{size}{suffix}"
    args.dir.mkdir(parents=True, exist_ok=True)
    with open(args.dir / f"seg{size}{suffix}.lock", "w") as lock:
        # Two runs building one index at once corrupt Chroma's HNSW segment (seen: "Failed to
        # apply logs to the hnsw segment writer"), and measuring during a build is meaningless.
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting: another bench_search run is using {directory}", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _bench_size_locked(size, directory, args)


def _bench_size_locked(size: int, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    same = {"version": CORPUS_VERSION, "per_recording": args.per_recording,
            "vectors": args.vectors}
    done = _read_json(directory / DONE_FILE)
    fresh = args.rebuild or not (done and done.get("segments") == size
                                 and all(done.get(k) == v for k, v in same.items()))
    progress = _read_json(directory / PROGRESS_FILE)
    resumable = progress and all(progress.get(k) == v for k, v in same.items()) and not done
    if fresh and directory.exists() and (args.rebuild or not resumable):
        shutil.rmtree(directory)
    if fresh:
        print(f"building {size:,} segments in {directory} ({_load()}) ...", file=sys.stderr)
        args.child_size = size
        done = run_child("build", directory, args)
        if done["partial"]:
            print(f"  stopped at {done['segments']:,} of {size:,} segments "
                  f"(--max-build-minutes); measuring what is built", file=sys.stderr)
    else:
        print(f"reusing {directory} (built in {done['runs']} run(s))", file=sys.stderr)
    print(f"measuring {size:,} ({_load()}) ...", file=sys.stderr)
    if not done["segments"]:
        raise SystemExit(f"nothing built in {directory} yet; give the build more time")
    row: dict[str, Any] = {"size": size, **done, **disk_mb(directory), "load_before": _load()}
    # Other workers share the 2 cores: several measuring processes, each statistic's median.
    runs = [run_child("measure", directory, args) for _ in range(args.measure_runs)]
    row.update(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            row[key] = float(np.median([r[key] for r in runs]))
    row["fused_p50_runs"] = [r["fused_p50"] for r in runs]
    colds = [run_child("cold", directory, args) for _ in range(args.cold_runs)]
    # The median run: the first cold run of a size also pays for the OS page cache.
    colds.sort(key=lambda c: c["open_s"] + c["first_query_s"])
    row.update(colds[len(colds) // 2])
    row["cold_first_run_s"] = max(c["open_s"] + c["first_query_s"] for c in colds)
    row["load_after"] = _load()
    print(f"  {size:,}: fused p50 {row['fused_p50']:.0f} ms", file=sys.stderr)
    return row


def _num(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:,.0f}"  # None or NaN: "-"


def tables(rows: list[dict[str, Any]]) -> str:
    head = ["segments", "recordings", "build: chroma s / keywords s", "build seg/s (late)",
            "disk MB (chroma + catalog)", "fused p50 ms", "fused p95 ms", "dense-only p50 ms",
            "keyword-only p50 ms", "filtered p50 ms: a tenth / a speaker / a recording",
            "peak RSS MB (search / build)",
            "cold: open + BM25 1st scan + 1st search s",
            f"target p50 <= {TARGET_MS:.0f} ms @ {TARGET_SIZE:,}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for r in rows:
        verdict = "-"
        if r["segments"] == TARGET_SIZE:
            verdict = "ok" if r["fused_p50"] <= TARGET_MS else "MISSED"
        size = f"{r['segments']:,}"
        if r.get("partial"):
            size += f" (partial; of {r['target_segments']:,})"
            left = r["target_segments"] - r["segments"]
            notes.append(f"{r['target_segments']:,}: built {r['segments']:,} segments in "
                         f"{r['write_s'] / 60:.0f} min of writing; at the late rate of "
                         f"{r['recent_rate']:,.0f} segments/s the other {left:,} need at least "
                         f"{left / r['recent_rate'] / 60:.0f} min more (the rate still falls as "
                         f"the HNSW graph grows). Re-run to resume.")
        lines.append("| " + " | ".join([
            size, f"{r['recordings']:,}", f"{r['chroma_s']:.0f} / {r['fts_s']:.0f}",
            f"{r['segments'] / r['write_s']:,.0f} ({_num(r.get('recent_rate'))})",
            f"{r['chroma_mb'] + r['catalog_mb']:,.0f} "
            f"({r['chroma_mb']:,.0f} + {r['catalog_mb']:,.0f})",
            f"**{r['fused_p50']:.0f}**", f"{r['fused_p95']:.0f}", f"{r['dense_only_p50']:.0f}",
            f"{r['keyword_only_p50']:.0f}",
            " / ".join(_num(r.get(f"filtered_{c}_p50")) for c in FILTERED),
            f"{r['search_peak_mb']:,.0f} / {r['build_peak_mb']:,.0f}",
            f"{r['open_s']:.1f} + {r.get('bm25_first_s', float('nan')):.2f} + "
            f"{r['first_query_s']:.1f}", verdict]) + " |")
    lines += [""] + notes if notes else []
    parts = ["encode", "catalog", "index_query", "hydrate", "keyword_scan", "chroma_filtered",
             "chroma_unfiltered"]
    head2 = ["segments", "visible gens", *[f"{p} p50 ms" for p in parts],
             "fused p50 of each run ms", "e5 first encode s", "load avg before -> after"]
    lines += ["", "Parts, p50 of one call at depth 40. A fused search = 1 catalog read (cached "
              "until the catalog changes) + 1 encode + per text modality 1 index_query "
              "(Chroma, ids only) + 1 keyword_scan (one keyword search per modality) + 1 "
              "hydrate (text and metadata of the fused top 30). The last two columns are the "
              "alternatives measured against: a Chroma query with the visible-generations "
              "filter (gen $in [...]) and an unfiltered one loading every result:", "",
              "| " + " | ".join(head2) + " |", "|" + "---|" * len(head2)]
    for r in rows:
        lines.append("| " + " | ".join([
            f"{r['segments']:,}", f"{r['gens']:,}",
            *[f"{r.get(p + '_p50', float('nan')):.1f}" for p in parts],
            " / ".join(f"{v:.0f}" for v in r.get("fused_p50_runs", [r["fused_p50"]])),
            f"{r['encode_first_s']:.1f}",
            f"{r['load_before']} -> {r['load_after']}"]) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="segment counts, comma-separated (e.g. 10000,100000,1000000)")
    parser.add_argument("--dir", type=Path, default=REPO / "tests" / "artifacts" / "bench-search")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--per-recording", type=int, default=200)
    parser.add_argument("--vectors", choices=["random", "clustered"], default="random",
                        help="passage vectors: uniform random unit vectors, or clustered around "
                             "topics (closer to real embeddings; a sensitivity check)")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--measure-runs", type=int, default=3,
                        help="measuring processes per size; the table shows medians")
    parser.add_argument("--bm25-only", action="store_true",
                        help="build and measure only the catalog and the keyword index "
                             "(minutes at 1M, where the Chroma build takes hours)")
    parser.add_argument("--rebuild", action="store_true", help="discard built indexes first")
    parser.add_argument("--max-build-minutes", type=float, default=0,
                        help="stop a build after this long and measure the part built; the "
                             "next run resumes it (0: no limit)")
    parser.add_argument("--child", choices=["build", "measure", "cold", "build-bm25",
                                            "measure-bm25"], help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-started", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--child-deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "build":
        print(json.dumps(build(args.child_dir, args.child_size, args.per_recording,
                               args.vectors, args.child_deadline)))
        return 0
    if args.child == "measure":
        print(json.dumps(measure(args.child_dir, args.queries)))
        return 0
    if args.child == "build-bm25":
        print(json.dumps(build_bm25(args.child_dir, args.child_size, args.per_recording)))
        return 0
    if args.child == "measure-bm25":
        print(json.dumps(measure_bm25(args.child_dir, args.queries)))
        return 0
    if args.child == "cold":
        # Wall time since the parent launched us, so interpreter start-up is included.
        started = time.perf_counter() - (time.time() - args.child_started)
        print(json.dumps(cold(args.child_dir, started)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.bm25_only:
        print(table_bm25([bench_bm25(size, args) for size in sizes]))
    else:
        print(tables([bench_size(size, args) for size in sizes]))
    print(f"\nMeasured code: {_code_state()}; {os.cpu_count()} CPUs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
