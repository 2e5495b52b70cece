"""The catalog's search index: exact numpy search always, FAISS HNSW once the catalog is large.

Strategy per query:
- catalog ≤ `exact_max_items`: exact over everything (or over the filtered rows);
- a filter keeping ≤ `filter_exact_max` rows: exact over just those rows (recall 1.0, fast);
- otherwise HNSW (with an id selector when filtered).

The HNSW file (`index.faiss`, listed with its SHA-256 in `index.json`, see `index/files.py`) is a
cache of SQLite: extended in place when items are added; rebuilt when it is missing, when its
content does not match its checksum, or when it holds rows the catalog does not (its
fingerprint of (id, vector) pairs, `index/fingerprint.py`, differs from SQLite's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.config import Settings
from lookalike.index.base import Ids, Matrix
from lookalike.index.exact import ExactIndex
from lookalike.index.files import IndexFileError, read_files, write_files
from lookalike.index.fingerprint import Fingerprint
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


class CatalogIndex:
    def __init__(self, folder: Path, dim: int, settings: Settings) -> None:
        self.folder = folder
        self.dim = dim
        self.settings = settings
        # one scan session for the index's lifetime, on the encoder's thread budget
        self.scanner = Scanner(settings.intra_op_threads)
        self.exact = ExactIndex(dim, self.scanner)
        self.ann: HnswIndex | None = None
        self._ann_fp = Fingerprint()  # of the rows the ANN holds (mirrors `exact`)

    # -- building ----------------------------------------------------------------------------

    def load(self, ids: Ids, vectors: Matrix) -> None:
        """Load every vector of the catalog (from SQLite) and bring the ANN file in step."""
        self.exact = ExactIndex(self.dim, self.scanner)
        self.exact.add(ids, vectors)
        self.ann = None
        if len(ids) > self.settings.exact_max_items:
            self.ann = self._open_ann(self.exact.ids, self.exact.matrix)

    def _open_ann(self, ids: Ids, vectors: Matrix) -> HnswIndex:
        """The saved ANN, checked against SQLite's `ids` and `vectors` (ascending ids) and
        extended with the missing ones; a new one when the saved one is unusable."""
        try:
            ann, fp = read_saved_ann(self.folder, self.dim, ids, vectors, self.settings)
        except IndexFileError as exc:
            if (self.folder / INDEX_META).exists() or (self.folder / INDEX_FILE).exists():
                log.warning("rebuilding the search index from the catalog: %s", exc)
        else:
            have = ann.ids()
            stale = np.setdiff1d(have, ids)  # deleted after the file was saved
            missing = np.setdiff1d(ids, have)  # added after it was saved
            if not len(stale) and not len(missing):
                self._ann_fp = fp
                return ann
            missing_vectors = vectors[np.searchsorted(ids, missing)]
            try:
                fp.remove(stale, ann.vectors(stale))
                ann.remove(stale)
                ann.add(missing, missing_vectors)
            except ValueError:  # a rowid reused (catalogs from before rowids were kept unique)
                log.info("rebuilding the search index: a removed rowid was reused")
            else:
                log.info("search index: %d items added, %d removed since it was saved",
                         len(missing), len(stale))
                self._ann_fp = fp.add(missing, missing_vectors)
                self._save_ann(ann)
                return ann
        ann = self._new_ann()
        ann.add(ids, vectors)
        self._ann_fp = Fingerprint.of(ids, vectors)
        self._save_ann(ann)
        return ann

    def _new_ann(self) -> HnswIndex:
        return new_ann(self.dim, self.settings)

    def _save_ann(self, ann: HnswIndex) -> None:
        if ann.removed_fraction > 0.2:  # too many tombstones: rebuild compactly
            fresh = self._new_ann()
            fresh.add(self.exact.ids, self.exact.matrix)
            ann = fresh
            self.ann = fresh
        meta = {
            "dim": self.dim,
            "count": len(ann),
            "removed": ann.removed.tolist(),
            "fingerprint": str(self._ann_fp),
        }
        write_files(self.folder, INDEX_META, {INDEX_FILE: ann.save}, meta)

    # -- changes -----------------------------------------------------------------------------

    def add(self, ids: Ids, vectors: Matrix, *, save: bool = True) -> None:
        """Add items without a rebuild (the ANN graph is extended and, with `save`, saved).
        Ids already present (a refresh may have loaded them first) are not added to the graph
        twice. A process following another one's writes passes save=False: the writer saves."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        new = ~np.isin(ids, self.exact.ids)
        self.exact.add(ids, vectors)
        if self.ann is None and len(self.exact) > self.settings.exact_max_items:
            self.ann = self._open_ann(self.exact.ids, self.exact.matrix)
        elif self.ann is not None and new.any():
            try:
                self.ann.add(ids[new], vectors[new])
                self._ann_fp.add(ids[new], vectors[new])
            except ValueError:  # a rowid reused (catalogs from before rowids were kept unique)
                self.ann = self._new_ann()
                self.ann.add(self.exact.ids, self.exact.matrix)
                self._ann_fp = Fingerprint.of(self.exact.ids, self.exact.matrix)
            if save:
                self._save_ann(self.ann)

    def remove(self, ids: Ids, *, save: bool = True) -> None:
        present = self.exact.ids[self.exact.positions(np.asarray(ids, dtype=np.int64))]
        if self.ann is not None and len(present):
            self._ann_fp.remove(present, self.exact.get(present))
            self.ann.remove(present)
        self.exact.remove(present)
        if self.ann is not None and save:
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


