"""Exact (brute-force) search, every vector scored: the reference every other index is checked
against, and the fastest choice for small catalogs and for small filtered subsets."""

from __future__ import annotations

import numpy as np

from lookalike.index.base import Ids, Matrix
from lookalike.index.scan import Int8Rows, Scanner


class ExactIndex:
    """Vectors in one contiguous matrix, rows sorted by id.

    Ids, matrix and the matrix's int8 rows are swapped together as one tuple, never changed in
    place, so a search running while another thread adds or removes items sees one consistent
    version. Scores come from `scanner` (ONNX Runtime, see `index/scan.py`: exact top k, through
    the int8 rows first on large scans; one thread unless given)."""

    def __init__(self, dim: int, scanner: Scanner | None = None) -> None:
        self.dim = dim
        self.scanner = scanner or Scanner(threads=1)
        empty = np.zeros((0, dim), dtype=np.float32)
        self._data: tuple[Ids, Matrix, Int8Rows] = (
            np.zeros(0, dtype=np.int64), empty, Int8Rows.of(empty)
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
        old_ids, old_matrix, old_rows = self._data
        keep = ~np.isin(old_ids, ids)  # an id added again replaces its vector
        all_ids = np.concatenate([old_ids[keep], ids])
        matrix = np.concatenate([old_matrix[keep], vectors])
        rows = Int8Rows.concat([old_rows.take(keep), Int8Rows.of(vectors)])
        if len(all_ids) > 1 and not (np.diff(all_ids) > 0).all():
            order = np.argsort(all_ids, kind="stable")
            all_ids, matrix, rows = all_ids[order], matrix[order], rows.take(order)
        self._data = (all_ids, matrix, rows)

    def remove(self, ids: Ids) -> None:
        old_ids, old_matrix, old_rows = self._data
        keep = ~np.isin(old_ids, np.asarray(ids, dtype=np.int64))
        self._data = (old_ids[keep], old_matrix[keep], old_rows.take(keep))

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
        present, matrix, _ = self._data
        rows: Matrix = matrix[self._positions(present, ids)]
        return rows

    def search(self, queries: Matrix, k: int, allowed: Ids | None = None) -> tuple[Matrix, Ids]:
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        ids, matrix, rows = self._data
        pos = None if allowed is None else self._positions(ids, allowed)
        scores, idx = self.scanner.top_k(queries, matrix, rows, k, pos)
        if pos is not None:
            ids = ids[pos]
        out_ids = np.where(idx >= 0, ids[np.clip(idx, 0, None)] if len(ids) else -1, -1)
        return scores, out_ids.astype(np.int64)
