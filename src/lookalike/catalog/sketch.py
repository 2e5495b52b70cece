"""Vector sketches: 256 sign bits of an item's vector under a fixed, seeded Gaussian projection
(SimHash; 32 bytes an item), kept in memory by the repost check to leave unread the stored
vectors of hash candidates that cannot reach the cosine they need.

For two vectors at angle θ, each projection row (an independent Gaussian direction) gives the
two a different sign with probability θ/π, so the Hamming distance of their sketches is
Binomial(`SKETCH_BITS`, θ/π). A candidate needing cosine c (angle at most arccos c) is read
only if its sketch lies within `max_distance(c)` bits: the smallest distance that a pair at
exactly that angle exceeds with probability at most `MISS` (a pair at a smaller angle exceeds
it less often). With the default rule (cosine 0.88 at 0 bits of hash distance to 0.992 at 14)
that is 79 bits at 0 hash bits (mean 40, 6.6 standard deviations above it) down to 34 at 14
(mean 10, 7.5 above); vectors at cosine 0.3 (~103 bits apart) or random ones (128) lie far
beyond, while a candidate at cosine 0.7 (~65 bits) is still read at 0-4 hash bits. The
projection depends on the vectors' width alone: a catalog re-encoded with another model gets
new sketches (`lookalike.catalog.reembed`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MISS",
    "SKETCH_BITS",
    "SKETCH_BYTES",
    "max_distance",
    "one_faiss_thread",
    "sketch_distances",
    "vector_sketches",
]

SKETCH_BITS = 256
SKETCH_BYTES = SKETCH_BITS // 8
#: The chance a candidate exactly at the cosine it needs is screened out (not read, so not
#: found): per candidate, at most this (about a one-sided 6-sigma normal tail).
MISS = 1e-9
_SEED = 19  # the projection's (with the vectors' width): never change it, sketches are stored
_GRID = 4096  # the limits are tabled for angles θ/π = 0, 1/(2 x _GRID), ..., 1/2


def _projection(dim: int) -> NDArray[np.float32]:
    """The fixed Gaussian projection of `dim`-wide vectors: (dim, SKETCH_BITS)."""
    rng = np.random.default_rng([_SEED, dim])
    return rng.standard_normal((dim, SKETCH_BITS), dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _transform(dim: int) -> faiss.LinearTransform:
    """`_projection` as a FAISS linear transform: its matrix product runs on FAISS's BLAS,
    whose thread count is the calling thread's (`one_faiss_thread`). numpy's BLAS would use every
    core for the writer's small batches (a few dozen vectors): on a busy machine its threads
    spent ~10 times the CPU of one thread. (`apply` is const: safe from several threads.)"""
    transform = faiss.LinearTransform(dim, SKETCH_BITS, False)
    faiss.copy_array_to_vector(np.ascontiguousarray(_projection(dim).T).ravel(), transform.A)
    transform.is_trained = True
    return transform


@contextmanager
def one_faiss_thread() -> Iterator[None]:
    """FAISS (OpenMP, and the BLAS it calls) on this thread alone (this thread's setting): for
    the writer's small searches, adds and projections a second thread only spins."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def vector_sketches(vectors: NDArray[np.float32]) -> NDArray[np.uint8]:
    """The sketches of vectors (rows): (n, SKETCH_BYTES) bytes, bit i set when the vector's
    projection on row i is positive. (Another BLAS may round a projection within ~1e-6 of
    0 the other way: a bit or two, which the thresholds' margin covers.)"""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if not len(matrix):
        return np.zeros((0, SKETCH_BYTES), dtype=np.uint8)
    matrix = matrix.reshape(len(matrix), -1)
    with one_faiss_thread():
        projected = _transform(matrix.shape[1]).apply(matrix)
    return np.packbits(np.asarray(projected) > 0, axis=1)


def sketch_distances(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Bits in which sketches differ, row by row (either side may be a single sketch)."""
    counts: NDArray[np.int64] = np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)
    return counts


@functools.lru_cache(maxsize=1)
def _limits() -> NDArray[np.int64]:
    """For p = k / (2 x _GRID), k = 0.._GRID: the smallest t with P(Binomial(SKETCH_BITS, p)
    > t) <= MISS."""
    p = np.arange(_GRID + 1, dtype=np.float64) / (2 * _GRID)
    n = SKETCH_BITS
    pmf = np.empty((n + 1, len(p)))
    pmf[0] = (1.0 - p) ** n
    ratio = p / (1.0 - p)
    for k in range(n):
        pmf[k + 1] = pmf[k] * (n - k) / (k + 1) * ratio
    above = np.cumsum(pmf[::-1], axis=0)[::-1]  # above[t] = P(X >= t)
    # P(X > t) = above[t + 1]; the first t where it is at most MISS
    exceeds = np.vstack([above[1:], np.zeros((1, len(p)))]) > MISS
    limits: NDArray[np.int64] = exceeds.sum(axis=0).astype(np.int64)
    return limits


def max_distance(cosine: NDArray[np.float64]) -> NDArray[np.int64]:
    """The sketch distance up to which a candidate needing (at least) this cosine with the
    photo's direction is read: a pair at that cosine lies farther with probability at most
    `MISS`. Needed cosines below 0 screen nothing (SKETCH_BITS)."""
    cos = np.clip(np.asarray(cosine, dtype=np.float64), -1.0, 1.0)
    p = np.arccos(cos) / np.pi
    # the grid point at or above p (a larger angle allows more bits: never tighter)
    k = np.ceil(p * 2 * _GRID).astype(np.int64)
    limits = _limits()
    return np.where(k > _GRID, SKETCH_BITS, limits[np.minimum(k, _GRID)])
