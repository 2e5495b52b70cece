"""The embedded vector store: memory-mapped files in the catalog folder, shared by every process
that opens the catalog, kept in step with SQLite (the source of truth) through its change log.

Files (`<catalog>/vectors/`), all rebuilt from SQLite when missing, damaged or of another width:

* a **base segment** per generation, written once and never changed: for every item its id,
  float32 vector (for exact rescoring), int8 codes with the exact-bound terms of
  `index/scan.py` (scale, error, norm) and its filterable fields as columns (`index/columns.py`).
  Large catalogs (more than `Settings.exact_max_items` items) are split into inverted lists by a
  spherical k-means over the vectors (in two levels from 256 lists; see `index/segments.py`):
  the rows are stored list by list, so a search reads a few contiguous lists. When such a
  catalog's vectors are wider than `Settings.index_code_dim` (512; the default model's are
  2,624-d), the clustering also learns a projection onto their top principal directions and
  every row gets first-stage int8 codes of its projection (`segments.projected_codes`):
  a fifth of the bytes to hold and to read;
* a **tail**: rows added since (appended, each with its nearest list), and **dead** slots
  (deleted items, and the old rows of items whose vector or fields changed);
* `manifest.json`: generation, row counts and CRC-32 of every file, the change-log position the
  files reflect, the strings' vocabulary. Written atomically; a file's rows past its recorded
  count are never read. A process checks each file's checksum when it maps it.

Search (`EmbeddedStore.search`), per query:

* catalog of at most `exact_max_items` items, or a filter keeping at most `filter_exact_max`:
  **exact**, the two-stage scan of `index/scan.py` over every (kept) row — int8 scores with a
  guaranteed error bound, float32 rescoring of the rows that can still be in the top k;
* otherwise **ivf**: the same two-stage scan over the rows of the lists whose centres are
  nearest the query, until they hold `ivf_rows` rows (or `ivf_probe` lists). A filter's search
  reads the nearest lists holding kept items until they hold 1/sqrt(share kept) times as many
  kept items, then every further list that may still hold a better kept item than the k-th
  found: its centre score plus the largest gap seen between a read list's best kept score and
  its centre score (times `_GAP_MARGIN`) reaches it. Within the lists read the result is exact;
  recall is lost only to lists not read;
* a **projected** generation (above) ranks lists by the projected centres and rows by their
  projected codes, then rescores the best `Settings.index_rescore` (16) at full width, and more
  (up to `_RESCORE_WIDEN` times as many) while the first stage's error measured on those
  leaves more rows in reach (`scan.rescore_depth`), in its inverted-list and its filters'
  subset searches alike: the scores returned are full-width ones, but a row the projection
  ranks too low is missed (recall is measured, not guaranteed). `index_code_dim` 0 keeps
  full-width codes and exact subset searches.

Filters are evaluated on the columns before ranking. Writes take a file lock, append to the tail and
rewrite the manifest; when the tail and dead rows pass a tenth of the base, the writer compacts them
into a new generation. A compaction keeps the lists' centres and every row's list, splitting only
the lists grown past twice the mean list size (a k-means of their own rows), and clusters afresh
once the catalog has grown eightfold since the last clustering (`RECLUSTER_GROWTH`): its cost per
item stays nearly flat as the catalog grows. Readers never lock: they map the files the manifest
names, and a new manifest (checked before every search, through the change log's newest number)
makes them map again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from lookalike.config import Settings
from lookalike.index import mapped
from lookalike.index.base import Ids, Matrix, top_k
from lookalike.index.columns import FieldColumns, Vocabulary
from lookalike.index.mapped import DamagedFileError
from lookalike.index.scan import Int8Rows, QueryCodes, Scanner, rescore_depth
from lookalike.index.segments import (
    BUILD_BATCH,
    FOLDER,
    MANIFEST,
    Batch,
    Manifest,
    Rows,
    View,
    batches_from_source,
    build_base,
    build_base_from,
    folder_bytes,
    next_generation,
    open_view,
    sources_of_view,
    stamp,
    write_rows,
)
from lookalike.index.vector_store import (
    FIELDS,
    REMOVED,
    VECTOR,
    Scalars,
    SearchPlan,
    SearchResult,
    VectorSource,
    as_ids,
)

if TYPE_CHECKING:
    from lookalike.catalog.filters import Filters

log = logging.getLogger(__name__)

__all__ = [
    "FOLDER", "MANIFEST", "ChangeLog", "EmbeddedStore", "check_files", "copy_files",
    "keeps_centres",
]

#: Files of an older index format, replaced by these (deleted when the new files are built).
OBSOLETE = ("index.faiss", "index.json")
_COMPACT_SHARE = 0.1  # tail + dead rows past this share of the base: compact
_COMPACT_MIN = 4096  # ... and past this many
_RESCORE = 32  # float32 rows an inverted-list search rescores at most (k = 10; 3·k above)
# a projected generation rescores `Settings.index_rescore` rows per 10 results instead: its
# first-stage scores miss the part of each vector outside the projection, and every row not in
# the page cache costs a read from the disk (docs/guide/vector-store.md measures the choice)
# either rescores up to this many times as many rows while the first stage's error measured on
# the rows rescored leaves more in reach (`scan.rescore_depth`): at 100k synthetic 2,624-d
# items, where that error is 3.6 times the million's, 32 fixed rows held 0.983 of the top 10
_RESCORE_WIDEN = 4
_INT8_MIN_ROWS = 256  # fewer rows: score the float32 rows directly
_FILTER_CAP = 8  # a filtered search scores at most this many times its first kept rows
# scattered rows (a filter's) are gathered and scored this many bytes of codes at a time: each
# piece is scored while still in the caches, and no large array is allocated per search (the
# first touch of a fresh one costs a page fault every 4 KB: 10,000 rows at 2,624-d are 26 MB)
_GATHER_BYTES = 2 << 20
# the gap between a list's best kept score and its centre score grows with the lists seen (a
# maximum over more of them): an unread list's is taken as this times the largest seen
_GAP_MARGIN = 1.1
# a compaction clusters afresh once the catalog has grown this many times since the last
# clustering (until then it keeps the centres, splitting lists that outgrow the rest)
RECLUSTER_GROWTH = 8
_REBUILD_MIN = 1000  # more changes than items (and than this): build afresh from SQLite
# `current_vectors` reads everything from the source past this many changes not applied yet
_CURRENT_MAX_CHANGED = 100_000


def keeps_centres(manifest: Manifest, live: int, settings: Settings) -> bool:
    """Whether a compaction to `live` items keeps the current lists' centres (and the rows'
    lists), rather than clustering afresh (or going back to one list)."""
    return (manifest.lists > 1 and live > settings.exact_max_items
            and live <= RECLUSTER_GROWTH * max(manifest.clustered, 1))


# -- the store -------------------------------------------------------------------------------


@dataclass
class _Pending:
    """New rows to store, from a writer's hint or read from the source."""

    ids: Ids
    vectors: Matrix
    scalars: list[Scalars]


