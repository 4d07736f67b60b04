"""Who spoke when: speech regions, voice vectors on sliding windows, clustering, smoothing.

1. Silero VAD finds speech (vad.py).
2. The speaker encoder embeds short windows (1.6 s, 4 per second) across each speech region;
   each window stands for the stretch of time nearest its centre.
3. NME-SC clusters the windows, estimating the number of speakers unless it is given
   (clustering.py). Long recordings cluster short segments (means of consecutive windows)
   instead, since the clustering's cost grows with the cube of the number of points.
4. Windows are re-assigned to the speaker centroids, speakers with too little speech are merged
   into their nearest neighbour, and a Viterbi pass with a switching penalty plus a minimum turn
   length keeps turns from flickering.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ingestion.clustering import cluster, estimate, spectral_labels
from ingestion.media import SAMPLE_RATE
from ingestion.segments import Word
from ingestion.vad import VadSettings, speech_regions
from ingestion.voice import SpeakerEncoder, match_voices, voice_print

__all__ = ["Diarization", "DiarizeOptions", "Turn", "diarize", "label_words", "match_voices",
           "voice_print"]

_HOP = 160  # window starts on the 10 ms mel grid


@dataclass
class Turn:
    start: float
    end: float
    speaker: str


@dataclass
class DiarizeOptions:
    num_speakers: int | None = None  # known count: skips the estimate
    min_speakers: int = 1
    max_speakers: int = 8
    step: float = 0.25  # seconds between window starts
    vad: VadSettings = field(default_factory=VadSettings)
    max_points: int = 400  # clustering units; above this, windows are grouped into segments
    unit_windows: int = 1  # consecutive windows averaged into one clustering unit
    reassign: bool = True  # second pass: every window to its nearest speaker centroid
    switch_penalty: float = 0.1  # Viterbi cost of changing speaker between adjacent windows
    min_turn: float = 0.5  # seconds; shorter turns join a neighbour
    # A "speaker" with less speech than this (seconds, or share of all speech) is usually a
    # noise, laughter or overlap cluster: its windows go to the nearest real speaker.
    # Speakers whose centroids are closer than this are one voice (resemblyzer cosine; the
    # closest two real voices in our test recordings are 0.89, one voice's halves 0.90-0.96).
    merge_threshold: float = 0.9
    # Check NME-SC's count: fewer speakers until all centroids are distinct and big enough.
    count_check: bool = True
    count_from_max: bool = False  # start the check at max_speakers rather than the estimate
    min_speaker_seconds: float = 4.0
    min_speaker_share: float = 0.05


@dataclass
class Diarization:
    turns: list[Turn]
    prints: dict[str, np.ndarray]  # voice print per speaker label
    speech: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class _Windows:
    starts: np.ndarray  # sample index of each window
    owned: np.ndarray  # (n, 2) seconds each window stands for
    region: np.ndarray  # index of the speech region each window belongs to


def _windows(regions: Sequence[tuple[float, float]], window: float, step: float,
             total: float) -> _Windows:
    starts: list[float] = []
    owned: list[tuple[float, float]] = []
    region_of: list[int] = []
    for r, (a, b) in enumerate(regions):
        # One window every `step` across the whole region (windows reach past its edges), so
        # a change of speaker near a pause is placed to within a step.
        count = max(1, int(round((b - a) / step)))
        centres = list(a + (np.arange(count) + 0.5) * (b - a) / count)
        bounds = [a] + [0.5 * (x + y) for x, y in zip(centres, centres[1:])] + [b]
        for i, c in enumerate(centres):
            start = min(max(c - window / 2, 0.0), max(total - window, 0.0))
            starts.append(start)
            owned.append((bounds[i], bounds[i + 1]))
            region_of.append(r)
    samples = (np.round(np.asarray(starts) * SAMPLE_RATE / _HOP) * _HOP).astype(np.int64)
    return _Windows(samples, np.asarray(owned, dtype=np.float64).reshape(-1, 2),
                    np.asarray(region_of, dtype=np.int64))


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def _units(win: _Windows, max_points: int, min_size: int) -> np.ndarray:
    """Group id per window: runs of consecutive windows of one region, at most max_points."""
    n = len(win.starts)
    size = max(min_size, int(np.ceil(n / max_points)))
    if size == 1:
        return np.arange(n)
    group = np.zeros(n, dtype=np.int64)
    gid, count = 0, 0
    for i in range(1, n):
        count += 1
        if win.region[i] != win.region[i - 1] or count >= size:
            gid, count = gid + 1, 0
        group[i] = gid
    return group


def _centroids(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return np.stack([_normalise(vectors[labels == c].mean(axis=0)) for c in range(k)])


def _refine(vectors: np.ndarray, labels: np.ndarray, rounds: int = 3) -> np.ndarray:
    """A few k-means rounds on the sphere: every window to its nearest centroid."""
    for _ in range(rounds):
        ids = np.unique(labels)
        cents = np.stack([_normalise(vectors[labels == c].mean(axis=0)) for c in ids])
        new = ids[np.argmax(vectors @ cents.T, axis=1)]
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _checked_clusters(vectors: np.ndarray, unit_vectors: np.ndarray, group: np.ndarray,
                      seconds: np.ndarray, lo: int, hi: int,
                      options: DiarizeOptions) -> np.ndarray:
    """The largest count up to NME-SC's estimate whose speakers are all distinct voices.

    On a short far-field recording the eigengap often over-counts; a count is accepted only if
    every pair of speaker centroids is below merge_threshold and every speaker has enough speech.
    """
    sim = np.clip(unit_vectors @ unit_vectors.T, -1.0, 1.0)
    k_est, p = estimate(sim, lo, hi)
    start = hi if options.count_from_max else k_est
    total = float(seconds.sum())
    for k in range(start, lo - 1, -1):
        labels = _refine(vectors, spectral_labels(sim, k, p)[group])
        ids = np.unique(labels)
        if len(ids) < k:
            continue
        cents = np.stack([_normalise(vectors[labels == c].mean(axis=0)) for c in ids])
        between = cents @ cents.T
        np.fill_diagonal(between, -1.0)
        durations = np.array([seconds[labels == c].sum() for c in ids])
        small = durations.min() < max(options.min_speaker_seconds,
                                      options.min_speaker_share * total)
        if k == lo or (between.max() < options.merge_threshold and not small):
            return labels
    return np.zeros(len(vectors), dtype=np.int64)


def _merge_similar(vectors: np.ndarray, labels: np.ndarray, keep_min: int,
                   threshold: float) -> np.ndarray:
    """Join the two speakers with the closest centroids while they are closer than threshold.

    Centroids average dozens of windows, so they separate voices far more reliably than single
    windows do: the spectral estimate over-splits noisy far-field speech, and this undoes it.
    """
    labels = labels.copy()
    while True:
        ids = np.unique(labels)
        if len(ids) <= keep_min:
            return labels
        cents = np.stack([_normalise(vectors[labels == c].mean(axis=0)) for c in ids])
        sim = cents @ cents.T
        np.fill_diagonal(sim, -1.0)
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[i, j] < threshold:
            return labels
        labels[labels == ids[j]] = ids[i]


def _merge_small(vectors: np.ndarray, labels: np.ndarray, seconds: np.ndarray, keep_min: int,
                 min_seconds: float, min_share: float) -> np.ndarray:
    """Fold speakers with too little speech into their nearest speaker, smallest first."""
    labels = labels.copy()
    total = float(seconds.sum())
    while True:
        ids = np.unique(labels)
        if len(ids) <= keep_min:
            return labels
        durations = np.array([seconds[labels == c].sum() for c in ids])
        small = int(np.argmin(durations))
        if durations[small] >= max(min_seconds, min_share * total):
            return labels
        victim = ids[small]
        others = ids[ids != victim]
        cents = np.stack([_normalise(vectors[labels == c].mean(axis=0)) for c in others])
        mask = labels == victim
        labels[mask] = others[np.argmax(vectors[mask] @ cents.T, axis=1)]


def _viterbi(scores: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """Best label path: sum of scores minus `penalty[t]` for a change between t-1 and t."""
    n, k = scores.shape
    back = np.zeros((n, k), dtype=np.int64)
    total = scores[0].copy()
    for t in range(1, n):
        stay = total
        best_prev = int(np.argmax(total))
        switch = total[best_prev] - penalty[t]
        take_switch = switch > stay
        back[t] = np.where(take_switch, best_prev, np.arange(k))
        total = np.where(take_switch, switch, stay) + scores[t]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(np.argmax(total))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _runs(labels: np.ndarray, region: np.ndarray) -> list[tuple[int, int]]:
    """[i, j) index ranges of one label inside one region."""
    runs, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start] or region[i] != region[start]:
            runs.append((start, i))
            start = i
    return runs


def _drop_short_turns(labels: np.ndarray, win: _Windows, scores: np.ndarray,
                      min_turn: float) -> np.ndarray:
    """A run shorter than min_turn between other speech of the same region joins a neighbour."""
    labels = labels.copy()
    for _ in range(len(labels)):
        runs = _runs(labels, win.region)
        candidates = []
        for idx, (i, j) in enumerate(runs):
            length = win.owned[j - 1, 1] - win.owned[i, 0]
            neighbours = [runs[m] for m in (idx - 1, idx + 1) if 0 <= m < len(runs)
                          and win.region[runs[m][0]] == win.region[i]]
            if length < min_turn and neighbours:
                candidates.append((length, i, j, neighbours))
        if not candidates:
            return labels
        _, i, j, neighbours = min(candidates, key=lambda c: c[0])
        options = {int(labels[a]) for a, _ in neighbours}
        labels[i:j] = max(options, key=lambda c: float(scores[i:j, c].sum()))
    return labels


def _turns(win: _Windows, labels: np.ndarray, gap: float = 0.0) -> list[tuple[float, float, int]]:
    turns: list[tuple[float, float, int]] = []
    for (a, b), label in zip(win.owned, labels):
        if turns and turns[-1][2] == label and a - turns[-1][1] <= gap + 1e-6:
            turns[-1] = (turns[-1][0], b, int(label))
        else:
            turns.append((float(a), float(b), int(label)))
    return turns


def diarize(audio: np.ndarray, encoder: SpeakerEncoder,
            options: DiarizeOptions | None = None) -> Diarization:
    """Speaker turns ("Speaker 1", "Speaker 2", ... by first appearance) and voice prints."""
    options = options or DiarizeOptions()
    total = len(audio) / SAMPLE_RATE
    regions = speech_regions(audio, options.vad)
    win = _windows(regions, encoder.window, options.step, total)
    if len(win.starts) == 0:
        return Diarization(turns=[], prints={}, speech=regions)
    vectors = _normalise(encoder.embed(audio, win.starts).astype(np.float64))
    return _label(vectors, win, options, regions)


def _label(vectors: np.ndarray, win: _Windows, options: DiarizeOptions,
           regions: list[tuple[float, float]]) -> Diarization:
    """Speakers for embedded windows: cluster, merge, re-assign, smooth, name."""
    seconds = win.owned[:, 1] - win.owned[:, 0]

    fixed = options.num_speakers
    lo = fixed or max(1, options.min_speakers)
    hi = fixed or max(lo, options.max_speakers)
    group = _units(win, options.max_points, options.unit_windows)
    count = int(group.max()) + 1
    unit_vectors = _normalise(np.stack([vectors[group == g].mean(axis=0) for g in range(count)])
                              if count < len(group) else vectors)
    if fixed is None and options.count_check:
        labels = _checked_clusters(vectors, unit_vectors, group, seconds, lo, hi, options)
    else:
        labels = cluster(unit_vectors, num=fixed, min_k=lo, max_k=hi)[group]

    if fixed is None:
        labels = _merge_similar(vectors, labels, lo, options.merge_threshold)
        labels = _merge_small(vectors, labels, seconds, lo, options.min_speaker_seconds,
                              options.min_speaker_share)
    ids = np.unique(labels)
    labels = np.searchsorted(ids, labels)
    centroids = _centroids(vectors, labels, len(ids))
    scores = vectors @ centroids.T
    if options.reassign:
        labels = np.argmax(scores, axis=1)
    if len(ids) > 1:
        # Changing speaker across a pause costs less than inside continuous speech.
        penalty = np.full(len(labels), options.switch_penalty)
        penalty[1:][win.region[1:] != win.region[:-1]] *= 0.5
        labels = _viterbi(scores, penalty)
        labels = _drop_short_turns(labels, win, scores, options.min_turn)

    # Names in order of first appearance; prints from each speaker's final windows.
    order = list(dict.fromkeys(int(x) for x in labels))
    names = {c: f"Speaker {i + 1}" for i, c in enumerate(order)}
    turns = [Turn(round(a, 3), round(b, 3), names[c]) for a, b, c in _turns(win, labels)]
    prints = {names[c]: voice_print(vectors[labels == c]) for c in order}
    return Diarization(turns=turns, prints=prints, speech=regions)


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def label_words(words: Iterable[Word], turns: Sequence[Turn]) -> list[Word]:
    """Set each word's speaker: the turn it overlaps most, else the nearest turn."""
    ordered = sorted(turns, key=lambda t: t.start)
    starts = np.array([t.start for t in ordered])
    out = []
    for word in words:
        if ordered:
            # Turns that can overlap the word begin before it ends; look at a few around it.
            i = int(np.searchsorted(starts, word.end))
            nearby = ordered[max(0, i - 8):i + 1]
            best = max(nearby, key=lambda t: (_overlap(word.start, word.end, t.start, t.end),
                                              -_distance(word, t)))
            word.speaker = best.speaker
        out.append(word)
    return out


def _distance(word: Word, turn: Turn) -> float:
    return max(0.0, turn.start - word.end, word.start - turn.end)

