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
    """Vectors in one contiguous matrix, rows sorted by id.

    Ids and matrix are swapped together as one tuple, never changed in place, so a search
    running while another thread adds or removes items sees one consistent version."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._data: tuple[Ids, Matrix] = (
            np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        )

    @property
    def ids(self) -> Ids:
        return self._data[0]

    @property
    def matrix(self) -> Matrix:
        return self._data[1]

    def __len__(self) -> int:
        return len(self._data[0])

    def add(self, ids: Ids, vectors: Matrix) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if len(ids) == 0:
            return
        old_ids, old_matrix = self._data
        keep = ~np.isin(old_ids, ids)  # an id added again replaces its vector
        all_ids = np.concatenate([old_ids[keep], ids])
        matrix = np.concatenate([old_matrix[keep], vectors])
        if len(all_ids) > 1 and not (np.diff(all_ids) > 0).all():
            order = np.argsort(all_ids, kind="stable")
            all_ids, matrix = all_ids[order], matrix[order]
        self._data = (all_ids, matrix)

    def remove(self, ids: Ids) -> None:
        old_ids, old_matrix = self._data
        keep = ~np.isin(old_ids, np.asarray(ids, dtype=np.int64))
        self._data = (old_ids[keep], old_matrix[keep])

    @staticmethod
    def _positions(present: Ids, ids: Ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if len(present) == 0:
            return np.zeros(0, dtype=np.intp)
        pos = np.clip(np.searchsorted(present, ids), 0, len(present) - 1)
        found: np.ndarray = pos[present[pos] == ids]
        return found

    def positions(self, ids: Ids) -> np.ndarray:
        """Row positions of those `ids` that are present."""
        return self._positions(self._data[0], ids)

    def get(self, ids: Ids) -> Matrix:
        present, matrix = self._data
        rows: Matrix = matrix[self._positions(present, ids)]
        return rows

    def search(self, queries: Matrix, k: int, allowed: Ids | None = None) -> tuple[Matrix, Ids]:
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        ids, matrix = self._data
        if allowed is not None:
            pos = self._positions(ids, allowed)
            ids, matrix = ids[pos], matrix[pos]
        scores, idx = top_k(similarities(queries, matrix), k)
        out_ids = np.where(idx >= 0, ids[np.clip(idx, 0, None)] if len(ids) else -1, -1)
        return scores, out_ids.astype(np.int64)
