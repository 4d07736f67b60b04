"""Diarization error rate against RTTM ground truth, with pyannote.metrics (no torch needed).

Collars follow pyannote's convention: `collar` seconds in total around each reference boundary
(collar / 2 on each side) are not scored. Overlapped speech is scored: a system that gives one
speaker per instant misses the second speaker there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Scored:
    der: float
    missed: float  # seconds
    false_alarm: float
    confusion: float
    total: float  # seconds of reference speech (overlap counted per speaker)


def read_rttm(path: Path, uri: str) -> list[tuple[float, float, str]]:
    """(start, end, speaker) of one recording's lines."""
    turns = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0] == "SPEAKER" and parts[1] == uri:
            start, duration = float(parts[3]), float(parts[4])
            turns.append((start, start + duration, parts[7]))
    return turns


def write_rttm(path: Path, uri: str, turns: Iterable[tuple[float, float, str]]) -> None:
    lines = [f"SPEAKER {uri} 1 {a:.3f} {b - a:.3f} <NA> <NA> {s.replace(' ', '_')} <NA> <NA>"
             for a, b, s in turns]
    Path(path).write_text("\n".join(lines) + "\n")


def _annotation(turns: Sequence[tuple[float, float, str]], uri: str):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for i, (a, b, s) in enumerate(turns):
        if b > a:
            ann[Segment(a, b), f"_{i}"] = s
    return ann


def score(reference: Sequence[tuple[float, float, str]],
          hypothesis: Sequence[tuple[float, float, str]], collar: float,
          duration: float | None = None) -> Scored:
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    uri = "x"
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    uem = Timeline([Segment(0, duration)], uri=uri) if duration else None
    parts = metric(_annotation(reference, uri), _annotation(hypothesis, uri), uem=uem,
                   detailed=True)
    total = parts["total"]
    return Scored(der=parts["diarization error rate"], missed=parts["missed detection"],
                  false_alarm=parts["false alarm"], confusion=parts["confusion"], total=total)
