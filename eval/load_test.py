"""Load: 20 concurrent clients search one index while `clipcite ingest` writes to it.

    .venv/bin/python eval/load_test.py [--clients 20] [--queries 10] [--out eval/LOAD.md]

Builds an index of three real recordings (../shared/media), starts `clipcite ingest` of eight
more files into the same index (another process, as a user would), and once that run is
writing, starts the clients: threads in this process, each with its own Index handle (its own
SQLite connection, as the web app's threads have) and the shared e5 encoder, each running the
development questions through `retrieval.search.search` - the path the CLI, the web app and the
assistant use. Bounded: a fixed number of searches per client, nothing leaves the machine.
Prints a table and writes it to --out; an error is any exception or a result that is not a
list of moments of indexed recordings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from clipcite.ui.environment import set_defaults  # noqa: E402

set_defaults()  # before any model library loads, as the CLI does
MEDIA = REPO.parent / "shared" / "media"
CLI = REPO / ".venv" / "bin" / "clipcite"
BASE = ["sample.wav", "jfk.flac", "dev00.wav"]
MORE = ["dev01.wav", "tst00.wav", "sample.wav", "dev00.wav"]  # ingested under new names


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _writing(catalog: Path) -> bool:
    """True once the ingest has committed a recording or is writing one."""
    try:
        db = sqlite3.connect(str(catalog), timeout=5)
        try:
            n = db.execute("SELECT count(*) FROM garbage WHERE retired=0").fetchone()[0]
            m = db.execute("SELECT count(*) FROM recordings WHERE gen IS NOT NULL").fetchone()[0]
            return bool(n) or m > len(BASE)
        finally:
            db.close()
    except sqlite3.Error:
        return False


def freshness(index, encoder, base: set[str]) -> tuple[int, int, int]:
    """Of the recordings the other process committed, how many can this long-running process
    find by their own first sentence (dense search, top 5): as it is, and with its Chroma
    client reopened. Chroma loads a collection's vector index once per process."""
    import chromadb

    from clipcite.retrieval.index import Index
    from clipcite.retrieval.schema import TRANSCRIPT
    from clipcite.retrieval.search import Searcher

    probes = []
    for rec in index.catalog.visible():
        if Path(rec.path).name not in base:
            segs = index.segments(TRANSCRIPT, [rec.gen])
            if segs:
                probes.append((segs[0].id, segs[0].text, rec.gen))
    gens = [r.gen for r in index.catalog.visible()]

    def found(idx) -> int:
        searcher = Searcher(idx, encoder)
        return sum(seg_id in {h.id for h in searcher.dense(TRANSCRIPT, text, 5, gens)}
                   for seg_id, text, _ in probes)

    before = found(index)
    chromadb.api.client.SharedSystemClient.clear_system_cache()
    return before, found(Index(index.directory)), len(probes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--queries", type=int, default=40, help="searches per client")
    ap.add_argument("--writes", type=int, default=2,
                    help="keep searching until the ingest has committed this many recordings")
    ap.add_argument("--max-seconds", type=float, default=240, help="the bound on the load")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "eval" / "LOAD.md"))
    args = ap.parse_args(argv)

    from clipcite.retrieval.encoders import load_text_encoder
    from clipcite.retrieval.index import CATALOG_FILE, Index
    from clipcite.retrieval.search import Searcher, search

    work = Path(tempfile.mkdtemp(prefix="clipcite-load-"))
    index_dir, base, more = work / "index", work / "base", work / "more"
    base.mkdir(), more.mkdir()
    for name in BASE:
        shutil.copyfile(MEDIA / name, base / name)
    for i, name in enumerate(MORE):
        for copy in range(2):
            shutil.copyfile(MEDIA / name, more / f"{Path(name).stem}-{i}{copy}{Path(name).suffix}")
    env = {**os.environ, "COLUMNS": "160"}
    t0 = time.monotonic()
    subprocess.run([str(CLI), "ingest", str(base), "--index", str(index_dir)], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    print(f"base index: {len(BASE)} recordings in {time.monotonic() - t0:.0f} s", flush=True)

    questions = [json.loads(line)["query"] for line in
                 (REPO / "eval" / "dev_queries.jsonl").read_text().splitlines() if line.strip()]
    encoder = load_text_encoder()
    log = open(work / "ingest.log", "w")
    ingest = subprocess.Popen([str(CLI), "ingest", str(more), "--index", str(index_dir)],
                              env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    while ingest.poll() is None and not _writing(index_dir / CATALOG_FILE):
        time.sleep(0.2)

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(args.clients)
    stop = threading.Event()  # set once the ingest has committed --writes recordings
    Index(index_dir)  # Chroma's client cache is filled once, not raced by 20 threads

    def client(n: int) -> None:
        try:
            searcher = Searcher(Index(index_dir), encoder)  # its own SQLite connection
        except Exception as e:  # noqa: BLE001 - counted, not raised
            with lock:
                errors.append(f"open: {type(e).__name__}: {e}")
            go.abort()
            return
        try:
            go.wait(timeout=300)  # all start together
        except threading.BrokenBarrierError:
            pass
        i = 0
        while (i < args.queries or not stop.is_set()) and \
                time.monotonic() - started < args.max_seconds:
            i += 1
            q = questions[(n * args.queries + i) % len(questions)]
            searcher._vectors.clear()  # every search encodes its question, as a new one would
            start = time.monotonic()
            try:
                moments = search(searcher, q, k=args.k)
                ok = isinstance(moments, list) and all(m.path and m.start <= m.end
                                                        for m in moments)
                problem = None if ok else f"bad result for {q!r}"
            except Exception as e:  # noqa: BLE001
                problem = f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
            took = time.monotonic() - start
            with lock:
                latencies.append(took)
                if problem:
                    errors.append(problem)
        searcher.index.catalog.close()

    def committed() -> int:
        db = sqlite3.connect(str(index_dir / CATALOG_FILE), timeout=30)
        try:
            return db.execute("SELECT count(*) FROM recordings WHERE gen IS NOT NULL"
                              ).fetchone()[0] - len(BASE)
        finally:
            db.close()

    before = committed()
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if committed() - before >= args.writes or ingest.poll() is not None:
            stop.set()
        time.sleep(0.5)
    wall = time.monotonic() - started
    overlapped = ingest.poll() is None  # still ingesting when the last search ended
    ingested = committed()
    if ingest.poll() is None:
        os.killpg(ingest.pid, signal.SIGINT)  # a clean stop; what it finished stays indexed
        try:
            ingest.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(ingest.pid, signal.SIGKILL)
            ingest.wait()
    fresh = freshness(Index(index_dir), encoder, set(BASE))
    ms = [x * 1000 for x in latencies]
    rows = [
        ("clients", f"{args.clients}"),
        ("searches", f"{len(latencies)} (at least {args.queries} each, k={args.k}, hybrid, "
                     "all modalities)"),
        ("p50 latency", f"{statistics.median(ms):.0f} ms" if ms else "-"),
        ("p95 latency", f"{percentile(ms, 0.95):.0f} ms" if ms else "-"),
        ("max latency", f"{max(ms):.0f} ms" if ms else "-"),
        ("throughput", f"{len(latencies) / wall:.1f} searches/s over {wall:.0f} s"),
        ("errors", f"{len(errors)}"),
        ("new recordings found by dense search in this process",
         f"{fresh[0]} of {fresh[2]} (after reopening the Chroma client: {fresh[1]})"),
        ("ingest during the load", f"{'running throughout' if overlapped else 'ended before the last search'}; "
                                   f"{ingested - before} recordings committed during the window "
                                   f"({before} before it, {len(MORE) * 2} in all)"),
    ]
    cpu = os.cpu_count()
    load = os.getloadavg()[0]
    table = "\n".join(["| measure | value |", "|---|---|",
                       *[f"| {k} | {v} |" for k, v in rows]])
    text = (f"# Load test (eval/load_test.py)\n\n{args.clients} concurrent clients (threads, "
            f"each its own index handle) run `retrieval.search.search` over one index while "
            f"`clipcite ingest` adds {len(MORE) * 2} recordings to it from another process. "
            f"{cpu} CPU cores, load average {load:.1f} at the end (the machine is shared).\n\n"
            f"{table}\n\nA long-running process reads the catalog and the keyword index fresh and "
            "swaps in a new embedded Chroma view when the catalog shows a generation its view "
            "lacks (retrieval/chroma_views.py), so the recordings another process commits are "
            "found by dense search too; the row above counts them in this process.\n")
    if errors:
        text += "\nErrors:\n\n" + "\n".join(f"- {e}" for e in sorted(set(errors))[:20]) + "\n"
    if ingest.returncode not in (0, -signal.SIGINT, 130):
        log.close()
        tail = (work / "ingest.log").read_text()[-600:]
        text += f"\nThe ingest ended with exit code {ingest.returncode}:\n\n```\n{tail}\n```\n"
    print(text)
    Path(args.out).write_text(text)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
