"""The vector index contract. Ids are int64 catalog rowids; vectors are L2-normalised float32,
so inner product is cosine similarity."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Ids = NDArray[np.int64]
Matrix = NDArray[np.float32]


class VectorIndex(Protocol):
    """Add, remove and search vectors by id. `allowed` restricts results to those ids."""

    def __len__(self) -> int: ...

    def add(self, ids: Ids, vectors: Matrix) -> None: ...

    def remove(self, ids: Ids) -> None: ...

    def search(
        self, queries: Matrix, k: int, allowed: Ids | None = None
    ) -> tuple[Matrix, Ids]:
        """(m, d) queries → (scores, ids), each (m, k), best first; missing slots are id -1."""
        ...


def top_k(scores: Matrix, k: int) -> tuple[Matrix, NDArray[np.intp]]:
    """Row-wise best k of a (m, n) score matrix, sorted descending; pads with -inf / -1."""
    m, n = scores.shape
    kk = min(k, n)
    out_s = np.full((m, k), -np.inf, dtype=np.float32)
    out_i = np.full((m, k), -1, dtype=np.intp)
    if kk == 0:
        return out_s, out_i
    if kk < n:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    else:
        part = np.broadcast_to(np.arange(n), (m, n))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    out_i[:, :kk] = np.take_along_axis(part, order, axis=1)
    out_s[:, :kk] = np.take_along_axis(part_scores, order, axis=1)
    return out_s, out_i
