"""The overlap-aware pipeline's bookkeeping (ingestion/overlap_diarization.py), on made-up
activity: which frames each chunk speaks for, where a local speaker's speech is cut into
pieces, and how pieces of one stretch become one unit again. No model is loaded."""

from __future__ import annotations

import numpy as np

from clipcite.ingestion.overlap_diarization import (OverlapOptions, _chunk_starts, _owned,
                                                    _Piece, _segments, _spans, _speakers)

STEP = 0.016875  # segmentation-3.0's frame step
DURATION = 0.0619375


def test_every_instant_belongs_to_exactly_one_chunk() -> None:
    total = 37.3
    starts = _chunk_starts(total, 10.0, 5.0)
    frames = 589
    owned = _owned(starts, 10.0, frames, STEP, DURATION)
    times = np.concatenate([s + np.arange(a, b) * STEP + DURATION / 2
                            for s, (a, b) in zip(starts, owned)])
    assert np.all(np.diff(times) > 0)  # no instant twice, in order
    assert times[0] < DURATION and times[-1] > total - 0.1  # from the start to the end
    assert np.max(np.diff(times)) < 2 * STEP  # and no holes
    # A middle chunk speaks for its central 5 s, keeping 2.5 s of context either side.
    a, b = owned[1]
    assert abs(a * STEP - 2.5) < 0.05 and abs(b * STEP - 7.5) < 0.05


def test_pieces_cut_at_doubted_speech_and_for_length() -> None:
    frames = 600
    mine = np.zeros(frames, dtype=bool)
    mine[0:500] = True  # one local speaker talking for 8.4 s without a pause the model sees
    doubt = np.zeros(frames, dtype=bool)
    doubt[100:120] = True  # ... except a dip of its speech probability (a change of voice)
    options = OverlapOptions(piece=3.0)
    spans = _spans(mine, doubt, options, STEP)
    # Tiles the speech: the dip is split at its middle, and the 6.4 s after it is cut in
    # three joined parts of at most 3 s.
    assert spans[0] == (0, 110, False)
    assert [s[2] for s in spans] == [False, False, True, True]
    assert spans[1][0] == 110 and spans[-1][1] == 500
    assert all(a == b for (_, a, _), (b, _, _) in zip(spans, spans[1:]))
    assert all((b - a) * STEP <= 3.0 + STEP for a, b, _ in spans)


def _piece(first: int, last: int, vector: list[float], joined: bool = False,
           local: int = 0) -> _Piece:
    v = np.asarray(vector, dtype=np.float32)
    return _Piece(0, local, first, last, (last - first) * STEP, (last - first) * STEP, joined,
                  v / np.linalg.norm(v))


def test_joined_pieces_are_one_unit() -> None:
    pieces = [_piece(0, 100, [1, 0, 0]), _piece(100, 200, [0.8, 0.6, 0], joined=True),
              _piece(220, 300, [0, 1, 0]), _piece(0, 50, [0, 0, 1], local=1)]
    units, owner = _segments(pieces)
    assert owner == [0, 0, 1, 2]
    assert (units[0].first, units[0].last) == (0, 200)
    assert abs(units[0].seconds - 200 * STEP) < 1e-9
    assert units[0].vector[0] > units[0].vector[1] > 0  # the mean of the two, normalised


def test_two_clear_voices_become_two_speakers() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(192), rng.standard_normal(192)
    pieces = []
    for i in range(16):  # alternating turns of 2.5 s, each voice with a little noise
        voice = a if i % 2 == 0 else b
        p = _piece(i * 160, i * 160 + 150, (voice + 0.3 * rng.standard_normal(192)).tolist())
        p.chunk = i
        pieces.append(p)
    labels, k = _speakers(pieces, None, 1, 8, OverlapOptions())
    assert k == 2
    assert len(set(labels[::2])) == 1 and len(set(labels[1::2])) == 1
    assert labels[0] != labels[1]


def test_a_given_count_splits_voices_not_odd_units() -> None:
    """Told 3 speakers, the clusters are the three voices; a lone odd unit (a cough, two people
    at once) joins the nearest one instead of taking a speaker's place and merging two voices
    (cutting the tree at exactly 3 clusters did that)."""
    from clipcite.ingestion.overlap_diarization import _cluster

    rng = np.random.default_rng(0)
    voices = np.eye(8)[:3]
    vectors = np.concatenate([voices[v] + 0.25 * rng.standard_normal((12, 8)) for v in range(3)]
                             + [-np.ones((1, 8))])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    seconds = np.array([3.0] * 36 + [1.0])
    labels = _cluster(vectors, seconds, 1, 8, 3, threshold=0.4, least=6.0)
    assert len(set(labels.tolist())) == 3
    assert all(len(set(labels[v * 12:(v + 1) * 12].tolist())) == 1 for v in range(3))
    assert len({labels[0], labels[12], labels[24]}) == 3
