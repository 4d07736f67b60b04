"""Generated meetings of 3-5 espeak-ng voices in a room: reverberation, background noise, and
some turns that start before the previous one ends (overlapped speech), 1-8 minutes long, with
exact RTTM ground truth (overlapping turns included). Also the short three-voice call with
light room noise that issue #19 was reported on.

Voices are espeak-ng voice + variant + pitch + speed combinations that none of
eval/meetings.py's meetings use, so voice matching is measured on voices nobody tuned for.

    python eval/room_meetings.py OUT_DIR      # room-*.wav + room-*.rttm
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval.der import write_rttm  # noqa: E402
from eval.fixtures import SAMPLE_RATE, Voice, synthesize_all, write_wav  # noqa: E402
from eval import meetings  # noqa: E402
from eval.meetings import SENTENCES  # noqa: E402

VOICES = {
    "Fay": Voice("Fay", "en-us+f3", speed=160, pitch=70),
    "Gus": Voice("Gus", "en-gb-x-rp+m2", speed=145, pitch=35),
    "Hal": Voice("Hal", "en-029+m4", speed=155, pitch=45),
    "Ivy": Voice("Ivy", "en-gb+f5", speed=170, pitch=60),
    "Jon": Voice("Jon", "en-us-nyc+m6", speed=150, pitch=25),
    "Kim": Voice("Kim", "en-gb-x-gbclan+f1", speed=150, pitch=80),
    "Lou": Voice("Lou", "en-gb-x-gbcwmd+m5", speed=135, pitch=55),
}


@dataclass(frozen=True)
class RoomSpec:
    name: str
    voices: tuple[str, ...]
    minutes: float
    seed: int
    noise_db: float = -30.0  # background noise level relative to speech RMS
    overlap: float = 0.15  # share of turns that start before the previous one ends
    reverb: float = 0.3  # seconds of reverberation tail (RT60-like)


SPECS = (
    RoomSpec("room-call-3", ("Fay", "Gus", "Hal"), 1.0, 11, noise_db=-35.0, overlap=0.0,
             reverb=0.15),
    RoomSpec("room-3a", ("Ivy", "Jon", "Kim"), 1.5, 12),
    RoomSpec("room-4a", ("Fay", "Hal", "Jon", "Lou"), 3.0, 13, noise_db=-25.0),
    RoomSpec("room-5a", ("Gus", "Hal", "Ivy", "Kim", "Lou"), 5.0, 14),
    RoomSpec("room-3b", ("Gus", "Kim", "Lou"), 2.0, 15, overlap=0.25, reverb=0.45),
    RoomSpec("room-4b", ("Fay", "Gus", "Ivy", "Jon"), 4.0, 16, noise_db=-22.0),
    RoomSpec("room-5b", ("Fay", "Hal", "Ivy", "Jon", "Kim"), 8.0, 17, overlap=0.2),
)


def _script(spec: RoomSpec, rng: random.Random) -> list[tuple[str, str]]:
    """(speaker, text) turns, about spec.minutes long; nobody speaks twice in a row, and a
    meeting is not a round robin: some people talk more."""
    weights = {v: rng.uniform(0.5, 1.5) for v in spec.voices}
    order = list(spec.voices)
    rng.shuffle(order)
    seconds = 0.0
    lines = []
    while seconds < spec.minutes * 60:
        if len(lines) >= len(order):
            others = [v for v in spec.voices if v != lines[-1][0]]
            speaker = rng.choices(others, [weights[v] for v in others])[0]
        else:
            speaker = order[len(lines)]
        text = " ".join(rng.sample(SENTENCES, rng.choice((1, 1, 2, 3))))
        lines.append((speaker, text))
        seconds += len(text.split()) / 2.6 + 0.5
    return lines


def _room(audio: np.ndarray, reverb: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a decaying noise impulse response (a small room's reverberation)."""
    if reverb <= 0:
        return audio
    n = int(reverb * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / reverb) * 0.3
    ir[0] = 1.0
    from scipy.signal import fftconvolve

    wet = fftconvolve(audio, ir)[:len(audio)]
    return wet * (np.abs(audio).max() / max(np.abs(wet).max(), 1e-9))


def _noise(length: int, level: float, rng: np.random.Generator) -> np.ndarray:
    """Brownish room noise (hum of a ventilation system) plus a little hiss."""
    white = rng.standard_normal(length)
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(2001) / 2001, mode="same")  # no drift
    brown /= max(brown.std(), 1e-9)
    mix = 0.8 * brown + 0.2 * rng.standard_normal(length)
    return mix / mix.std() * level


def build(spec: RoomSpec, out_dir: Path, work: Path) -> tuple[Path, Path]:
    rng = random.Random(spec.seed)
    script = _script(spec, rng)
    clips = synthesize_all([(text, VOICES[s]) for s, text in script], work)
    placed, turns, at = [], [], int(0.7 * SAMPLE_RATE)
    for i, (speaker, text) in enumerate(script):
        clip = clips[(text, VOICES[speaker])].astype(np.float64)
        if i and rng.random() < spec.overlap:
            prev_start, prev_len = placed[-1][0], len(placed[-1][1])
            back = int(rng.uniform(0.8, 2.5) * SAMPLE_RATE)
            at = max(prev_start + prev_len // 2, at - back)  # barge in, not on top
        placed.append((at, clip))
        turns.append((at / SAMPLE_RATE, (at + len(clip)) / SAMPLE_RATE, speaker))
        at += len(clip) + int(rng.uniform(0.2, 1.0) * SAMPLE_RATE)
    audio = np.zeros(at + SAMPLE_RATE)
    for start, clip in placed:
        audio[start:start + len(clip)] += clip
    nprng = np.random.default_rng(spec.seed)
    audio = _room(audio, spec.reverb, nprng)
    speech_rms = float(np.sqrt(np.mean(np.concatenate([c for _, c in placed]) ** 2)))
    audio += _noise(len(audio), speech_rms * 10 ** (spec.noise_db / 20), nprng)
    audio *= 0.5 * 32767 / max(np.abs(audio).max(), 1e-9)
    out_dir.mkdir(parents=True, exist_ok=True)
    wav, rttm = out_dir / f"{spec.name}.wav", out_dir / f"{spec.name}.rttm"
    write_wav(wav, np.round(audio))
    write_rttm(rttm, spec.name, turns)
    return wav, rttm


def build_all(out_dir: Path, specs: tuple[RoomSpec, ...] = SPECS) -> list[tuple[Path, Path]]:
    """Build the room meetings that are not in out_dir yet."""
    return meetings.build_all(out_dir, specs, build)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    for wav, _ in build_all(parser.parse_args().out):
        print(wav)


if __name__ == "__main__":
    main()
