"""Exact (brute-force) search with numpy: the reference every other index is checked against,
and the fastest choice for small catalogs and for small filtered subsets."""

from __future__ import annotations

import numpy as np

from lookalike.index.base import Ids, Matrix, top_k


def similarities(queries: Matrix, matrix: Matrix) -> Matrix:
    """queries @ matrix.T. One query (a photo search) is a matrix-vector product: memory-bound,
    and on BLAS its threads busy-wait after each call on the cores ONNX Runtime needs for the
    next photo, so it runs in numpy's own single-threaded loop. Measured on 2 cores,
    5,398 × 1,280 (docs/issue-3-notes.md): warm photo searches from 2 threads 117/s through
    BLAS, 212/s this way (one caller: 107/s and 134/s)."""
    if len(queries) == 1:
        one: Matrix = np.einsum("d,nd->n", queries[0], matrix)[None]
        return one
    many: Matrix = queries @ matrix.T
    return many


class ExactIndex:
    """Vectors in one contiguous matrix, rows sorted by id."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.ids: Ids = np.zeros(0, dtype=np.int64)
        self.matrix: Matrix = np.zeros((0, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: Ids, vectors: Matrix) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if len(ids) == 0:
            return
        present = np.isin(ids, self.ids)
        if present.any():
            self.remove(ids[present])
        self.ids = np.concatenate([self.ids, ids])
        self.matrix = np.concatenate([self.matrix, vectors])
        if len(self.ids) > 1 and not (np.diff(self.ids) > 0).all():
            order = np.argsort(self.ids, kind="stable")
            self.ids, self.matrix = self.ids[order], self.matrix[order]

    def remove(self, ids: Ids) -> None:
        keep = ~np.isin(self.ids, np.asarray(ids, dtype=np.int64))
        self.ids, self.matrix = self.ids[keep], self.matrix[keep]

    def positions(self, ids: Ids) -> np.ndarray:
        """Row positions of those `ids` that are present."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos = np.clip(pos, 0, max(len(self.ids) - 1, 0))
        if len(self.ids) == 0:
            return np.zeros(0, dtype=np.intp)
        found: np.ndarray = pos[self.ids[pos] == ids]
        return found

    def get(self, ids: Ids) -> Matrix:
        rows: Matrix = self.matrix[self.positions(ids)]
        return rows

    def search(self, queries: Matrix, k: int, allowed: Ids | None = None) -> tuple[Matrix, Ids]:
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if allowed is None:
            ids, matrix = self.ids, self.matrix
        else:
            pos = self.positions(allowed)
            ids, matrix = self.ids[pos], self.matrix[pos]
        scores, idx = top_k(similarities(queries, matrix), k)
        out_ids = np.where(idx >= 0, ids[np.clip(idx, 0, None)] if len(ids) else -1, -1)
        return scores, out_ids.astype(np.int64)
