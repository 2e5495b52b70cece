"""Approximate search with FAISS HNSW, for catalogs too large to scan exactly.

Filtered search passes FAISS an id selector and widens efSearch as the filter narrows; the
caller only sends filters here that keep many items (small ones go to exact search).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import faiss
import numpy as np

from lookalike.index.base import Ids, Matrix


class HnswIndex:
    def __init__(self, dim: int, m: int = 32, ef_construction: int = 200, ef_search: int = 128):
        self.dim = dim
        self.ef_search = ef_search
        inner = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = ef_construction
        inner.hnsw.efSearch = ef_search
        self._index = faiss.IndexIDMap2(inner)
        self._removed: set[int] = set()

    def __len__(self) -> int:
        return int(self._index.ntotal) - len(self._removed)

    def ids(self) -> Ids:
        all_ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if self._removed:
            all_ids = all_ids[~np.isin(all_ids, np.fromiter(self._removed, dtype=np.int64))]
        return all_ids

    def add(self, ids: Ids, vectors: Matrix) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        back = self._removed.intersection(ids.tolist())
        if back:
            raise ValueError("cannot re-add removed ids to HNSW; rebuild the index")
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def vectors(self, ids: Ids) -> Matrix:
        """The stored vectors of `ids` (all present in the graph), as they were added."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out: Matrix = self._index.reconstruct_batch(ids).astype(np.float32, copy=False)
        return out

    def remove(self, ids: Ids) -> None:
        # HNSW cannot delete nodes: remember them and filter them out of every search.
        self._removed.update(int(i) for i in ids)

    @property
    def removed(self) -> Ids:
        """Ids removed since the graph was built (HNSW keeps their nodes; searches skip them)."""
        return np.fromiter(sorted(self._removed), dtype=np.int64, count=len(self._removed))

    @property
    def removed_fraction(self) -> float:
        return len(self._removed) / max(1, int(self._index.ntotal))

    def search(self, queries: Matrix, k: int, allowed: Ids | None = None) -> tuple[Matrix, Ids]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        ef = max(self.ef_search, k)
        selector: faiss.IDSelector | None = None
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            if self._removed:
                allowed = allowed[~np.isin(allowed, np.fromiter(self._removed, dtype=np.int64))]
            selector = faiss.IDSelectorBatch(allowed)
            share = len(allowed) / max(1, int(self._index.ntotal))
            ef = min(4096, int(ef * max(1.0, math.sqrt(1.0 / max(share, 1e-6)))))
        elif self._removed:
            removed = np.fromiter(self._removed, dtype=np.int64)
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(removed))
        params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
        if selector is not None:
            params.sel = selector
        scores, ids = self._index.search(queries, k, params=params)
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        return scores, ids.astype(np.int64)

    def save(self, path: Path) -> None:
        """Write atomically (temp file, fsync, rename)."""
        tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")  # several processes may save
        faiss.write_index(self._index, str(tmp))
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, ef_search: int = 128, removed: Ids | None = None) -> HnswIndex:
        """The saved graph; `removed`: the ids removed from it before it was saved."""
        index = faiss.read_index(str(path))
        obj = cls.__new__(cls)
        obj.dim = int(index.d)
        obj.ef_search = ef_search
        obj._index = index  # type: ignore[assignment]
        obj._removed = set() if removed is None else {int(i) for i in removed}
        return obj
