"""Maximal marginal relevance (MMR) with near-duplicate collapse.

Greedy: each step takes the candidate maximising  λ·relevance − (1−λ)·max-similarity to the
items already taken. λ = 1 is pure relevance order, lower λ spreads the results out. A candidate
whose cosine to a taken item is ≥ `duplicate_cos` is the same item seen twice (a re-photo, a
re-encode) and is dropped whatever λ is (None: no collapse).

`mmr` is the fast path (one running max per candidate); `mmr_reference` is the plain loop
it is tested against.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["mean_pairwise_distance", "mmr", "mmr_reference"]


def mmr(
    relevance: NDArray[np.float32],
    vectors: NDArray[np.float32],
    k: int,
    lam: float,
    duplicate_cos: float | None = None,
) -> list[int]:
    """Positions of up to k candidates in MMR order (ties → earlier candidate)."""
    n = len(relevance)
    if n == 0 or k <= 0:
        return []
    rel = np.asarray(relevance, dtype=np.float64)
    vecs = np.asarray(vectors, dtype=np.float32)
    max_sim = np.full(n, -np.inf)
    alive = np.ones(n, dtype=bool)
    chosen: list[int] = []
    while len(chosen) < k and alive.any():
        gain = lam * rel - (1.0 - lam) * max_sim if chosen else rel.copy()
        gain[~alive] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        alive[best] = False
        sims = (vecs @ vecs[best]).astype(np.float64)
        max_sim = np.maximum(max_sim, sims)
        if duplicate_cos is not None:
            alive &= sims < duplicate_cos
    return chosen


def mmr_reference(
    relevance: NDArray[np.float32],
    vectors: NDArray[np.float32],
    k: int,
    lam: float,
    duplicate_cos: float | None = None,
) -> list[int]:
    """The textbook loop: recompute every max-similarity at every step."""
    chosen: list[int] = []
    rest = list(range(len(relevance)))
    while len(chosen) < k:
        rest = [
            i for i in rest
            if duplicate_cos is None
            or all(float(vectors[i] @ vectors[j]) < duplicate_cos for j in chosen)
        ]
        if not rest:
            break
        best, best_gain = -1, -np.inf
        for i in rest:
            if chosen:
                red = max(float(vectors[i] @ vectors[j]) for j in chosen)
                gain = lam * float(relevance[i]) - (1.0 - lam) * red
            else:
                gain = float(relevance[i])
            if gain > best_gain:
                best, best_gain = i, gain
        chosen.append(best)
        rest.remove(best)
    return chosen


def mean_pairwise_distance(vectors: NDArray[np.float32]) -> float:
    """Mean cosine distance over all pairs of (unit) vectors: the diversity of a result list."""
    n = len(vectors)
    if n < 2:
        return 0.0
    sims = vectors @ vectors.T
    upper = sims[np.triu_indices(n, k=1)]
    return float(np.mean(1.0 - upper))
