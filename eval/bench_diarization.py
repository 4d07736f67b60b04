"""Speaker diarization quality, speed and memory; voice matching precision/recall.

    .venv/bin/python eval/bench_diarization.py [--media ../shared/media] [--out DIR]
                                               [--long-minutes 0] [--threads 2] [--runs 1]

Rows: the four RTTM-labelled real recordings and the generated espeak-ng meetings
(eval/meetings.py). DER is scored with pyannote.metrics, overlap included, at collar 0.25 s
(pyannote convention: 0.125 s either side of each reference boundary) and at collar 0. Each file
runs in a fresh process, so peak memory is that file's, encoder included; RTF is diarization
wall time / duration (encoder loading apart), CPU RTF is process CPU time / duration.
`--runs N` diarizes every file in N fresh processes and reports the median and best RTF (DER
is deterministic, timing is not on a shared machine), with the load average around the runs.
`--long-minutes N` adds an N-minute recording (generated meetings repeated) for memory.

Voice matching: every generated meeting's speaker prints are matched against every other
meeting's prints (named by ground truth), at several thresholds; precision counts a name given
to a speaker who is someone else as wrong.

Targets on 2 cores: sample DER <= 0.10; pooled real DER (collar 0.25) <= 0.35 (tst00 is half
overlapped speech: no one-speaker-per-instant system scores below about 0.5 on it); right
speaker count on >= 3 of 4 real recordings and on every generated meeting; RTF <= 0.05.
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

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval.der import read_rttm, score  # noqa: E402

REAL = (("sample", "sample.rttm"), ("dev00", "debug.development.rttm"),
        ("dev01", "debug.development.rttm"), ("tst00", "debug.test.rttm"))
THRESHOLDS = (0.85, 0.9, 0.93, 0.95, 0.97)


def run_one(wav: Path, threads: int) -> dict:
    """Diarize one file in this process: turns, prints, timings, peak memory."""
    from ingestion.diarization import DiarizeOptions, diarize
    from ingestion.media import SAMPLE_RATE, decode_audio
    from ingestion.voice import load_speaker_encoder

    t = time.perf_counter()
    encoder = load_speaker_encoder("resemblyzer", threads=threads)
    load = time.perf_counter() - t
    audio, _ = decode_audio(wav)
    t, cpu = time.perf_counter(), time.process_time()
    result = diarize(audio, encoder, DiarizeOptions())
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"duration": len(audio) / SAMPLE_RATE, "load": load, "wall": wall, "cpu": cpu,
            "turns": [(x.start, x.end, x.speaker) for x in result.turns],
            "prints": {k: v.tolist() for k, v in result.prints.items()},
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(wav: Path, threads: int) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, __file__, "--child", str(wav), "--threads",
                           str(threads)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{wav.name}: {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_timed(wav: Path, threads: int, runs: int) -> dict:
    """The first run's result, with RTF as the median and best of `runs` fresh processes."""
    results = [run_child(wav, threads) for _ in range(max(1, runs))]
    rtf = sorted(r["wall"] / r["duration"] for r in results)
    cpu = sorted(r["cpu"] / r["duration"] for r in results)
    return {**results[0], "rtf": float(np.median(rtf)), "rtf_best": rtf[0],
            "cpu_rtf": float(np.median(cpu)), "load": os.getloadavg()[0],
            "peak_mb": max(r["peak_mb"] for r in results)}


def _rtf(r: dict, runs: int) -> str:
    return f"{r['rtf']:.3f}" + (f" (best {r['rtf_best']:.3f}, load {r['load']:.1f})"
                                if runs > 1 else "")


def _true_speaker(turn: tuple[float, float, str], reference: list) -> dict[str, float]:
    out: dict[str, float] = {}
    for a, b, s in reference:
        ov = min(turn[1], b) - max(turn[0], a)
        if ov > 0:
            out[s] = out.get(s, 0.0) + ov
    return out


def speaker_map(hyp: list, reference: list) -> dict[str, str]:
    """Hypothesis speaker -> the reference speaker they overlap most."""
    votes: dict[str, dict[str, float]] = {}
    for turn in hyp:
        for s, ov in _true_speaker(turn, reference).items():
            votes.setdefault(turn[2], {}).setdefault(s, 0.0)
            votes[turn[2]][s] += ov
    return {h: max(v, key=v.get) for h, v in votes.items()}


