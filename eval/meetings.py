"""Generated meetings of 2-5 distinct espeak-ng voices with exact speaker turns (RTTM).

Each sentence is synthesised alone and trimmed to its audible extent (eval/fixtures.py), then
laid on one sample clock with short pauses, so every turn's start and end is known to the
sample. The same voice appears in several meetings with other sentences, which is what voice
matching across recordings is calibrated on.

    python eval/meetings.py OUT_DIR        # meeting-*.wav + meeting-*.rttm
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval.der import write_rttm  # noqa: E402
from eval.fixtures import SAMPLE_RATE, Voice, synthesize_all, write_wav  # noqa: E402

VOICES = {
    "Alan": Voice("Alan", "en-us+m3", speed=150, pitch=40),
    "Beth": Voice("Beth", "en-gb+f2", speed=165, pitch=65),
    "Carl": Voice("Carl", "en+m7", speed=140, pitch=30),
    "Dana": Voice("Dana", "en-us+f4", speed=175, pitch=55),
    "Evan": Voice("Evan", "en-gb-scotland+m1", speed=155, pitch=50),
}

SENTENCES = (
    "Good morning everyone, let's get started with the weekly update.",
    "The migration to the new billing system finished on Tuesday night.",
    "We still have two open bugs in the checkout page.",
    "I think we should move the launch to the second week of March.",
    "Marketing wants the final screenshots by Friday at the latest.",
    "Can we agree on the budget before we talk about hiring?",
    "The customer survey came back with mostly positive comments.",
    "Support tickets went down by about fifteen percent this month.",
    "I spoke with the vendor and they can ship the hardware next week.",
    "Let's keep the design review short, we have a lot to cover.",
    "The test environment was down for most of yesterday afternoon.",
    "Who is taking notes today?",
    "I'll send the summary to the whole team after this call.",
    "We need a decision on the pricing tiers by the end of the month.",
    "The new onboarding flow doubled the number of completed sign-ups.",
    "Security asked us to rotate all the service passwords.",
    "Our biggest risk is the dependency on the payments provider.",
    "Sounds good to me.",
    "I disagree, the numbers from last quarter tell a different story.",
    "Could you share the spreadsheet in the chat?",
    "The data team is rebuilding the weekly dashboard from scratch.",
    "Please add your estimates to the planning board before Thursday.",
    "We hired two engineers and one designer this quarter.",
    "That's a fair point, let's take it offline.",
    "The mobile release is blocked on the app store review.",
    "I would like to revisit the roadmap for the second half.",
    "Latency on the search service is back under two hundred milliseconds.",
    "Thanks everyone, that's all for today.",
)


@dataclass(frozen=True)
class MeetingSpec:
    name: str
    voices: tuple[str, ...]
    turns: int
    seed: int


MEETINGS = (
    MeetingSpec("meeting-2a", ("Alan", "Beth"), 12, 1),
    MeetingSpec("meeting-3a", ("Alan", "Beth", "Carl"), 16, 2),
    MeetingSpec("meeting-4a", ("Alan", "Beth", "Carl", "Dana"), 20, 3),
    MeetingSpec("meeting-3b", ("Carl", "Dana", "Evan"), 16, 4),
    MeetingSpec("meeting-2b", ("Beth", "Evan"), 12, 5),
)


def _script(spec: MeetingSpec) -> list[tuple[str, str]]:
    """(speaker, sentence) per turn: every voice speaks, no voice speaks twice in a row."""
    rng = random.Random(spec.seed)
    order: list[str] = list(spec.voices)
    rng.shuffle(order)
    while len(order) < spec.turns:
        order.append(rng.choice([v for v in spec.voices if v != order[-1]]))
    lines = []
    for speaker in order:
        count = rng.choice((1, 1, 2))
        lines.append((speaker, " ".join(rng.sample(SENTENCES, count))))
    return lines


def build(spec: MeetingSpec, out_dir: Path, work: Path) -> tuple[Path, Path]:
    """Write OUT/NAME.wav (22.05 kHz) and OUT/NAME.rttm; returns both paths."""
    script = _script(spec)
    clips = synthesize_all([(text, VOICES[s]) for s, text in script], work)
    rng = random.Random(spec.seed + 100)
    parts = [np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.int16)]
    turns = []
    at = len(parts[0])
    for speaker, text in script:
        clip = clips[(text, VOICES[speaker])]
        turns.append((at / SAMPLE_RATE, (at + len(clip)) / SAMPLE_RATE, speaker))
        gap = np.zeros(int(rng.uniform(0.3, 0.9) * SAMPLE_RATE), dtype=np.int16)
        parts += [clip, gap]
        at += len(clip) + len(gap)
    out_dir.mkdir(parents=True, exist_ok=True)
    wav, rttm = out_dir / f"{spec.name}.wav", out_dir / f"{spec.name}.rttm"
    write_wav(wav, np.concatenate(parts))
    write_rttm(rttm, spec.name, turns)
    return wav, rttm


def build_all(out_dir: Path, specs: Sequence[Any] = MEETINGS,
              make: Callable[[Any, Path, Path], tuple[Path, Path]] | None = None,
              ) -> list[tuple[Path, Path]]:
    """Build the meetings (specs with a `name`, made by `make`: this module's `build` unless
    given) that are not in out_dir yet."""
    make = make or build
    done = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            wav, rttm = out_dir / f"{spec.name}.wav", out_dir / f"{spec.name}.rttm"
            if not (wav.exists() and rttm.exists()):
                wav, rttm = make(spec, out_dir, Path(tmp))
            done.append((wav, rttm))
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    for wav, _ in build_all(args.out):
        print(wav)


if __name__ == "__main__":
    main()
