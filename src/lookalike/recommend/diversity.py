"""Maximal marginal relevance (MMR) with near-duplicate collapse.

Greedy: each step takes the candidate with the highest

    score = relevance − diversity · max(0, cosine to the closest item already taken)

so diversity 0 is pure relevance order and higher values spread the results out (this is
classic MMR, λ·relevance − (1−λ)·redundancy, divided by λ = 1 / (1 + diversity): the same
order, on the relevance scale). The score an item is taken with never exceeds its relevance
and never rises down the list, so it can be shown beside each result. A candidate whose cosine
to a taken item is ≥ `duplicate_cos` is the same item seen twice (a re-photo, a re-encode) and
is dropped whatever the diversity is (None: no collapse).

`mmr` is the fast path (one running max per candidate; at diversity 0 a walk down the
relevance order); `mmr_reference` is the plain loop it is tested against.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["mean_pairwise_distance", "mmr", "mmr_reference"]


def mmr(
    relevance: NDArray[np.float32],
    vectors: NDArray[np.float32],
    k: int,
    diversity: float,
    duplicate_cos: float | None = None,
) -> tuple[list[int], list[float]]:
    """Positions of up to k candidates in MMR order (ties → earlier candidate), and the score
    each was taken with."""
    n = len(relevance)
    if n == 0 or k <= 0:
        return [], []
    rel = np.asarray(relevance, dtype=np.float64)
    vecs = np.asarray(vectors, dtype=np.float32)
    if diversity <= 0:
        return _walk(rel, vecs, k, duplicate_cos)
    redundancy = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    chosen: list[int] = []
    scores: list[float] = []
    while len(chosen) < k and alive.any():
        gain = rel - diversity * redundancy
        gain[~alive] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        scores.append(float(gain[best]))
        alive[best] = False
        sims = _cosines(vecs, best)
        redundancy = np.maximum(redundancy, sims)
        if duplicate_cos is not None:
            alive &= sims < duplicate_cos
    return chosen, scores


def _cosines(vecs: NDArray[np.float32], i: int) -> NDArray[np.float64]:
    """Cosines of every row to row i. numpy's own loop, not OpenBLAS: a few hundred rows are
    not worth waking BLAS threads for, which on a busy machine cost milliseconds per call."""
    out: NDArray[np.float64] = np.einsum("nd,d->n", vecs, vecs[i]).astype(np.float64)
    return out


def _walk(
    rel: NDArray[np.float64], vecs: NDArray[np.float32], k: int, duplicate_cos: float | None
) -> tuple[list[int], list[float]]:
    """Diversity 0: relevance order, each candidate checked only against those taken."""
    order = np.argsort(-rel, kind="stable")
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= k:
            break
        if duplicate_cos is not None and chosen and float(
            np.einsum("nd,d->n", vecs[chosen], vecs[i]).max()
        ) >= duplicate_cos:
            continue
        chosen.append(int(i))
    return chosen, [float(rel[i]) for i in chosen]


def mmr_reference(
    relevance: NDArray[np.float32],
    vectors: NDArray[np.float32],
    k: int,
    diversity: float,
    duplicate_cos: float | None = None,
) -> tuple[list[int], list[float]]:
    """The textbook loop: recompute every redundancy at every step."""
    chosen: list[int] = []
    scores: list[float] = []
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
            red = max([0.0, *(float(vectors[i] @ vectors[j]) for j in chosen)])
            gain = float(relevance[i]) - diversity * red
            if gain > best_gain:
                best, best_gain = i, gain
        chosen.append(best)
        scores.append(best_gain)
        rest.remove(best)
    return chosen, scores


def mean_pairwise_distance(vectors: NDArray[np.float32]) -> float:
    """Mean cosine distance over all pairs of (unit) vectors: the diversity of a result list."""
    n = len(vectors)
    if n < 2:
        return 0.0
    sims = vectors @ vectors.T
    upper = sims[np.triu_indices(n, k=1)]
    return float(np.mean(1.0 - upper))