def matching(results: dict[str, dict], references: dict[str, list]) -> list[dict]:
    from ingestion.voice import match_voices

    prints, truth = {}, {}
    for name, r in results.items():
        prints[name] = {k: np.asarray(v, dtype=np.float32) for k, v in r["prints"].items()}
        truth[name] = speaker_map(r["turns"], references[name])
    rows = []
    for threshold in THRESHOLDS:
        given = right = possible = 0
        for a in prints:
            for b in prints:
                if a == b:
                    continue
                known = {truth[b][s]: v for s, v in prints[b].items() if s in truth[b]}
                named = match_voices(prints[a], known, threshold)
                given += len(named)
                right += sum(truth[a].get(s) == n for s, (n, _) in named.items())
                possible += sum(truth[a].get(s) in known for s in prints[a])
        rows.append({"threshold": threshold, "given": given, "right": right,
                     "possible": possible,
                     "precision": right / given if given else 1.0,
                     "recall": right / possible if possible else 0.0})
    return rows


def long_recording(meetings: list[Path], minutes: float, out: Path) -> Path:
    """Generated meetings repeated to `minutes` (one file, 16 kHz)."""
    from ingestion.media import SAMPLE_RATE, decode_audio
    import wave

    parts, total = [], 0
    while total < minutes * 60 * SAMPLE_RATE:
        for m in meetings:
            audio, _ = decode_audio(m)
            parts.append(audio)
            total += len(audio)
    audio = np.concatenate(parts)[:int(minutes * 60 * SAMPLE_RATE)]
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--out", type=Path, default=None, help="generated meetings (kept)")
    parser.add_argument("--long-minutes", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="fresh processes per file (timing)")
    parser.add_argument("--json", type=Path, default=None, help="also write all results here")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.threads)))
        return

    from eval.meetings import build_all

    out = args.out or Path(tempfile.mkdtemp(prefix="clipcite-meetings-"))
    files: list[tuple[str, Path, list, str]] = []
    for name, rttm in REAL:
        files.append((name, args.media / f"{name}.wav", read_rttm(args.media / rttm, name),
                      "real"))
    generated = build_all(out)
    for wav, rttm in generated:
        files.append((wav.stem, wav, read_rttm(rttm, wav.stem), "generated"))

    results, refs = {}, {}
    header = ("| recording | dur s | DER c0.25 | DER c0 | missed s | FA s | confusion s | "
              "speakers found/true | RTF | CPU RTF | peak MB |")
    print(header)
    print("|" + "---|" * 11)
    pooled = {"real": [0.0, 0.0, 0.0, 0.0], "generated": [0.0, 0.0, 0.0, 0.0]}
    counts = {"real": [0, 0], "generated": [0, 0]}
    for name, wav, ref, kind in files:
        r = run_timed(wav, args.threads, args.runs)
        results[name], refs[name] = r, ref
        s25 = score(ref, r["turns"], 0.25, r["duration"])
        s0 = score(ref, r["turns"], 0.0, r["duration"])
        found, true = len(r["prints"]), len({x[2] for x in ref})
        pooled[kind][0] += s25.der * s25.total
        pooled[kind][1] += s0.der * s0.total
        pooled[kind][2] += s25.total
        pooled[kind][3] += s0.total
        counts[kind][0] += found == true
        counts[kind][1] += 1
        note = " (half overlapped: floor ~0.5)" if name == "tst00" else ""
        print(f"| {name}{note} | {r['duration']:.0f} | {s25.der:.3f} | {s0.der:.3f} | "
              f"{s25.missed:.1f} | {s25.false_alarm:.1f} | {s25.confusion:.1f} | "
              f"{found}/{true} | {_rtf(r, args.runs)} | {r['cpu_rtf']:.3f} | "
              f"{r['peak_mb']:.0f} |", flush=True)
    for kind in ("real", "generated"):
        e25, e0, tot25, tot0 = pooled[kind]
        print(f"| pooled {kind} | | {e25 / tot25:.3f} | {e0 / tot0:.3f} | | | | "
              f"right count {counts[kind][0]}/{counts[kind][1]} | | | |")
    if args.long_minutes:
        wav = long_recording([w for w, _ in generated], args.long_minutes, out / "long.wav")
        r = run_timed(wav, args.threads, args.runs)
        print(f"| long ({args.long_minutes:g} min, generated) | {r['duration']:.0f} | | | | | | "
              f"{len(r['prints'])}/5 | {_rtf(r, args.runs)} | {r['cpu_rtf']:.3f} | "
              f"{r['peak_mb']:.0f} |")
    load = os.getloadavg()[0]
    print(f"\nencoder load {np.mean([r['load'] for r in results.values()]):.1f} s per process; "
          f"load average at the end {load:.1f} on {os.cpu_count()} cores")

    gen = {n: results[n] for n, _, _, k in files if k == "generated"}
    print("\nVoice matching across generated meetings (prints vs other meetings' named prints)")
    print("| threshold | names given | right | precision | recall |")
    print("|---|---|---|---|---|")
    rows = matching(gen, refs)
    for row in rows:
        print(f"| {row['threshold']:.2f} | {row['given']} | {row['right']} | "
              f"{row['precision']:.3f} | {row['recall']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "matching": rows}, indent=1))


if __name__ == "__main__":
    main()
