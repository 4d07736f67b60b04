"""Writing into a large index: segments per second through `clipcite ingest --workers N`.

    .venv/bin/python eval/bench_ingest_scale.py [--base tests/artifacts/bench-search/seg1000000]
        [--workers 2] [--files 8] [FILE ...]

Copies the base index (one eval/bench_search.py built) to a scratch folder and ingests the same
files through the real CLI (`clipcite ingest --workers N --json`) into that copy and into an
empty index, in the same run. The files are transcripts (by default the first --files QMSum
meetings as WebVTT, from `eval/qmsum.py`): no speech recognition, so encoding and writing are
the whole ingest and the writer's share shows. Per index the table gives the segments written,
the wall time, the single writer's seconds (`write_seconds` of each file, summed) and segments
per second of writing and of wall time. Markdown on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
QMSUM_VTT = REPO / "tests" / "artifacts" / "qmsum" / "vtt"
BASE = REPO / "tests" / "artifacts" / "bench-search" / "seg1000000"


def ingest(index: Path, files: list[Path], workers: int) -> dict[str, Any]:
    """Run `clipcite ingest` on files into index; its per-file JSON lines, summed."""
    cmd = [str(REPO / ".venv" / "bin" / "clipcite"), "ingest", "--index", str(index),
           "--workers", str(workers), "--json", *map(str, files)]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    done = [x for x in lines if x.get("type") == "file" and x["status"] == "indexed"]
    if out.returncode != 0 or len(done) != len(files):
        sys.exit(f"ingest into {index} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    segments = sum(sum(x["segments"].values()) for x in done)
    write = sum(x["write_seconds"] for x in done)
    return {"files": len(done), "segments": segments, "wall_s": wall, "write_s": write,
            "written_per_s": segments / max(write, 1e-9), "per_wall_s": segments / wall}


def base_segments(index: Path) -> int:
    """Segments the base index holds, from the catalog (cheaper than counting Chroma)."""
    sys.path.insert(0, str(REPO))
    from clipcite.retrieval.index import Index

    return sum(sum(r.counts.values()) for r in Index(index).catalog.all())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, metavar="FILE")
    parser.add_argument("--base", type=Path, default=BASE)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--files", type=int, default=8,
                        help="QMSum transcripts to ingest when no FILE is given")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="folder for the copies (default: a temporary one)")
    args = parser.parse_args()
    files = args.paths or sorted(QMSUM_VTT.glob("*.vtt"))[:args.files]
    if not files:
        sys.exit(f"no files: give some, or build {QMSUM_VTT} with eval/qmsum.py")
    if not (args.base / "catalog.sqlite3").is_file():
        sys.exit(f"no index at {args.base}: build it with eval/bench_search.py")
    rows = []
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        big = Path(scratch) / "big"
        print(f"copying {args.base} ...", file=sys.stderr, flush=True)
        shutil.copytree(args.base, big)
        held = base_segments(big)
        for name, index in (("empty index", Path(scratch) / "empty"),
                            (f"index of {held:,} segments", big)):
            print(f"ingesting {len(files)} files into the {name} ...", file=sys.stderr,
                  flush=True)
            rows.append((name, ingest(index, files, args.workers)))
    print("| into | files | segments | wall s | writer s | segments/s written | "
          "segments/s wall |\n|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['files']} | {r['segments']:,} | {r['wall_s']:.0f} | "
              f"{r['write_s']:.1f} | {r['written_per_s']:,.0f} | {r['per_wall_s']:,.0f} |")
    print(f"\n--workers {args.workers}; {os.cpu_count()} CPUs; load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
