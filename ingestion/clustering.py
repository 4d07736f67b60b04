"""Spectral clustering that estimates the number of speakers (NME-SC, Park et al. 2019).

The cosine affinity between voice vectors is pruned to each row's p nearest neighbours, and p
is chosen where the Laplacian's largest eigengap is widest relative to p (the normalised
maximum eigengap). The position of that gap is the speaker count. A plain distance threshold
proved unstable on meeting audio: one value merged or split whole recordings.

Cost grows with the cube of the number of points: cluster segments, not every window, when a
recording is long (see diarization.py).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh


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


def _eigengaps(affinity: np.ndarray, max_k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The smallest max_k + 1 Laplacian eigenvalues, their gaps, and the largest eigenvalue."""
    lam = eigh(_laplacian(affinity), eigvals_only=True)
    return lam[:max_k + 1], np.diff(lam[:max_k + 1]), float(lam[-1])


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
        affinity = _pruned_affinity(sim, p)
        _, gaps, largest = _eigengaps(affinity, min(max_k, n - 1))
        window = gaps[min_k - 1:max_k]
        k = int(np.argmax(window)) + min_k
        # Gap relative to the spectrum's scale; smaller p for the same gap is better.
        ratio = (p / n) / (float(window.max()) / (largest + 1e-10) + 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, k, p)
    assert best is not None
    return best[1], best[2]


def spectral_labels(sim: np.ndarray, k: int, p: int, seed: int = 0) -> np.ndarray:
    """k clusters from the pruned affinity's k smallest Laplacian eigenvectors."""
    from sklearn.cluster import KMeans

    n = len(sim)
    if k <= 1 or n <= k:
        return np.zeros(n, dtype=int) if k <= 1 else np.arange(n)
    affinity = _pruned_affinity(sim, min(p, n - 1))
    _, vectors = eigh(_laplacian(affinity), subset_by_index=[0, k - 1])
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(vectors)


def cluster(vectors: np.ndarray, num: int | None = None, min_k: int = 1,
            max_k: int = 8) -> np.ndarray:
    """Cluster labels 0..k-1 for L2-normalised vectors; `num` fixes the count."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    sim = np.clip(vectors @ vectors.T, -1.0, 1.0)
    if num is not None:
        k, p = estimate(sim, num, num)
    else:
        k, p = estimate(sim, min_k, max_k)
    return spectral_labels(sim, k, p)