def new_ann(dim: int, settings: Settings) -> HnswIndex:
    return HnswIndex(dim, settings.hnsw_m, settings.hnsw_ef_construction, settings.hnsw_ef_search)


def read_saved_ann(
    folder: Path, dim: int, ids: Ids, vectors: Matrix, settings: Settings
) -> tuple[HnswIndex, Fingerprint]:
    """The saved ANN and the fingerprint of its rows, once its files match their checksums and
    every row it holds is the catalog's: `ids` (ascending) and `vectors` are SQLite's. Rows of
    items deleted since the save (not in `ids`) enter the check with the vectors the file holds
    for them; the caller removes them. Raises IndexFileError saying what does not match (the
    caller rebuilds; `lookalike check` reports)."""
    with read_files(folder, INDEX_META) as meta:
        if INDEX_FILE not in meta["files"]:
            raise IndexFileError(f"{folder / INDEX_META} does not list {INDEX_FILE}")
        try:
            removed = np.asarray(meta.get("removed", []), dtype=np.int64)
            expected = Fingerprint.parse(str(meta["fingerprint"]))
            ann = HnswIndex.load(folder / INDEX_FILE, settings.hnsw_ef_search, removed)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise IndexFileError(f"{folder / INDEX_FILE}: unreadable ({exc})") from None
    if ann.dim != dim:
        raise IndexFileError(f"{folder / INDEX_FILE} holds {ann.dim}-d vectors, not {dim}-d")
    have = ann.ids()
    if len(have) != meta.get("count") or len(np.unique(have)) != len(have):
        raise IndexFileError(f"{folder / INDEX_FILE}: its rows do not match {INDEX_META}")
    common = np.intersect1d(have, ids, assume_unique=True)
    stale = np.setdiff1d(have, ids, assume_unique=True)
    pos = np.searchsorted(ids, common)
    held = Fingerprint.of(stale, ann.vectors(stale))
    if len(common) == len(ids):
        held.add(ids, vectors)  # the usual case: no copy of the matrix
    else:
        held.add(common, vectors[pos])
    if held != expected:
        raise IndexFileError(
            f"{folder / INDEX_FILE} was built from other vectors than the catalog holds"
        )
    return ann, expected
