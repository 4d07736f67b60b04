"""Build the development index and print the retrieval evaluation with its ablation table.

    .venv/bin/python eval/dev_eval.py [--index DIR] [--asr-model base]

Generates the synthetic recordings (eval/fixtures.py), ingests them and the real recordings in
../shared/media with `clipcite ingest` (incremental: a second run only measures), then runs
`clipcite eval eval/dev_queries.jsonl --ablation`. Each speech model gets its own index
(tests/artifacts/dev-index, dev-index-base, ...): ingestion skips unchanged files, so one
index cannot be re-read with another model by accident.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CLI = REPO / ".venv" / "bin" / "clipcite"


def build(index: Path, asr_model: str) -> None:
    from eval.fixtures import generate_all

    generated = REPO / "tests" / "artifacts" / "generated"
    generate_all(generated)
    media = [p for p in sorted((REPO.parent / "shared" / "media").iterdir())
             if p.suffix in (".wav", ".flac")]
    clips = [p for p in sorted(generated.iterdir()) if p.suffix in (".mp4", ".mp3", ".webm")]
    subprocess.run([str(CLI), "ingest", *map(str, media + clips), "--index", str(index),
                    "--asr-model", asr_model], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="default: tests/artifacts/dev-index[-MODEL]")
    parser.add_argument("--queries", type=Path, default=REPO / "eval" / "dev_queries.jsonl")
    parser.add_argument("--asr-model", default="tiny.en", help="tiny.en (default) or base")
    args = parser.parse_args()
    if args.index is None:
        suffix = "" if args.asr_model == "tiny.en" else "-" + Path(args.asr_model).name
        args.index = REPO / "tests" / "artifacts" / f"dev-index{suffix}"
    build(args.index, args.asr_model)
    return subprocess.run([str(CLI), "eval", str(args.queries), "--index", str(args.index),
                           "--ablation", "--show-misses",
                           "--split", str(REPO / "eval" / "dev_split.json")]).returncode


if __name__ == "__main__":
    sys.exit(main())
