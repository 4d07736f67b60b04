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
`--models resemblyzer,campplus` runs each speaker model on every file in the same run (rows
side by side). Room meetings (eval/room_meetings.py: 3-5 voices, reverberation, noise,
overlapping turns, and the three-voice call of issue #19) join the quiet generated ones; the
tuning / check split by recording is fixed in eval/diarization_split.json and each half's mean
DER is reported. `--eer` adds same- vs different-speaker equal error rates of each model on
real speech (segments of the RTTM-labelled clips' solo turns).

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
REAL_NAMES = {name for name, _ in REAL}
THRESHOLDS = (0.85, 0.9, 0.93, 0.95, 0.97)


def run_one(wav: Path, threads: int, model: str = "resemblyzer",
            speakers: int | None = None) -> dict:
    """Diarize one file in this process: turns, prints, timings, peak memory."""
    from clipcite.ingestion.diarization import DiarizeOptions, diarize
    from clipcite.ingestion.media import SAMPLE_RATE, decode_audio
    from clipcite.ingestion.voice import load_speaker_encoder

    t = time.perf_counter()
    encoder = load_speaker_encoder(model, threads=threads)
    load = time.perf_counter() - t
    audio, _ = decode_audio(wav)
    t, cpu = time.perf_counter(), time.process_time()
    result = diarize(audio, encoder, DiarizeOptions(num_speakers=speakers))
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"duration": len(audio) / SAMPLE_RATE, "load": load, "wall": wall, "cpu": cpu,
            "turns": [(x.start, x.end, x.speaker) for x in result.turns],
            "prints": {k: v.tolist() for k, v in result.prints.items()},
            "speech": [list(r) for r in result.speech], "peak_mb": peak_mb()}


def peak_mb() -> float:
    """This process's peak resident memory. ru_maxrss is not it in a child: the RSS its
    parent had when it forked counts until exec replaces it (a 60-minute run read 1,057 MB
    right after the parent built the hour of audio; VmHWM, reset at exec, said 779)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(wav: Path, threads: int, model: str, speakers: int | None = None) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    hint = ["--speakers", str(speakers)] if speakers else []
    proc = subprocess.run([sys.executable, __file__, "--child", str(wav), "--threads",
                           str(threads), "--models", model, *hint], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{wav.name}: {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_timed(wav: Path, threads: int, runs: int, model: str,
              speakers: int | None = None) -> dict:
    """The first run's result, with RTF as the median and best of `runs` fresh processes."""
    results = [run_child(wav, threads, model, speakers) for _ in range(max(1, runs))]
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


def matching(results: dict[str, dict], references: dict[str, list],
             thresholds: tuple[float, ...] = THRESHOLDS) -> list[dict]:
    from clipcite.ingestion.voice import match_voices

    prints, truth = {}, {}
    for name, r in results.items():
        prints[name] = {k: np.asarray(v, dtype=np.float32) for k, v in r["prints"].items()}
        truth[name] = speaker_map(r["turns"], references[name])
    rows = []
    for threshold in thresholds:
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
    from clipcite.ingestion.media import SAMPLE_RATE, decode_audio
    import wave

    if not meetings:
        raise SystemExit("--long-minutes repeats the generated meetings: keep one in --only")
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


SPLIT = REPO / "eval" / "diarization_split.json"
MATCH_THRESHOLDS = {"resemblyzer": THRESHOLDS,
                    "campplus": (0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96)}


NAIVE = "naive: one speaker over the same speech"


def _table_row(name: str, kind: str, r: dict, ref: list, runs: int) -> tuple[str, float, float]:
    s25 = score(ref, r["turns"], 0.25, r["duration"])
    s0 = score(ref, r["turns"], 0.0, r["duration"])
    found, true = len(r["prints"]), len({x[2] for x in ref})
    note = " (half overlapped)" if name == "tst00" else ""
    row = (f"| {r['model']} | {name}{note} | {kind} | {r['duration']:.0f} | {s25.der:.3f} | "
           f"{s0.der:.3f} | {s25.missed:.1f} | {s25.false_alarm:.1f} | {s25.confusion:.1f} | "
           f"{found}/{true} | {_rtf(r, runs)} | {r['cpu_rtf']:.3f} | {r['peak_mb']:.0f} |")
    return row, s25.der, float(found - true)


def _files(media: Path, out: Path) -> list[tuple[str, Path, list, str]]:
    from eval.meetings import build_all
    from eval.room_meetings import build_all as build_rooms

    files: list[tuple[str, Path, list, str]] = []
    for name, rttm in REAL:
        files.append((name, media / f"{name}.wav", read_rttm(media / rttm, name), "real"))
    for wav, rttm in build_all(out):
        files.append((wav.stem, wav, read_rttm(rttm, wav.stem), "generated"))
    for wav, rttm in build_rooms(out):
        files.append((wav.stem, wav, read_rttm(rttm, wav.stem), "room"))
    return files


def equal_error_rates(media: Path, models: list[str], threads: int, seconds: float = 2.0,
                      ) -> dict[str, dict]:
    """EER of same- vs different-speaker trials on real speech: `seconds`-long pieces of solo
    reference turns of the RTTM-labelled clips, one voice print each, all pairs compared.
    dev00 and dev01 share speaker ids (the same meeting), so pairs across them count too."""
    from clipcite.ingestion.media import SAMPLE_RATE, decode_audio
    from clipcite.ingestion.voice import load_speaker_encoder, voice_print

    pieces: list[tuple[str, str, np.ndarray]] = []  # (recording, speaker, audio)
    for name, rttm in REAL:
        audio, _ = decode_audio(media / f"{name}.wav")
        ref = read_rttm(media / rttm, name)
        for a, b, spk in ref:
            others = [(x, y) for x, y, o in ref if o != spk and x < b and a < y]
            t = a
            while t + seconds <= b:
                if not any(x < t + seconds and t < y for x, y in others):
                    pieces.append((name, spk, audio[int(t * SAMPLE_RATE):
                                                    int((t + seconds) * SAMPLE_RATE)]))
                t += seconds
    out = {}
    for model in models:
        encoder = load_speaker_encoder(model, threads=threads)
        vecs = []
        for _, _, clip in pieces:
            starts = np.arange(0, max(1, len(clip) - int(encoder.window * SAMPLE_RATE)),
                               int(0.5 * SAMPLE_RATE))
            vecs.append(voice_print(encoder.embed(clip, starts)))
        v = np.stack(vecs)
        sim = v @ v.T
        same, diff = [], []
        for i in range(len(pieces)):
            for j in range(i + 1, len(pieces)):
                (same if pieces[i][1] == pieces[j][1] else diff).append(float(sim[i, j]))
        out[model] = {"eer": _eer(np.array(same), np.array(diff)), "pieces": len(pieces),
                      "same": len(same), "different": len(diff),
                      "same_mean": float(np.mean(same)), "different_mean": float(np.mean(diff)),
                      "different_max": float(np.max(diff))}
    return out


def _eer(same: np.ndarray, diff: np.ndarray) -> float:
    """The error rate where false accepts (different >= t) equal false rejects (same < t)."""
    best = 1.0
    for t in np.unique(np.concatenate([same, diff])):
        far, frr = float((diff >= t).mean()), float((same < t).mean())
        best = min(best, max(far, frr))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--out", type=Path, default=None, help="generated meetings (kept)")
    parser.add_argument("--long-minutes", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="fresh processes per file (timing)")
    parser.add_argument("--models", default="resemblyzer,campplus",
                        help="speaker models to compare, comma-separated")
    parser.add_argument("--only", default="", help="comma-separated recording names")
    parser.add_argument("--eer", action="store_true", help="also EER on real speech")
    parser.add_argument("--json", type=Path, default=None, help="also write all results here")
    parser.add_argument("--given-count", action="store_true",
                        help="also diarize every file told its true speaker count (--speakers)")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--speakers", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.child:
        print(json.dumps(run_one(args.child, args.threads, models[0], args.speakers)))
        return

    out = args.out or Path(tempfile.mkdtemp(prefix="clipcite-meetings-"))
    files = _files(args.media, out)
    if args.only:
        files = [f for f in files if f[0] in args.only.split(",")]
    split = json.loads(SPLIT.read_text())
    half = {n: h for h in ("tune", "check") for n in split[h]}

    results: dict[str, dict[str, dict]] = {m: {} for m in models}
    refs = {name: ref for name, _, ref, _ in files}
    print("| model | recording | kind | dur s | DER c0.25 | DER c0 | missed s | FA s | "
          "confusion s | speakers found/true | RTF | CPU RTF | peak MB |")
    print("|" + "---|" * 13)
    ders: dict[tuple[str, str], list[float]] = {}
    off: dict[str, list[float]] = {m: [] for m in models}
    runs = [(model, False) for model in models]
    runs += [(model, True) for model in models if args.given_count]
    for name, wav, ref, kind in files:
        true = len({s for _, _, s in ref})
        for model, given in runs:
            label = f"{model} told {true}" if given else model
            r = {**run_timed(wav, args.threads, args.runs, model, true if given else None),
                 "model": label}
            results.setdefault(label, {})[name] = r
            row, der, miss = _table_row(name, kind, r, ref, args.runs)
            print(row, flush=True)
            key = f"{model} + count" if given else model
            ders.setdefault((key, half.get(name, "-")), []).append(der)
            ders.setdefault((key, kind), []).append(der)
            if name in REAL_NAMES or half.get(name) == "check":
                ders.setdefault((key, "real + check (issue #19 target)"), []).append(der)
            off.setdefault(key, []).append(abs(miss))
            if model == models[0] and not given:
                # The naive baseline on the same VAD, in the same run: one speaker over all
                # speech (what a transcript without diarization says).
                naive = [(a, b, "Speaker 1") for a, b in r.get("speech", [])]
                der = score(ref, naive, 0.25, r["duration"]).der
                for group in (half.get(name, "-"), kind) + (
                        ("real + check (issue #19 target)",)
                        if name in REAL_NAMES or half.get(name) == "check" else ()):
                    ders.setdefault((NAIVE, group), []).append(der)
                off.setdefault(NAIVE, []).append(abs(1 - true))
    print("\n| model | set | recordings | mean DER c0.25 |\n|---|---|---|---|")
    for (model, group), values in sorted(ders.items()):
        print(f"| {model} | {group} | {len(values)} | {np.mean(values):.3f} |")
    for key, misses in off.items():
        print(f"{key}: recordings off by more than one speaker: "
              f"{sum(x > 1 for x in misses)} of {len(misses)}")
    if args.long_minutes:
        gen = [w for n, w, _, k in files if k == "generated"]
        wav = long_recording(gen, args.long_minutes, out / "long.wav")
        for model in models:
            r = run_timed(wav, args.threads, args.runs, model)
            print(f"| {model} | long ({args.long_minutes:g} min, generated) | "
                  f"{r['duration']:.0f} s | {len(r['prints'])}/5 | RTF {_rtf(r, args.runs)} | "
                  f"CPU RTF {r['cpu_rtf']:.3f} | peak {r['peak_mb']:.0f} MB |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    matched = {}
    for model in models:
        matched[model] = {}
        for h in ("tune", "check"):
            # Voices recur across generated meetings (not across real clips): match those.
            names = [n for n, _, _, k in files if k != "real" and half.get(n) == h]
            rows = matching({n: results[model][n] for n in names if n in results[model]}, refs,
                            MATCH_THRESHOLDS.get(model, THRESHOLDS))
            matched[model][h] = rows
            print(f"\nVoice matching, {model}, {h} half (prints vs other meetings' named prints)")
            print("| threshold | names given | right | precision | recall |")
            print("|---|---|---|---|---|")
            for row in rows:
                print(f"| {row['threshold']:.2f} | {row['given']} | {row['right']} | "
                      f"{row['precision']:.3f} | {row['recall']:.3f} |")
    eer = equal_error_rates(args.media, models, args.threads) if args.eer else {}
    for model, e in eer.items():
        print(f"EER {model}: {e['eer']:.3f} over {e['pieces']} pieces of 2 s ({e['same']} same, "
              f"{e['different']} different pairs; mean cosine same {e['same_mean']:.2f}, "
              f"different {e['different_mean']:.2f}, different max {e['different_max']:.2f})")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "matching": matched, "eer": eer},
                                        indent=1))


if __name__ == "__main__":
    main()
