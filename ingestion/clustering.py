"""Spectral clustering of voice vectors on a pruned cosine graph (after NME-SC, Park et al. 2019).

The cosine affinity between voice vectors is pruned to each row's p nearest neighbours, and p
is chosen where the Laplacian's largest eigengap is widest relative to p (the normalised
maximum eigengap). A plain distance threshold proved unstable on meeting audio: one value
merged or split whole recordings.

Points whose audio overlaps (sliding windows a fraction of a window apart) are always each
other's nearest neighbours whoever speaks; such pairs are left out of the graph, so the
neighbours that remain are independent evidence. With them in, the pruned graph linked runs of
consecutive windows rather than voices and the eigengap over-counted 30 s meetings (8 for 2).

Cost grows with the cube of the number of points: cluster segments, not every window, when a
recording is long (see diarization.py).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh


def similarity(vectors: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Cosine similarity of L2-normalised vectors; -1 between points whose (start, end) overlap.

    A point stays its own neighbour (1 on the diagonal).
    """
    sim = np.clip(vectors @ vectors.T, -1.0, 1.0)
    overlap = (spans[:, None, 0] < spans[None, :, 1]) & (spans[None, :, 0] < spans[:, None, 1])
    sim[overlap] = -1.0
    np.fill_diagonal(sim, 1.0)
    return sim


def _pruned_affinity(sim: np.ndarray, p: int) -> np.ndarray:
    """Keep each row's p largest similarities as 1, the rest 0, then symmetrise."""
    n = len(sim)
    keep = np.argpartition(-sim, kth=min(p, n - 1), axis=1)[:, :p]
    binary = np.zeros_like(sim)
    np.put_along_axis(binary, keep, 1.0, axis=1)
    return 0.5 * (binary + binary.T)


def _laplacian(affinity: np.ndarray) -> np.ndarray:
    a = affinity.copy()
    np.fill_diagonal(a, 0.0)
    return np.diag(a.sum(axis=1)) - a


def _eigengaps(affinity: np.ndarray, max_k: int) -> tuple[np.ndarray, float]:
    """The gaps between the smallest max_k + 1 Laplacian eigenvalues, and the largest one."""
    lam = eigh(_laplacian(affinity), eigvals_only=True)
    return np.diff(lam[:max_k + 1]), float(lam[-1])


def estimate(sim: np.ndarray, min_k: int, max_k: int,
             max_p_ratio: float = 0.25, steps: int = 20) -> tuple[int, int]:
    """(speaker count, pruning p) by the normalised maximum eigengap."""
    n = len(sim)
    max_k = max(1, min(max_k, n - 1))
    min_k = max(1, min(min_k, max_k))
    p_values = np.unique(np.linspace(2, max(2, int(n * max_p_ratio)), steps).astype(int))
    best: tuple[float, int, int] | None = None
    for p in p_values:
        p = int(min(p, n - 1))
        gaps, largest = _eigengaps(_pruned_affinity(sim, p), max_k)
        window = gaps[min_k - 1:max_k]
        k = int(np.argmax(window)) + min_k
        # Gap relative to the spectrum's scale; smaller p for the same gap is better.
        ratio = (p / n) / (float(window.max()) / (largest + 1e-10) + 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, k, p)
    assert best is not None
    return best[1], best[2]


def spectral_embedding(sim: np.ndarray, p: int, max_k: int) -> np.ndarray:
    """(n, max_k) eigenvectors of the pruned graph's Laplacian, smallest eigenvalues first.

    The first k columns embed the points for a k-way partition, so one decomposition serves
    every candidate count.
    """
    n = len(sim)
    affinity = _pruned_affinity(sim, min(p, n - 1))
    _, vectors = eigh(_laplacian(affinity), subset_by_index=[0, min(max_k, n) - 1])
    return vectors


def spectral_labels(embedding: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k clusters from the first k columns of a spectral embedding."""
    n = len(embedding)
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    if n <= k:
        return np.arange(n)
    return kmeans(embedding[:, :k], k, seed)


def kmeans(points: np.ndarray, k: int, seed: int = 0, restarts: int = 10,
           iterations: int = 100) -> np.ndarray:
    """Lloyd's k-means from k-means++ starts; the labels of the restart with the least inertia.

    Small and dependency-free: scikit-learn's import alone takes 2 s, longer than clustering a
    30 s recording.
    """
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray] | None = None
    for _ in range(restarts):
        centres = _kmeans_pp(points, k, rng)
        for _ in range(iterations):
            dist = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            labels = np.argmin(dist, axis=1)
            moved = np.stack([points[labels == c].mean(axis=0) if np.any(labels == c)
                              else centres[c] for c in range(k)])
            if np.allclose(moved, centres):
                break
            centres = moved
        inertia = float(dist[np.arange(len(points)), labels].sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels)
    assert best is not None
    return best[1].astype(np.int64)


def _kmeans_pp(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k starting centres, each drawn with probability proportional to squared distance."""
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        dist = np.min([((points - c) ** 2).sum(axis=1) for c in centres], axis=0)
        total = float(dist.sum())
        index = rng.choice(len(points), p=dist / total) if total > 0 else rng.integers(len(points))
        centres.append(points[index])
    return np.stack(centres)
