"""Ingestion speed and memory, per stage, on real recordings and a generated 10-minute slide video.

    .venv/bin/python eval/bench_ingest.py [--media ../shared/media] [--minutes 10] [--threads 2]
                                          [--asr-model base] [--no-video]

Each file runs in a fresh process (so peak memory is that file's, models included) through the
same extract + write path as `clipcite ingest`, minus the worker pool. Real-time factor (RTF) is
stage seconds / recording seconds, and the total is the file's wall time (speakers overlaps
speech); model loading is reported apart, as it happens once per worker, not per file.
Targets on 2 cores: whole-ingest RTF <= 0.15 (audio), <= 0.25 (slide video).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STAGES = ("decode", "frames", "ocr", "clip", "speech", "speakers", "embed", "write")
TARGET = {"audio": 0.15, "video": 0.25}


def measure_one(path: Path, threads: int, asr_model: str) -> dict:
    """Ingest one file into a throwaway index; stage timings and this process's peak RSS."""
    from clipcite.ingestion.extract import ExtractOptions, Models, extract
    from clipcite.ingestion.asr import AsrOptions
    from clipcite.ingestion.files import media_id_for, title_from_path
    from clipcite.ingestion.writer import write_recording
    from clipcite.retrieval.catalog import Recording
    from clipcite.retrieval.index import Index

    options = ExtractOptions(asr=AsrOptions(model=asr_model, threads=threads), threads=threads,
                             cache_dir=Path.home() / ".cache" / "clipcite")
    models = Models(options)
    t = time.perf_counter()
    models.transcriber, models.text, models.speaker_encoder  # noqa: B018 - load before timing
    load = time.perf_counter() - t
    ex = extract(path, title_from_path(path), options, models)
    with tempfile.TemporaryDirectory() as d:
        index = Index(Path(d))
        rec = Recording(media_id=media_id_for(path), path=str(path), title=path.stem,
                        status="pending", duration=ex.duration)
        t = time.perf_counter()
        write_recording(index, rec, ex)
        ex.timings["write"] = time.perf_counter() - t
    return {"file": path.name, "duration": ex.duration, "load": load, "timings": ex.timings,
            "kind": "video" if "frames" in ex.timings else "audio",
            "segments": {m: len(s) for m, s in ex.segments.items()},
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(path: Path, threads: int, asr_model: str) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, __file__, "--one", str(path), "--threads", str(threads),
                          "--asr-model", asr_model],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = ["file", "kind", "length s", *[f"{s} RTF" for s in STAGES], "total RTF", "target",
            "peak MB", "model load s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        t, d = r["timings"], r["duration"]
        # Wall time, not the sum of the stages: speakers runs beside speech (ingestion/extract.py).
        total = t["total"] + t["write"]
        ok = "ok" if total / d <= TARGET[r["kind"]] else "MISSED"
        lines.append("| " + " | ".join([
            r["file"], r["kind"], f"{d:.0f}",
            *[f"{t[s] / d:.3f}" if s in t else "-" for s in STAGES],
            f"**{total / d:.3f}**", f"<= {TARGET[r['kind']]} {ok}", f"{r['peak_mb']:.0f}",
            f"{r['load']:.1f}"]) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--asr-model", default="tiny.en", help="tiny.en (default) or base")
    parser.add_argument("--no-video", action="store_true", help="only the recordings in --media")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.threads, args.asr_model)))
        return 0
    from eval.fixtures import make_long_slide_video

    files = sorted(p for p in args.media.iterdir() if p.suffix in (".wav", ".flac"))
    if args.no_video:
        return _measure(files, args)
    long_video = REPO / "tests" / "artifacts" / "bench" / f"slides-{args.minutes:g}min.mp4"
    if not long_video.exists():
        long_video.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating a {args.minutes:g}-minute slide video ...", file=sys.stderr)
        make_long_slide_video(long_video, minutes=args.minutes)
    return _measure([*files, long_video], args)


def _measure(paths: list[Path], args: argparse.Namespace) -> int:
    rows = []
    for path in paths:
        print(f"measuring {path.name} ({args.asr_model}) ...", file=sys.stderr)
        rows.append(run_child(path, args.threads, args.asr_model))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