class EmbeddedStore:
    """The default `VectorStore`; see the module doc. Thread-safe."""

    def __init__(self, folder: Path, dim: int, source: VectorSource, settings: Settings) -> None:
        self.folder = Path(folder) / FOLDER
        self._dim = dim
        self.source = source
        self.settings = settings
        self.scanner = Scanner(settings.intra_op_threads)
        self._write_lock = threading.Lock()
        self._view: View | None = None
        # for `current_vectors`: (the files' change-log position, the newest change read, the
        # ids changed in between)
        self._logged: tuple[int, int, Ids] = (-1, -1, as_ids([]))

    @classmethod
    def open(
        cls, folder: Path, dim: int, source: VectorSource, settings: Settings
    ) -> EmbeddedStore:
        """Open the files (building them from the source when missing, damaged or behind)."""
        store = cls(folder, dim, source, settings)
        store.sync()
        view = store._view
        # files ahead of the database (a database restored from a copy): rebuild
        if view is not None and view.manifest.applied > source.change_seq():
            log.warning("vector files of %s are out of step with SQLite; rebuilding", folder)
            with store._locked():
                store._rebuild(source.change_seq())
        return store

    # -- files ---------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive writer: this thread of this process, and no other process."""
        with self._write_lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with (self.folder / "lock").open("a+b") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _read_manifest(self) -> Manifest | None:
        path = self.folder / MANIFEST
        try:
            manifest = Manifest.from_json(path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError) as exc:
            log.warning("vector files: %s unreadable (%s); rebuilding from SQLite", path, exc)
            return None
        if manifest.dim != self._dim:
            log.warning("vector files hold %d-d vectors, the catalog %d-d; rebuilding",
                        manifest.dim, self._dim)
            return None
        return manifest

    def _write_manifest(self, manifest: Manifest, *, durable: bool = False) -> None:
        """Replace the manifest atomically. Only a new generation is synced to disk: a lost
        append leaves an older manifest (its changes are applied again) or a checksum that
        fails (the files are rebuilt) — SQLite has everything."""
        path = self.folder / MANIFEST
        tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
        with tmp.open("w") as f:
            f.write(manifest.to_json())
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp.replace(path)

    def _current(self) -> View | None:
        """The view of the manifest on disk (mapped again only if it changed), or None when
        the files are missing or damaged."""
        manifest = self._read_manifest()
        if manifest is None:
            return None
        old = self._view
        if old is not None and old.manifest == manifest:
            return old
        try:
            return open_view(self.folder, manifest, old)
        except DamagedFileError as exc:
            log.warning("vector files damaged (%s); rebuilding from SQLite", exc)
            return None

    def sync(self) -> bool:
        """Catch up with the change log: map the files again if another process has already
        applied the news, else apply them here (under the file lock)."""
        seq = self.source.change_seq()
        view = self._view
        if view is not None and view.manifest.applied >= seq:
            return False
        current = self._current()
        if current is not None and current.manifest.applied >= seq:
            changed = current is not view
            self._view = current
            return changed
        with self._locked():
            self._apply(None, compact=False)
        return True

    def _apply(self, hint: _Pending | None, *, compact: bool) -> None:
        """Bring the files in step with the source's change log (caller holds the lock)."""
        view = self._current()
        seq = self.source.change_seq()
        if view is None or view.manifest.applied > seq:
            self._rebuild(seq)
            return
        manifest = view.manifest
        if manifest.applied >= seq:
            self._view = view
            return
        seqs, ids, kinds = self.source.changes(manifest.applied)
        if len(seqs) == 0 or int(seqs[0]) != manifest.applied + 1:
            # the log no longer holds every change since (trimmed by a newer generation's
            # builder, then the files were replaced by older ones): start afresh
            self._rebuild(seq)
            return
        if len(ids) > max(_REBUILD_MIN, view.live):  # mostly new: cheaper to build afresh
            self._rebuild(seq)
            return
        applied = int(seqs[-1])
        # what each id needs: removing, a new row (a new vector since it was last removed), or
        # new fields only; a fields change after a vector change is part of the new row
        need: dict[int, int] = {}
        for i, kind in zip(ids.tolist(), kinds.tolist(), strict=True):
            if kind != FIELDS or need.get(i) != VECTOR:
                need[i] = kind
        removed, new_vec, new_fields = (
            as_ids(sorted(i for i, k in need.items() if k == kind))
            for kind in (REMOVED, VECTOR, FIELDS)
        )
        pending = self._pending(view, new_vec, new_fields, hint)
        # a new vector's old row goes even when the new one cannot be read (a damaged row
        # SQLite's reader leaves out): the item is then not searchable, as in SQLite
        old_slots = np.unique(view.slots_of(np.concatenate([removed, new_vec, pending.ids])))
        dead = old_slots[old_slots >= 0]
        vocab = manifest.vocab.copy()
        batch = Batch(pending.ids, pending.vectors, FieldColumns.encode(pending.scalars, vocab))
        grows = view.manifest.tail_rows + len(batch.ids) + view.dead + len(dead)
        live = view.live + len(batch.ids) - len(dead)
        outgrown = manifest.lists <= 1 and live > self.settings.exact_max_items
        if compact and (outgrown or grows > max(_COMPACT_MIN, _COMPACT_SHARE * view.n_base)):
            self._compact(view, dead, batch, vocab, applied)
            return
        gen = manifest.generation
        tail = dict(manifest.tail)
        if len(batch.ids):
            tail = write_rows(self.folder, f"g{gen}.tail", batch, tail,
                              {"list": view.lists_of(batch.vectors)}, view.projection)
        dead_state = manifest.dead
        if len(dead):
            dead_state = mapped.append(self.folder / f"g{gen}.dead", dead, dead_state)
        new = replace(manifest, applied=applied, tail=tail, dead=dead_state, vocab=vocab)
        self._write_manifest(new)
        self._view = open_view(self.folder, new, view)

    def _pending(
        self, view: View, new_vec: Ids, new_fields: Ids, hint: _Pending | None
    ) -> _Pending:
        """Rows to append: new vectors (from the hint, else the source) with their fields, and
        items whose fields changed (their stored vector, their new fields)."""
        ids_out: list[Ids] = []
        vecs_out: list[Matrix] = []
        scalars_out: list[Scalars] = []
        if len(new_vec):
            known = np.zeros(len(new_vec), dtype=np.bool_)
            if hint is not None and len(hint.ids):
                order = np.argsort(hint.ids, kind="stable")
                pos = np.clip(np.searchsorted(hint.ids[order], new_vec), 0, len(order) - 1)
                known = hint.ids[order][pos] == new_vec
                at = order[pos[known]]
                ids_out.append(new_vec[known])
                vecs_out.append(hint.vectors[at])
                scalars_out.extend(hint.scalars[i] for i in at.tolist())
            rest, vectors = self.source.vectors_of(new_vec[~known])
            if len(rest):
                ids_out.append(rest)
                vecs_out.append(vectors)
                scalars_out.extend(self.source.scalars_of(rest))
        if len(new_fields):
            slots = view.slots_of(new_fields)
            present = slots >= 0
            if present.any():
                ids_out.append(new_fields[present])
                vecs_out.append(view.rows_at(slots[present]))
                scalars_out.extend(self.source.scalars_of(new_fields[present]))
        if not ids_out:
            return _Pending(as_ids([]), np.zeros((0, self._dim), dtype=np.float32), [])
        return _Pending(np.concatenate(ids_out), np.concatenate(vecs_out).astype(np.float32),
                        scalars_out)

    def _rebuild(self, seq: int) -> None:
        """Build a new generation from every vector in the source (`seq`: the change log's
        position read before the vectors, so nothing written meanwhile is missed)."""
        old = self._read_manifest()
        generation = (old.generation + 1) if old is not None else next_generation(self.folder)
        vocab = Vocabulary()
        log.info("building the vector files of %s from SQLite", self.folder.parent)
        states, lists, centroids = build_base(
            self.folder, generation, self._dim,
            batches_from_source(self.source, vocab, BUILD_BATCH), self.settings, None,
        )
        n = states["ids"].rows
        manifest = Manifest(dim=self._dim, generation=generation, applied=seq, lists=lists,
                            clustered=n if centroids is not None else 0, base=states,
                            vocab=vocab)
        self._switch(manifest)
        for name in OBSOLETE:
            (self.folder.parent / name).unlink(missing_ok=True)

    def _compact(
        self, view: View, dead: NDArray[np.int64], batch: Batch, vocab: Vocabulary,
        applied: int,
    ) -> None:
        """A new generation from the live rows of `view` (less `dead` slots) plus `batch`."""
        alive = np.ones(view.slots, dtype=np.bool_) if view.alive is None else view.alive.copy()
        alive[dead] = False
        trimmed = replace(view, alive=alive, dead=int(view.slots - alive.sum()))
        live = trimmed.live + len(batch.ids)
        m = view.manifest
        centroids = view.centroids if keeps_centres(m, live, self.settings) else None
        generation = m.generation + 1
        states, lists, used = build_base_from(
            self.folder, generation, self._dim, sources_of_view(self.folder, trimmed, batch),
            self.settings, centroids, view.projection,
        )
        clustered = m.clustered if used is not None and centroids is not None else (
            states["ids"].rows if used is not None else 0)
        manifest = Manifest(dim=self._dim, generation=generation, applied=applied, lists=lists,
                            clustered=clustered, base=states, vocab=vocab)
        self._switch(manifest)

    def _switch(self, manifest: Manifest) -> None:
        """Make `manifest` the files' truth and delete older generations' files (a process
        still reading them keeps its mapping: the data stays until it lets go)."""
        self._write_manifest(manifest, durable=True)
        stamp(self.folder, manifest)  # just written from data whose checksums it computed
        self._view = open_view(self.folder, manifest, None)
        keep = f"g{manifest.generation}."
        for path in self.folder.glob("g*.*"):
            if not path.name.startswith(keep):
                path.unlink(missing_ok=True)
        self.source.trim_changes(manifest.applied)

    # -- writes ----------------------------------------------------------------------------

    def upsert(
        self, ids: Ids, vectors: Matrix, fields: Sequence[Scalars], *, compact: bool = True
    ) -> None:
        """Catch up with the change log now; the rows given save reading them back from
        SQLite (rows the log does not name are not stored: SQLite comes first).
        `compact=False` (an ingest's chunks but the last): the rows go to the tail, never a
        new generation, however long the tail grows; the last chunk's upsert compacts once."""
        ids = as_ids(ids)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self._dim)
        if len(fields) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(fields)} field records")
        with self._locked():
            self._apply(_Pending(ids, vectors, list(fields)), compact=compact)

    def set_fields(self, ids: Ids, fields: Sequence[Scalars]) -> None:
        """Fields are read from the source's change log (the hint is not needed)."""
        with self._locked():
            self._apply(None, compact=True)

    def remove(self, ids: Ids) -> None:
        with self._locked():
            self._apply(None, compact=True)

    def compact(self) -> None:
        """Fold the tail and dead rows into a new generation now."""
        with self._locked():
            self._apply(None, compact=True)
            view = self._view
            if view is not None and (view.manifest.tail_rows or view.dead):
                self._compact(view, np.zeros(0, dtype=np.int64),
                              Batch(as_ids([]), np.zeros((0, self._dim), np.float32),
                                     FieldColumns.empty()),
                              view.manifest.vocab.copy(), view.manifest.applied)

    def close(self) -> None:
        self._view = None

    # -- reads ---------------------------------------------------------------------------

    def _get_view(self) -> View:
        view = self._view
        if view is None:
            self.sync()
            view = self._view
        if view is None:
            raise RuntimeError("vector store is closed")
        return view

    def __len__(self) -> int:
        return self._get_view().live

    def ids(self) -> Ids:
        return self._get_view().ids()

    def vectors(self, ids: Ids) -> Matrix:
        view = self._get_view()
        slots = view.slots_of(as_ids(ids))
        return view.rows_at(slots[slots >= 0])

    def current_vectors(self, ids: Ids) -> tuple[Ids, Matrix]:
        """(ids found, their vectors) as the source holds them now, like its `vectors_of`
        (ascending; ids deleted or missing left out): ids with a change logged since the
        files' position from the source, the others as the files hold them (their row, or
        none). The repost check reads its candidates here (a gather from memory instead of a
        query for blobs)."""
        ids = np.unique(as_ids(ids))
        view = self._view
        changed = self._changed_since(view.manifest.applied) if view is not None else None
        if view is None or changed is None or not len(ids):
            return self.source.vectors_of(ids)
        fresh = np.isin(ids, changed)
        slots = view.slots_of(ids)
        here = (slots >= 0) & ~fresh
        order = np.argsort(slots[here])  # rows_at reads a run of slots as one slice
        got_ids, got = ids[here][order], view.rows_at(slots[here][order])
        if fresh.any():
            rest, rest_vectors = self.source.vectors_of(ids[fresh])
            got_ids = np.concatenate([got_ids, rest])
            got = np.concatenate([got, rest_vectors])
        by_id = np.argsort(got_ids, kind="stable")
        return got_ids[by_id], np.asarray(got[by_id], dtype=np.float32)

    def _changed_since(self, applied: int) -> Ids | None:
        """The ids of the changes logged after `applied` (read incrementally: only the
        changes since the last call), or None when the log no longer holds all of them (or
        holds too many to be worth it)."""
        at, seen, changed = self._logged
        if at != applied:
            seen, changed = applied, as_ids([])
        if self.source.change_seq() > seen:
            seqs, ids, _ = self.source.changes(seen)
            if not len(seqs) or int(seqs[0]) != seen + 1:  # trimmed: the rows may be stale
                self._logged = (-1, -1, as_ids([]))
                return None
            seen, changed = int(seqs[-1]), np.union1d(changed, ids)
        if len(changed) > _CURRENT_MAX_CHANGED:
            return None
        self._logged = (applied, seen, changed)
        return changed

    def describe(self) -> dict[str, object]:
        view = self._get_view()
        m = view.manifest
        return {
            "backend": "embedded", "method": "ivf" if m.lists > 1 else "exact",
            "lists": m.lists, "code_dim": m.code_dim or m.dim, "items": view.live,
            "tail": m.tail_rows, "dead": view.dead,
            "generation": m.generation, "bytes": folder_bytes(self.folder),
        }

    def plan(
        self, filters: Filters | None = None, allowed: Ids | None = None
    ) -> SearchPlan:
        view = self._get_view()
        selection = self._selection(view, filters, allowed, None)
        return self._plan(view, selection)

    def _plan(self, view: View, selection: NDArray[np.int64] | None) -> SearchPlan:
        if selection is None:
            return SearchPlan("exact" if view.manifest.lists <= 1 else "ivf", view.live)
        if view.manifest.lists <= 1 or len(selection) <= self.settings.filter_exact_max:
            return SearchPlan("exact-subset", len(selection))
        return SearchPlan("ivf", len(selection))

    def _selection(
        self, view: View, filters: Filters | None, allowed: Ids | None, exclude: Ids | None
    ) -> NDArray[np.int64] | None:
        """Slots the search may return (ascending), or None for every live slot."""
        has_filter = _filtering(view, filters)
        if not has_filter and allowed is None and (exclude is None or len(exclude) == 0):
            return None
        if allowed is not None and not has_filter:
            slots = np.unique(view.slots_of(as_ids(allowed)))
            slots = slots[slots >= 0]
        else:
            if has_filter and filters is not None:
                vocab = view.manifest.vocab
                slots = np.concatenate([view.base.columns.select(filters, vocab),
                                        view.tail.columns.select(filters, vocab) + view.n_base])
            else:
                slots = np.arange(view.slots, dtype=np.int64)
            if view.alive is not None:
                slots = slots[view.alive[slots]]
            if allowed is not None:  # the allowed slots the filter keeps
                found = view.slots_of(as_ids(allowed))
                slots = np.intersect1d(slots, found[found >= 0], assume_unique=True)
        if exclude is not None and len(exclude):
            gone = view.slots_of(as_ids(exclude))
            slots = slots[~np.isin(slots, gone[gone >= 0])]
        return slots

    def search(
        self,
        queries: Matrix,
        k: int,
        filters: Filters | None = None,
        allowed: Ids | None = None,
        exclude: Ids | None = None,
    ) -> SearchResult:
        view = self._get_view()
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self._dim)
        m = len(queries)
        k = max(0, int(k))
        only_exclude = not _filtering(view, filters) and allowed is None
        if only_exclude and exclude is not None and 0 < len(exclude) <= 256:
            # a few ids left out ("more like this"): ask for more, drop them
            gone = as_ids(exclude)
            wide = self.search(queries, k + len(gone))
            keep = ~np.isin(wide.ids, gone)
            scores = np.full((m, k), -np.inf, dtype=np.float32)
            ids = np.full((m, k), -1, dtype=np.int64)
            for j in range(m):
                row_s, row_i = wide.scores[j][keep[j]][:k], wide.ids[j][keep[j]][:k]
                scores[j, : len(row_s)], ids[j, : len(row_i)] = row_s, row_i
            return SearchResult(scores, ids, wide.plan)
        selection = self._selection(view, filters, allowed, exclude)
        plan = self._plan(view, selection)
        out_s = np.full((m, k), -np.inf, dtype=np.float32)
        out_slots = np.full((m, k), -1, dtype=np.int64)
        if k == 0 or m == 0 or plan.candidates == 0:
            return SearchResult(out_s, out_slots, plan)
        # a projected generation ranks lists and rows by the queries' projection first, then
        # rescores its best rows at full width, at least `index_rescore` per 10 results (its
        # codes' bound is too loose to pick them: see `projected_codes`)
        low = None if view.projection is None else self.scanner(queries, view.projection)
        least = self.settings.index_rescore
        rescore = max(_RESCORE, 3 * k) if low is None else max(least, -(-least * k // 10))
        if plan.method == "ivf":
            centre_scores = self.scanner(queries if low is None else low, view.code_centroids)
            if selection is None:
                probe = self.settings.ivf_probe or math.ceil(
                    self.settings.ivf_rows * view.manifest.lists / max(1, view.live))
                for j in range(m):
                    slots = _probed_slots(view, centre_scores[j], probe, view.alive)
                    s, i = self._rank(view, queries[j : j + 1], slots, k, rescore,
                                      None if low is None else low[j : j + 1])
                    out_s[j], out_slots[j] = s[0], i[0]
            else:
                mask = np.zeros(view.slots, dtype=np.bool_)
                mask[selection] = True
                counts = _kept_per_list(view, selection)
                share = len(selection) / max(1, view.live)
                rows = (self.settings.ivf_probe * view.live / view.manifest.lists
                        if self.settings.ivf_probe else self.settings.ivf_rows)
                target = math.ceil(rows / math.sqrt(share))
                cap = _FILTER_CAP * target
                for j in range(m):
                    s, i = self._rank_filtered(view, queries[j], centre_scores[j], mask,
                                               counts, target, cap, k, rescore,
                                               None if low is None else low[j])
                    out_s[j], out_slots[j] = s, i
        else:
            if selection is None:
                slots = np.arange(view.slots, dtype=np.int64)
                if view.alive is not None:
                    slots = slots[view.alive]
            else:
                slots = selection
            out_s, out_slots = self._rank(view, queries, slots, k,
                                          None if low is None else rescore, low)
        ids = np.full((m, k), -1, dtype=np.int64)
        found = out_slots >= 0
        ids[found] = _ids_at(view, out_slots[found])
        out_s[~found] = -np.inf
        return SearchResult(out_s, ids, plan)

    def _rank(
        self, view: View, queries: Matrix, slots: NDArray[np.int64], k: int,
        rescore: int | None = None, low: Matrix | None = None,
    ) -> tuple[Matrix, NDArray[np.int64]]:
        """Exact top k of `queries` among `slots`: (scores, slots), -1 where fewer. With
        `rescore`, only the best that many rows in int8 and those still in reach are
        rescored in float32 (`_rescored`), not every row the bound lets through. `low`:
        the queries projected (a projected generation): the first stage scores the rows'
        projected codes."""
        m, n = len(queries), len(slots)
        out_s = np.full((m, k), -np.inf, dtype=np.float32)
        out_i = np.full((m, k), -1, dtype=np.int64)
        if n == 0:
            return out_s, out_i
        if n < _INT8_MIN_ROWS or k >= n:
            scores, idx = top_k(self.scanner(queries, view.rows_at(slots)), k)
            ok = idx >= 0
            out_s[ok], out_i[ok] = scores[ok], slots[idx[ok]]
            return out_s, out_i
        q = _query_codes(queries, low)
        dots, scale, error, norm = self._int8_dots(view, slots, q, low is not None)
        for j in range(m):
            pool = q.candidates(j, dots[:, j], scale, error, norm, k)
            s, i = self._rescored(view, queries[j], slots[pool],
                                  q.approx(j, dots[pool, j], scale[pool]), k, rescore)
            out_s[j], out_i[j] = s, i
        return out_s, out_i

    def _rescored(
        self, view: View, query: NDArray[np.float32], slots: NDArray[np.int64],
        approx: NDArray[np.float32], k: int, rescore: int | None,
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The top k of `slots` (the rows the first stage's bound lets through, `approx` their
        first-stage scores) by their float32 scores: (scores, slots), -inf / -1 where fewer.
        With `rescore`, only the best that many by first-stage score are read and scored, and
        then as many more as `scan.rescore_depth` finds still in reach (at most
        `_RESCORE_WIDEN` times as many in all)."""
        out_s = np.full(k, -np.inf, dtype=np.float32)
        out_i = np.full(k, -1, dtype=np.int64)
        if rescore is None or len(slots) <= rescore:
            order = np.arange(len(slots))
            exact = self._exact(view, query, slots)
        else:
            cap = min(len(slots), _RESCORE_WIDEN * rescore)
            best = np.argpartition(-approx, cap - 1)[:cap] if cap < len(slots) else \
                np.arange(len(slots))
            order = best[np.argsort(-approx[best], kind="stable")]
            exact = self._exact(view, query, slots[order[:rescore]])
            depth = rescore_depth(approx[order], exact, k, cap)
            if depth > rescore:
                exact = np.concatenate([exact, self._exact(view, query,
                                                           slots[order[rescore:depth]])])
            order = order[:depth]
        scores, idx = top_k(exact[None], k)
        ok = idx[0] >= 0
        out_s[ok], out_i[ok] = scores[0][ok], slots[order[idx[0][ok]]]
        return out_s, out_i

    @staticmethod
    def _exact(view: View, query: NDArray[np.float32], slots: NDArray[np.int64]
               ) -> NDArray[np.float32]:
        """Float32 scores of `slots` (any order), their rows read in ascending order (runs of
        neighbours in one read)."""
        order = np.argsort(slots, kind="stable")
        out = np.empty(len(slots), dtype=np.float32)
        out[order] = np.einsum("d,nd->n", query, view.rows_at(slots[order]))
        return out

    def _int8_dots(
        self, view: View, slots: NDArray[np.int64], q: QueryCodes, projected: bool = False
    ) -> tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """int8 dot products of `slots` (ascending) with the queries, and their bound terms
        (of the rows' projected codes when `projected`): the codes gathered and scored
        `_GATHER_BYTES` at a time (at 2,624-d a 1 % filter's 10,000 rows: 7 ms of CPU, not 11).
        Gathered even when the slots are whole lists lying in one piece of the mapped file: one
        product of 3,000 rows costs less than eight of 380 in place, copy included (0.27 vs
        0.46 ms at 512-d; 1.3 vs 2.3 ms at 2,624-d)."""
        width = view.manifest.code_dim if projected else view.manifest.dim
        step = max(1, _GATHER_BYTES // max(1, width))
        if len(slots) <= step:
            codes, scale, error, norm = _gather_int8(view, slots, projected)
            return self.scanner.int8_dots(codes, q), scale, error, norm
        parts = []
        for a in range(0, len(slots), step):
            codes, scale, error, norm = _gather_int8(view, slots[a : a + step], projected)
            parts.append((self.scanner.int8_dots(codes, q), scale, error, norm))
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
            np.concatenate([p[3] for p in parts]),
        )

    def _rank_filtered(
        self, view: View, query: NDArray[np.float32], centre_scores: Matrix,
        mask: NDArray[np.bool_], counts: NDArray[np.int64], target: int, cap: int, k: int,
        rescore: int, low: NDArray[np.float32] | None = None,
    ) -> tuple[Matrix, NDArray[np.int64]]:
        """Exact top k among the kept (`mask`) rows of the lists a filtered search reads: the
        nearest lists holding kept rows until they hold `target`, then, while some unread list
        may hold a better row than the k-th best found, those lists (at most `cap` kept rows
        in all). A list may hold a better row when its centre score plus `_GAP_MARGIN` times
        the largest gap seen so far between a read list's best kept score and its centre
        score reaches the k-th best score: a filter's nearest rows often lie far from the
        query, where the centres rank lists poorly (far away, a list's spread decides its
        best score more than its centre does), and the gap grows with the lists read. `low`:
        the query projected (a projected generation), as in `_rank`."""
        order = np.argsort(-centre_scores)
        order = order[counts[order] > 0]
        cum = np.cumsum(counts[order])
        q = _query_codes(query[None], None if low is None else low[None])
        parts: list[tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float32],
                          NDArray[np.float32], NDArray[np.float32]]] = []
        best: list[NDArray[np.float32]] = []
        gap = -np.inf
        done = 0
        upto = min(len(order), int(np.searchsorted(cum, target)) + 1)
        while upto > done:
            lists = order[done:upto]
            slots, owner = _list_slots(view, lists, mask)
            if len(slots):
                dots2, scale, error, norm = self._int8_dots(view, slots, q, low is not None)
                dots = dots2[:, 0]
                parts.append((slots, dots, scale, error, norm))
                approx = q.approx(0, dots, scale)
                top = np.full(len(lists), -np.inf, dtype=np.float32)
                np.maximum.at(top, owner, approx)
                held = np.isfinite(top)
                if held.any():
                    seen = float((top[held] - centre_scores[lists[held]]).max())
                    gap = max(gap, _GAP_MARGIN * seen)
                best.append(approx if len(approx) <= k else np.partition(approx, -k)[-k:])
            done = upto
            found = np.concatenate(best) if best else np.zeros(0, dtype=np.float32)
            if done >= len(order) or cum[done - 1] >= cap:
                break
            kth = float(np.partition(found, -k)[-k]) if len(found) >= k else -np.inf
            # the unread lists (in centre order) that may hold a row better than the k-th
            may = int(np.searchsorted(-centre_scores[order[done:]], gap - kth, side="right"))
            if len(found) < k:
                may = max(may, 1)
            upto = done + may
            if upto > done:  # within the cap
                upto = min(upto, max(done + 1, int(np.searchsorted(cum, cap)) + 1))
        out_s = np.full(k, -np.inf, dtype=np.float32)
        out_i = np.full(k, -1, dtype=np.int64)
        if not parts:
            return out_s, out_i
        slots, dots, scale, error, norm = (np.concatenate([p[f] for p in parts])
                                           for f in range(5))
        if len(slots) <= k:
            keep = np.arange(len(slots))
        else:
            keep = q.candidates(0, dots, scale, error, norm, k)
        return self._rescored(view, query, slots[keep], q.approx(0, dots[keep], scale[keep]), k,
                              rescore)


class ChangeLog(Protocol):
    """The part of a `VectorSource` `check_files` reads."""

    def change_seq(self) -> int: ...

    def changes(self, since: int) -> tuple[Ids, Ids, Ids]: ...


def check_files(
    catalog: Path, dim: int, source: ChangeLog, ids: Ids, vectors: Matrix,
    skip: Ids | None = None,
) -> list[str]:
    """What is wrong with the embedded store's files in the `catalog` folder, given the
    vectors SQLite holds (`ids` ascending, their `vectors`; `skip`: ids whose SQLite rows are
    damaged, left out of the comparison). Reads only: every file's checksum is checked (an
    open trusts base files whose size, time and inode are unchanged since their last check),
    then every stored vector is compared with SQLite's, except those of items whose change is
    still in the change log (an open applies it). Empty when nothing is wrong."""
    folder = Path(catalog) / FOLDER
    path = folder / MANIFEST
    ids = as_ids(ids)
    if not path.is_file():
        return [f"{path}: missing (rebuilt from SQLite at the next open)"] if len(ids) else []
    try:
        manifest = Manifest.from_json(path.read_text())
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return [f"{path}: unreadable ({exc})"]
    if manifest.dim != dim:
        return [f"{path}: holds {manifest.dim}-d vectors, the catalog {dim}-d"]
    try:
        view = open_view(folder, manifest, None, verify=True)
    except DamagedFileError as exc:
        return [str(exc)]
    seq = source.change_seq()
    if manifest.applied > seq:
        return [f"{path}: reflects change {manifest.applied} of the database's log, which "
                f"ends at {seq} (files of another copy of the catalog)"]
    seqs, changed, _ = source.changes(manifest.applied)
    if seq > manifest.applied and (len(seqs) == 0 or int(seqs[0]) != manifest.applied + 1):
        return [f"{path}: the database's change log no longer holds every change since these "
                "files were written"]
    ignore = np.union1d(changed, as_ids(skip if skip is not None else []))
    held = view.ids()
    problems = []
    extra = np.setdiff1d(np.setdiff1d(held, ids), ignore)
    missing = np.setdiff1d(np.setdiff1d(ids, held), ignore)
    if len(extra):
        problems.append(f"{folder}: {len(extra)} item(s) SQLite does not hold (rowids "
                        f"{_some(extra)})")
    if len(missing):
        problems.append(f"{folder}: {len(missing)} item(s) of SQLite missing (rowids "
                        f"{_some(missing)})")
    both = np.setdiff1d(np.intersect1d(held, ids), ignore)
    differ: list[Ids] = []
    for a in range(0, len(both), BUILD_BATCH):
        part = both[a : a + BUILD_BATCH]
        stored = view.rows_at(view.slots_of(part))
        theirs = np.asarray(vectors)[np.searchsorted(ids, part)]
        differ.append(part[(stored != theirs).any(axis=1)])
    wrong = np.concatenate(differ) if differ else as_ids([])
    if len(wrong):
        problems.append(f"{folder}: {len(wrong)} vector(s) built from other vectors than "
                        f"SQLite holds (rowids {_some(wrong)})")
    return problems


def copy_files(catalog: Path, dest: Path) -> list[Path]:
    """Copy the embedded store's current files from the `catalog` folder into `dest/vectors`
    (the manifest last), holding the writers' lock so no write lands midway; returns the
    copies (none when the catalog has no readable manifest). A copy is checked when opened."""
    folder = Path(catalog) / FOLDER
    if not (folder / MANIFEST).is_file():
        return []
    out = Path(dest) / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    with (folder / "lock").open("a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            try:
                manifest = Manifest.from_json((folder / MANIFEST).read_text())
            except (ValueError, KeyError, TypeError, OSError):
                return []
            copied = []
            for path in sorted(folder.glob(f"g{manifest.generation}.*")):
                shutil.copyfile(path, out / path.name)
                copied.append(out / path.name)
            shutil.copyfile(folder / MANIFEST, out / MANIFEST)
            copied.append(out / MANIFEST)
            return copied
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _some(ids: Ids, n: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:n])
    return shown + (", ..." if len(ids) > n else "")


def _filtering(view: View, filters: Filters | None) -> bool:
    """Whether `filters` leaves any item out: a filter, or (by default) sold items while the
    store has ever held one."""
    if filters is None:
        return False
    if not filters.is_empty():
        return True
    return filters.hides_sold() and len(view.manifest.vocab.lookup("state", ["sold"])) > 0


def _ids_at(view: View, slots: NDArray[np.int64]) -> Ids:
    in_base = slots < view.n_base
    out = np.empty(len(slots), dtype=np.int64)
    out[in_base] = view.base.ids[slots[in_base]]
    out[~in_base] = view.tail.ids[slots[~in_base] - view.n_base]
    return out


def _codes(rows: Rows, projected: bool) -> Int8Rows:
    """The rows' first-stage codes: their projected ones, or their full-width ones."""
    codes = rows.projected if projected else rows.int8
    if codes is None:
        raise ValueError(f"these rows have no {'projected' if projected else 'full-width'} codes")
    return codes


def _query_codes(queries: Matrix, low: Matrix | None) -> QueryCodes:
    """The queries' int8 codes for a first stage: of `queries`, or of `low` (the queries
    projected, for a projected generation's codes)."""
    return QueryCodes.of(queries) if low is None else QueryCodes.projected(queries, low)


def _gather_int8(
    view: View, slots: NDArray[np.int64], projected: bool = False
) -> tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """The int8 codes (projected ones when `projected`) and bound terms of `slots`
    (ascending), copying contiguous runs whole."""
    n_base = view.n_base
    split = int(np.searchsorted(slots, n_base))
    parts: list[tuple[np.ndarray, ...]] = []
    for rows, at in ((_codes(view.base, projected), slots[:split]),
                     (_codes(view.tail, projected), slots[split:] - n_base)):
        if len(at) == 0:
            continue
        breaks = np.flatnonzero(np.diff(at) != 1) + 1
        if len(breaks) * 16 < len(at):  # long runs (whole lists): copy slices, not rows
            for run in np.split(at, breaks):
                a, b = int(run[0]), int(run[-1]) + 1
                parts.append((rows.codes[a:b], rows.scale[a:b], rows.error[a:b],
                              rows.norm[a:b]))
        else:
            parts.append((rows.codes[at], rows.scale[at], rows.error[at], rows.norm[at]))
    if len(parts) == 1:
        codes, scale, error, norm = parts[0]
    else:
        codes, scale, error, norm = (np.concatenate([p[i] for p in parts]) for i in range(4))
    return codes, scale, error, norm


def _kept_per_list(view: View, selection: NDArray[np.int64]) -> NDArray[np.int64]:
    """How many of the `selection` slots (ascending) each list holds."""
    split = int(np.searchsorted(selection, view.n_base))
    counts = np.diff(np.searchsorted(selection[:split], view.lists)).astype(np.int64)
    tail = selection[split:] - view.n_base
    if len(tail) and view.tail.list is not None:
        counts += np.bincount(view.tail.list[tail], minlength=len(counts))[: len(counts)]
    return counts


def _probed_slots(
    view: View, centre_scores: Matrix, probe: int, mask: NDArray[np.bool_] | None,
) -> NDArray[np.int64]:
    """Slots (base and tail, those in `mask` only) of the `probe` lists nearest the query (by
    the query's `centre_scores`); a filtered search picks its lists in `_rank_filtered`."""
    lists = view.manifest.lists
    if probe >= lists:
        nearest = np.arange(lists)
    else:
        nearest = np.argpartition(-centre_scores, probe - 1)[:probe]
    nearest.sort()
    starts, ends = view.lists[nearest], view.lists[nearest + 1]
    runs = [np.arange(a, b, dtype=np.int64) for a, b in zip(starts.tolist(), ends.tolist(),
                                                               strict=True) if b > a]
    t_starts, t_ends = view.tail_lists[nearest], view.tail_lists[nearest + 1]
    tail = [view.tail_by_list[a:b] for a, b in zip(t_starts.tolist(), t_ends.tolist(),
                                                   strict=True) if b > a]
    if tail:
        runs.append(np.sort(np.concatenate(tail)))
    slots = np.concatenate(runs) if runs else np.zeros(0, dtype=np.int64)
    if mask is not None:
        slots = slots[mask[slots]]
    return slots


def _ranges(starts: NDArray[np.int64], ends: NDArray[np.int64]) -> NDArray[np.int64]:
    """[starts[0], ends[0]) then [starts[1], ends[1]) ... in one array."""
    sizes = ends - starts
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    return np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(total)


def _list_slots(
    view: View, lists: NDArray[np.int64], mask: NDArray[np.bool_]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The slots in `mask` of `lists` (base slots ascending, then tail slots ascending) and,
    for each, the position in `lists` of its list."""
    pos = np.argsort(lists, kind="stable")
    ordered = lists[pos]
    starts, ends = view.lists[ordered], view.lists[ordered + 1]
    base = _ranges(starts, ends)
    base_owner = np.repeat(pos, ends - starts)
    t_starts, t_ends = view.tail_lists[ordered], view.tail_lists[ordered + 1]
    tail = view.tail_by_list[_ranges(t_starts, t_ends)]
    tail_owner = np.repeat(pos, t_ends - t_starts)
    by_slot = np.argsort(tail, kind="stable")
    slots = np.concatenate([base, tail[by_slot]])
    owner = np.concatenate([base_owner, tail_owner[by_slot]])
    kept = mask[slots]
    return slots[kept], owner[kept]
