"""The catalog's search index: exact numpy search always, FAISS HNSW once the catalog is large.

Strategy per query:
- catalog ≤ `exact_max_items`: exact over everything (or over the filtered rows);
- a filter keeping ≤ `filter_exact_max` rows: exact over just those rows (recall 1.0, fast);
- otherwise HNSW (with an id selector when filtered).

The HNSW file (`index.faiss` + `index.json`) is a cache of SQLite: extended in place when items
are added, rebuilt when it is missing, corrupt or out of step with the catalog.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.config import Settings
from lookalike.index.base import Ids, Matrix
from lookalike.index.exact import ExactIndex
from lookalike.index.hnsw import HnswIndex
from lookalike.index.scan import Scanner

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
INDEX_META = "index.json"


@dataclass(frozen=True)
class SearchPlan:
    """Which method served a query, for logs, benchmarks and tests."""

    method: str  # "exact", "exact-subset" or "hnsw"
    candidates: int


def _ids_digest(ids: Ids) -> str:
    return hashlib.sha256(np.sort(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()


class CatalogIndex:
    def __init__(self, folder: Path, dim: int, settings: Settings) -> None:
        self.folder = folder
        self.dim = dim
        self.settings = settings
        # one scan session for the index's lifetime, on the encoder's thread budget
        self.scanner = Scanner(settings.intra_op_threads)
        self.exact = ExactIndex(dim, self.scanner)
        self.ann: HnswIndex | None = None

    # -- building ----------------------------------------------------------------------------

    def load(self, ids: Ids, vectors: Matrix) -> None:
        """Load every vector of the catalog (from SQLite) and bring the ANN file in step."""
        self.exact = ExactIndex(self.dim, self.scanner)
        self.exact.add(ids, vectors)
        self.ann = None
        if len(ids) > self.settings.exact_max_items:
            self.ann = self._open_ann(ids, vectors)

    def _open_ann(self, ids: Ids, vectors: Matrix) -> HnswIndex:
        path, meta_path = self.folder / INDEX_FILE, self.folder / INDEX_META
        ann: HnswIndex | None = None
        if path.is_file() and meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
                ann = HnswIndex.load(path, self.settings.hnsw_ef_search)
                if ann.dim != self.dim or meta.get("digest") != _ids_digest(ann.ids()):
                    raise ValueError("index file does not match its metadata")
            except Exception as exc:  # corrupt file: faiss raises RuntimeError, json ValueError
                log.warning("rebuilding search index: %s unusable (%s)", path, exc)
                ann = None
        if ann is not None:
            have = ann.ids()
            stale = np.setdiff1d(have, ids)
            if len(stale):
                ann.remove(stale)
            missing = np.setdiff1d(ids, have)
            if len(missing):
                log.info("extending search index with %d new items", len(missing))
                ann.add(missing, self.exact.get(missing))
            if len(stale) or len(missing):
                self._save_ann(ann)
            return ann
        ann = self._new_ann()
        ann.add(ids, vectors)
        self._save_ann(ann)
        return ann

    def _new_ann(self) -> HnswIndex:
        s = self.settings
        return HnswIndex(self.dim, s.hnsw_m, s.hnsw_ef_construction, s.hnsw_ef_search)

    def _save_ann(self, ann: HnswIndex) -> None:
        if ann.removed_fraction > 0.2:  # too many tombstones: rebuild compactly
            fresh = self._new_ann()
            fresh.add(self.exact.ids, self.exact.matrix)
            ann = fresh
            self.ann = fresh
        self.folder.mkdir(parents=True, exist_ok=True)
        ann.save(self.folder / INDEX_FILE)
        meta = {"dim": self.dim, "count": len(ann), "digest": _ids_digest(ann.ids())}
        tmp = self.folder / f"{INDEX_META}.{os.getpid()}.tmp"  # several processes may save
        tmp.write_text(json.dumps(meta))
        tmp.replace(self.folder / INDEX_META)

    # -- changes -----------------------------------------------------------------------------

    def add(self, ids: Ids, vectors: Matrix, *, save: bool = True) -> None:
        """Add items without a rebuild (the ANN graph is extended and, with `save`, saved).
        Ids already present (a refresh may have loaded them first) are not added to the graph
        twice. A process following another one's writes passes save=False: the writer saves."""
        ids = np.asarray(ids, dtype=np.int64)
        new = ~np.isin(ids, self.exact.ids)
        self.exact.add(ids, vectors)
        if self.ann is None and len(self.exact) > self.settings.exact_max_items:
            self.ann = self._open_ann(self.exact.ids, self.exact.matrix)
        elif self.ann is not None and new.any():
            self.ann.add(ids[new], np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)[new])
            if save:
                self._save_ann(self.ann)

    def remove(self, ids: Ids, *, save: bool = True) -> None:
        self.exact.remove(ids)
        if self.ann is not None:
            self.ann.remove(ids)
            if save:
                self._save_ann(self.ann)

    def __len__(self) -> int:
        return len(self.exact)

    def vectors_of(self, ids: Ids) -> Matrix:
        return self.exact.get(ids)

    # -- search ------------------------------------------------------------------------------

    def plan(self, allowed: Ids | None) -> SearchPlan:
        n = len(self.exact)
        if allowed is None:
            return SearchPlan("exact" if self.ann is None else "hnsw", n)
        if self.ann is None or len(allowed) <= self.settings.filter_exact_max:
            return SearchPlan("exact-subset", len(allowed))
        return SearchPlan("hnsw", len(allowed))

    def search(
        self, queries: Matrix, k: int, allowed: Ids | None = None
    ) -> tuple[Matrix, Ids, SearchPlan]:
        plan = self.plan(allowed)
        if plan.method == "hnsw" and self.ann is not None:
            scores, ids = self.ann.search(queries, k, allowed)
        else:
            scores, ids = self.exact.search(queries, k, allowed)
        return scores, ids, plan
