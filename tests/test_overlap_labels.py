"""Second speakers for the windowed pipeline (ingestion/overlap_labels.py), on made-up
segmentation output: no model is loaded."""

from __future__ import annotations

import numpy as np

from clipcite.ingestion.overlap_diarization import Segmented
from clipcite.ingestion.overlap_labels import second_speakers

STEP = 0.016875  # segmentation-3.0's frame step
DURATION = 0.0619375
FRAMES = 589  # one 10 s chunk


def _chunk(active: dict[int, tuple[float, float]]) -> Segmented:
    """One chunk starting at 0 whose local speakers talk over the given (start, end) s."""
    activity = np.zeros((1, FRAMES, 3), dtype=np.uint8)
    times = np.arange(FRAMES) * STEP + DURATION / 2
    for local, (a, b) in active.items():
        activity[0, (times >= a) & (times < b), local] = 1
    return Segmented([0.0], activity, np.zeros((1, FRAMES)), [(0, FRAMES)])


def test_the_voice_that_joins_gets_a_turn_where_both_talk() -> None:
    # The windowed pipeline: Ann 0-5 s, Bob 5-9 s. The model: its local speaker 0 talks 0-6 s
    # and local speaker 1 from 4.5 s, so 4.5-6 s is both at once.
    turns = [(0.0, 5.0, "Ann"), (5.0, 9.0, "Bob")]
    extra = second_speakers(turns, _chunk({0: (0.0, 6.0), 1: (4.5, 9.0)}), STEP, DURATION)
    assert [name for _, _, name in extra] == ["Bob", "Ann"]
    (a, b, _), (c, d, _) = extra
    assert abs(a - 4.5) < 0.05 and abs(b - 5.0) < 0.05  # Bob under Ann's turn
    assert abs(c - 5.0) < 0.05 and abs(d - 6.0) < 0.05  # Ann under Bob's turn
    assert b <= 5.0 and c >= 5.0  # nobody overlaps their own turn


def test_no_second_voice_no_extra_turn() -> None:
    turns = [(0.0, 5.0, "Ann"), (5.0, 9.0, "Bob")]
    assert second_speakers(turns, _chunk({0: (0.0, 5.0), 1: (5.0, 9.0)}), STEP, DURATION) == []


def test_a_local_speaker_heard_too_little_alone_is_not_named() -> None:
    # Local speaker 1 is never heard alone: nobody to name, so no turn is made up for it.
    turns = [(0.0, 9.0, "Ann")]
    assert second_speakers(turns, _chunk({0: (0.0, 9.0), 1: (3.0, 4.0)}), STEP, DURATION) == []
