"""The embedded vector store's files (see `lookalike.index.embedded`): the manifest, the rows of
a generation mapped into memory, and building a generation's base segment.

`<catalog>/vectors/`: per generation g, `g{g}.base.<column>` (written once: every item's id,
float32 vector, int8 codes and bound terms, filterable fields; large catalogs stored list by
list, with the lists' offsets and centres and the ids sorted; wide ones with a projection and
each row's projected codes, `PROJECTED_FILES`, in place of the full-width codes: `row_files`),
`g{g}.tail.<column>` (rows
appended since) and `g{g}.dead` (slots no longer live); `manifest.json` names the generation
and every file's valid rows and CRC-32; `checked.json` the base files' size, modification time
and inode when their checksums last matched.

Inverted lists (`_cluster`, `_split_grown`): a fresh clustering into L lists is a spherical
k-means on a sample (64 rows a list), each row then assigned to its nearest centre; from
TWO_LEVEL_FROM (256) lists in two levels — about sqrt(L) groups so, then each group split
into lists in proportion to its rows by a k-means of its own rows, a row going to the nearest
list of its 3 nearest groups (GROUPS_TRIED) — so assigning a row costs about 4·sqrt(L) dot
products, not L (only the nearest group's: recall@10 at 1M items fell to 0.954, 0.992 so). A
compaction that keeps the centres (the rows' lists stored with them) splits each list holding
more than SPLIT_AT (2) times the mean list size a clustering would make now (`lists_for`) the
same way; every other row keeps its list and that list its centre. The manifest records the
lists' count and `clustered` (the items at the last fresh clustering): the format is the same
whether the lists were split or not. A tail row goes to its nearest list; from TWO_LEVEL_FROM
lists the nearest of those of its GROUPS_TRIED nearest groups of centres (`CentreGroups`: the
centres grouped by a k-means of their own, once a generation), about 4·sqrt(L) dot products a
row instead of L (5.2 million multiply-adds a row at 1M items, 2,624-d, compared with every
centre).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import faiss
import numpy as np
from numpy.typing import NDArray

from lookalike.config import Settings
from lookalike.index import mapped
from lookalike.index.base import Ids, Matrix
from lookalike.index.columns import ROW_COLUMNS, FieldColumns, Vocabulary, flat_positions
from lookalike.index.mapped import DamagedFileError, FileState
from lookalike.index.scan import Int8Rows
from lookalike.index.vector_store import VectorSource, as_ids
from lookalike.processes import is_alive

log = logging.getLogger(__name__)

__all__ = [
    "BUILD_BATCH", "FOLDER", "MANIFEST", "Batch", "CentreGroups", "Manifest", "Rows", "Source",
    "View",
    "auto_lists", "batches_from_source", "build_base", "build_base_from", "folder_bytes",
    "learn_projection", "lists_for", "nearest_lists", "next_generation", "open_view",
    "projected_codes", "projection_sample", "sources_of_view", "stamp", "write_rows",
]

FOLDER = "vectors"
MANIFEST = "manifest.json"
STAMP = "checked.json"  # the base files' signatures when their checksums last matched
# 2: the items' state column; 3: a projected generation (`PROJECTED_FILES`) holds no
# full-width int8 codes (its searches never read them: 2.6 KB an item at 2,624-d). Generations
# without a projection are still written as 2; both are read.
FORMAT = 3
_READS = (2, 3)

# per-row files: name -> (dtype, width: 0 = one value, "dim" = the vector width)
ROW_FILES: dict[str, tuple[type[np.generic], int | str]] = {
    "ids": (np.int64, 0),
    "vectors": (np.float32, "dim"),
    "codes": (np.uint8, "dim"),
    "scale": (np.float32, 0),
    "error": (np.float32, 0),
    "norm": (np.float32, 0),
    **{name: (dtype, 0) for name, dtype in ROW_COLUMNS.items()},
}
TAIL_FILES: dict[str, tuple[type[np.generic], int | str]] = {
    **ROW_FILES, "list": (np.int32, 0)
}
INT8_FILES = ("codes", "scale", "error", "norm")  # full-width codes and their bound terms
FLAT_FILES: dict[str, tuple[type[np.generic], int | str]] = {"size_codes": (np.int32, 0)}
# base-only: list offsets, list centres, ids sorted and the slot of each
BASE_EXTRA: dict[str, tuple[type[np.generic], int | str]] = {
    "lists": (np.int64, 0),
    "centroids": (np.float32, "dim"),
    "sorted_ids": (np.int64, 0),
    "sorted_slots": (np.int64, 0),
}
# a clustered catalog wider than `Settings.index_code_dim`: its first-stage codes are of the
# vectors projected onto the catalog's principal directions (`PROJECTION`, base-only, one row a
# direction), with the bound terms of `projected_codes`; rows written before the lists (a
# build's first pass) have none. Absent when the codes are the full-width ones.
PROJECTION = "projection"
PROJECTED_FILES: dict[str, tuple[type[np.generic], int | str]] = {
    "pcodes": (np.uint8, "code_dim"),
    "pscale": (np.float32, 0),
    "perror": (np.float32, 0),
    "pnorm": (np.float32, 0),
}
PROJECTION_SAMPLE = 20_000  # rows the principal directions are learnt from
BUILD_BATCH = 50_000
READ_ROWS_FROM = 64 << 20  # float32 files larger than this: rows read, not mapped
KMEANS_SAMPLE = 64  # training points per list
KMEANS_ITER = 12
# a clustering into this many lists or more is made in two levels (`_cluster`)
TWO_LEVEL_FROM = 256
GROUPS_TRIED = 3  # ... each row then going to the nearest list of its 3 nearest groups
# a compaction keeping the centres splits each list holding more than this many times the
# mean list size (0: never; `_split_grown`)
SPLIT_AT = 2.0
NEAREST_BATCH = 65536  # rows `nearest_lists` scores at a time
ASSIGN_BYTES = 64 << 20  # float32 rows a build reads at a time to assign them to lists
WRITE_BYTES = 64 << 20  # rows a build copies at a time (about: their vectors and codes)


def row_files(projected: bool, tail: bool = False) -> dict[str, tuple[type[np.generic], int | str]]:
    """The per-row files of a generation's base (or `tail`): a projected one's first-stage
    codes are its projected ones, in place of the full-width ones."""
    files = dict(TAIL_FILES if tail else ROW_FILES)
    if projected:
        for name in INT8_FILES:
            del files[name]
        files.update(PROJECTED_FILES)
    return files


def auto_lists(n: int) -> int:
    """Inverted lists for n items: about 2·sqrt(n) (≈ 500 items a list at 1M)."""
    return max(8, round(2 * math.sqrt(n)))


# -- the manifest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    dim: int
    generation: int = 0
    applied: int = 0  # the change log's sequence number these files reflect
    lists: int = 1
    clustered: int = 0  # items when the lists were last clustered
    base: dict[str, FileState] = field(default_factory=dict)
    tail: dict[str, FileState] = field(default_factory=dict)
    dead: FileState = field(default_factory=FileState)
    vocab: Vocabulary = field(default_factory=Vocabulary)

    @property
    def base_rows(self) -> int:
        return self.base["ids"].rows if "ids" in self.base else 0

    @property
    def tail_rows(self) -> int:
        return self.tail["ids"].rows if "ids" in self.tail else 0

    @property
    def code_dim(self) -> int:
        """Width of the first-stage codes of a projected generation; 0 when they are the
        full-width int8 codes."""
        return self.base[PROJECTION].rows if PROJECTION in self.base else 0

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT if self.code_dim else 2, "dim": self.dim,
            "generation": self.generation,
            "applied": self.applied, "lists": self.lists, "clustered": self.clustered,
            "base": {k: v.to_json() for k, v in self.base.items()},
            "tail": {k: v.to_json() for k, v in self.tail.items()},
            "dead": self.dead.to_json(), "vocab": self.vocab.values,
        })

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("format") not in _READS:
            raise ValueError(f"format {data.get('format')!r}, expected one of {_READS}")
        vocab = data["vocab"]
        if not (isinstance(vocab, dict)
                and all(isinstance(v, list) and all(isinstance(s, str) for s in v)
                        for v in vocab.values())):
            raise ValueError("bad vocabulary")
        return cls(
            dim=int(data["dim"]), generation=int(data["generation"]),
            applied=int(data["applied"]), lists=int(data["lists"]),
            clustered=int(data["clustered"]),
            base={k: FileState.from_json(v) for k, v in data["base"].items()},
            tail={k: FileState.from_json(v) for k, v in data["tail"].items()},
            dead=FileState.from_json(data["dead"]), vocab=Vocabulary(vocab),
        )


# -- rows of a segment or of the tail, mapped ------------------------------------------------


@dataclass(frozen=True)
class Rows:
    ids: NDArray[np.int64]
    vectors: Matrix
    int8: Int8Rows | None  # full-width codes (None in a projected generation)
    columns: FieldColumns
    list: NDArray[np.int32] | None = None  # tail rows only: each row's list
    reader: mapped.RowReader | None = None  # large files: float32 rows read, not mapped
    projected: Int8Rows | None = None  # a projected generation's first-stage codes

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, positions: NDArray[np.int64]) -> Matrix:
        rows: Matrix = self.vectors[positions] if self.reader is None else self.reader(positions)
        return rows


def _is_run(at: NDArray[np.int64]) -> bool:
    """Whether positions `at` are one ascending run (a, a+1, ..., b): a slice. Not only its
    ends: a permutation of a run (a split list's rows, items in the order asked for) is not."""
    n = len(at)
    return bool(n and int(at[-1]) - int(at[0]) + 1 == n
                and (n < 3 or bool((at[1:] > at[:-1]).all())))


def _width_of(spec: int | str, dim: int, code_dim: int = 0) -> int:
    return dim if spec == "dim" else code_dim if spec == "code_dim" else int(spec)


def _map_rows(
    folder: Path, prefix: str, files: dict[str, tuple[type[np.generic], int | str]],
    states: dict[str, FileState], dim: int, verified: dict[str, FileState] | None,
    random_access: bool = True, code_dim: int = 0,
) -> dict[str, np.ndarray]:
    """Map files `prefix.*`; check each against its state from the part `verified` records
    (None: do not check, the caller just wrote them). `random_access`: the vectors are read a
    row at a time (searches), not read whole (builds), and the first-stage projected codes
    every search reads are mapped whole at once (`mapped.open_rows`' `resident`)."""
    out = {}
    for name, (dtype, spec) in files.items():
        state = states.get(name, FileState())
        out[name] = mapped.open_rows(
            folder / f"{prefix}.{name}", dtype, _width_of(spec, dim, code_dim), state,
            verify_from=None if verified is None else verified.get(name, FileState()),
            random_access=random_access and name == "vectors",
            resident=random_access and name in PROJECTED_FILES,
        )
    return out


def _rows_from(arrays: dict[str, np.ndarray], tail: bool, vectors: Path | None = None) -> Rows:
    """Rows from mapped arrays; a large `vectors` file is read row by row instead."""
    matrix = arrays["vectors"]
    reader = None
    if vectors is not None and matrix.nbytes > READ_ROWS_FROM:
        reader = mapped.RowReader(vectors, np.float32, matrix.shape[1], len(matrix))
    return Rows(
        ids=arrays["ids"], vectors=matrix,
        int8=Int8Rows(arrays["codes"], arrays["scale"], arrays["error"], arrays["norm"])
        if "codes" in arrays else None,
        columns=FieldColumns({k: arrays[k] for k in ROW_COLUMNS}, arrays["size_codes"]),
        list=arrays["list"] if tail else None, reader=reader,
        projected=Int8Rows(arrays["pcodes"], arrays["pscale"], arrays["perror"],
                           arrays["pnorm"]) if "pcodes" in arrays else None,
    )


@dataclass(frozen=True)
class View:
    """One process's consistent picture of the files: swapped whole, never changed."""

    manifest: Manifest
    base: Rows
    tail: Rows
    lists: NDArray[np.int64]  # (lists + 1,) offsets of each list's base slots
    centroids: Matrix  # (lists, dim)
    projection: Matrix | None  # (code_dim, dim) of a projected generation, else None
    code_centroids: Matrix  # the centres projected (the centres themselves if not projected)
    sorted_ids: NDArray[np.int64]  # base ids ascending, and their slots
    sorted_slots: NDArray[np.int64]
    tail_ids: NDArray[np.int64]  # live tail ids ascending, and their slots (base rows + i)
    tail_slots: NDArray[np.int64]
    tail_lists: NDArray[np.int64]  # (lists + 1,) offsets into tail_by_list
    tail_by_list: NDArray[np.int64]  # live tail slots grouped by list
    alive: NDArray[np.bool_] | None  # per slot; None = every slot alive
    dead: int
    verified: dict[str, FileState]  # tail files' checked prefix (so a remap checks only news)
    _ids: list[Ids] = field(default_factory=list)
    _groups: list[CentreGroups] = field(default_factory=list)  # made when first needed

    @property
    def n_base(self) -> int:
        return len(self.base)

    @property
    def slots(self) -> int:
        return len(self.base) + len(self.tail)

    @property
    def live(self) -> int:
        return self.slots - self.dead

    def rows_at(self, slots: NDArray[np.int64]) -> Matrix:
        """float32 rows of global slots."""
        if _is_run(slots):  # one run (a full scan): no gather
            a, b = int(slots[0]), int(slots[-1]) + 1
            if b <= self.n_base and self.base.reader is None:
                return self.base.vectors[a:b]
            if a >= self.n_base and self.tail.reader is None:
                return self.tail.vectors[a - self.n_base : b - self.n_base]
        in_base = slots < self.n_base
        if in_base.all():
            return self.base.rows(slots)
        out = np.empty((len(slots), self.manifest.dim), dtype=np.float32)
        out[in_base] = self.base.rows(slots[in_base])
        out[~in_base] = self.tail.rows(slots[~in_base] - self.n_base)
        return out

    def slots_of(self, ids: Ids) -> NDArray[np.int64]:
        """The live slot of each id, -1 where absent."""
        ids = as_ids(ids)
        out = np.full(len(ids), -1, dtype=np.int64)
        for sorted_ids, slots in ((self.sorted_ids, self.sorted_slots),
                                  (self.tail_ids, self.tail_slots)):
            if len(sorted_ids) == 0 or len(ids) == 0:
                continue
            pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
            hit = sorted_ids[pos] == ids
            found = slots[pos[hit]]
            if self.alive is not None:
                ok = self.alive[found]
                hit[np.flatnonzero(hit)[~ok]] = False
                found = found[ok]
            out[hit] = found
        return out

    def lists_of(self, vectors: Matrix) -> NDArray[np.int32]:
        """The list each new row (a tail row) goes to: its nearest centre; from
        TWO_LEVEL_FROM lists the nearest among those of its GROUPS_TRIED nearest groups of
        centres (`CentreGroups`, made once a generation), so the cost of a row stays about
        4·sqrt(lists) dot products as a catalog grows."""
        if self.manifest.lists <= 1:
            return np.zeros(len(vectors), dtype=np.int32)
        if self.manifest.lists < TWO_LEVEL_FROM:
            return nearest_lists(vectors, self.centroids)
        if not self._groups:
            self._groups.append(CentreGroups.of(np.asarray(self.centroids, dtype=np.float32)))
        return self._groups[0].nearest(vectors)

    def ids(self) -> Ids:
        if not self._ids:
            base = self.sorted_ids
            if self.alive is not None:
                base = base[self.alive[self.sorted_slots]]
            self._ids.append(np.union1d(base, self.tail_ids) if len(self.tail_ids) else base)
        return self._ids[0]


def open_view(
    folder: Path, manifest: Manifest, old: View | None, *, verify: bool = False
) -> View:
    """Map the files `manifest` names; files (or parts) `old` already checked are not checked
    again, nor base files stamped as checked unless `verify` (which checks every file and
    writes nothing)."""
    dim, gen, code_dim = manifest.dim, manifest.generation, manifest.code_dim
    same_gen = old is not None and old.manifest.generation == gen
    if same_gen and old is not None:
        base, lists, centroids = old.base, old.lists, old.centroids
        projection, code_centroids = old.projection, old.code_centroids
        sorted_ids, sorted_slots = old.sorted_ids, old.sorted_slots
    else:
        files = {**row_files(code_dim > 0), **FLAT_FILES, **BASE_EXTRA}
        if code_dim:
            files[PROJECTION] = (np.float32, "dim")
        trusted = not verify and _stamped(folder, manifest)
        arrays = _map_rows(folder, f"g{gen}.base", files, manifest.base, dim,
                           dict(manifest.base) if trusted else {}, code_dim=code_dim)
        if not trusted and not verify:
            stamp(folder, manifest)
        base = _rows_from(arrays, tail=False, vectors=folder / f"g{gen}.base.vectors")
        lists, centroids = arrays["lists"], arrays["centroids"]
        sorted_ids, sorted_slots = arrays["sorted_ids"], arrays["sorted_slots"]
        n = len(base)
        if (len(lists) != manifest.lists + 1 or (n and int(lists[-1]) != n)
                or len(centroids) != manifest.lists or len(sorted_ids) != n
                or (code_dim and (manifest.lists <= 1 or base.projected is None
                                  or len(base.projected) != n))):
            raise DamagedFileError(f"{folder}: base segment {gen} is inconsistent")
        projection = arrays[PROJECTION] if code_dim else None
        # the centres in the codes' space: what a search ranks lists by (4 MB at 1M items,
        # 2,000 lists of 512-d, where the full-width centres are 21 MB)
        code_centroids = centroids if projection is None else np.ascontiguousarray(
            np.asarray(centroids, dtype=np.float32) @ projection.T)
    verified = old.verified if same_gen and old is not None else {}
    tail_arrays = _map_rows(folder, f"g{gen}.tail",
                            {**row_files(code_dim > 0, tail=True), **FLAT_FILES},
                            manifest.tail, dim, verified, code_dim=code_dim)
    tail = _rows_from(tail_arrays, tail=True, vectors=folder / f"g{gen}.tail.vectors")
    if code_dim and (tail.projected is None or len(tail.projected) != len(tail)):
        raise DamagedFileError(f"{folder}: tail of generation {gen} is inconsistent")
    dead_slots = mapped.open_rows(
        folder / f"g{gen}.dead", np.int64, 0, manifest.dead,
        verify_from=verified.get("dead", FileState()),
    )
    slots = len(base) + len(tail)
    alive: NDArray[np.bool_] | None = None
    if len(dead_slots):
        alive = np.ones(slots, dtype=np.bool_)
        alive[dead_slots[(dead_slots >= 0) & (dead_slots < slots)]] = False
    n_dead = 0 if alive is None else int(slots - alive.sum())
    live_tail = np.arange(len(tail), dtype=np.int64)
    if alive is not None:
        live_tail = live_tail[alive[len(base):]]
    order = np.argsort(tail.ids[live_tail], kind="stable")
    tail_lists_of = tail.list[live_tail] if tail.list is not None else live_tail[:0]
    by_list = np.argsort(tail_lists_of, kind="stable")
    return View(
        manifest=manifest, base=base, tail=tail, lists=lists, centroids=centroids,
        projection=projection, code_centroids=code_centroids, sorted_ids=sorted_ids,
        sorted_slots=sorted_slots,
        tail_ids=tail.ids[live_tail][order], tail_slots=live_tail[order] + len(base),
        tail_lists=np.searchsorted(tail_lists_of[by_list],
                                   np.arange(manifest.lists + 1)).astype(np.int64),
        tail_by_list=live_tail[by_list] + len(base),
        alive=alive, dead=n_dead,
        verified={**manifest.tail, "dead": manifest.dead},
        _groups=old._groups if same_gen and old is not None else [],
    )


def _base_stats(folder: Path, manifest: Manifest) -> dict[str, list[int]]:
    out = {}
    for name in manifest.base:
        st = (folder / f"g{manifest.generation}.base.{name}").stat()
        out[name] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


def _stamped(folder: Path, manifest: Manifest) -> bool:
    """Whether this generation's base files are the very files whose checksums were last
    checked (or written): same size, modification time and inode as then. Checking 2.6 GB
    took a process opening a 1M-item catalog 3 s on an idle machine, 30 s on a busy one."""
    try:
        stamp = json.loads((folder / STAMP).read_text())
        return bool(stamp["generation"] == manifest.generation
                    and stamp["files"] == _base_stats(folder, manifest))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def stamp(folder: Path, manifest: Manifest) -> None:
    """Record that this generation's base files match their checksums."""
    stamp = {"generation": manifest.generation, "files": _base_stats(folder, manifest)}
    tmp = folder / f"{STAMP}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(stamp))
    tmp.replace(folder / STAMP)


# -- building a base segment -----------------------------------------------------------------


@dataclass
class Batch:
    ids: Ids
    vectors: Matrix
    columns: FieldColumns


@dataclass(frozen=True)
class Source:
    """Rows a build copies: positions `at` of `rows`, with the int8 codes and fields stored
    beside them (a row's codes depend on that row only); `lists`: each one's list under the
    centres the build reuses (None: not known, assigned by the build)."""

    rows: Rows
    at: NDArray[np.int64]
    lists: NDArray[np.int32] | None = None


def batches_from_source(
    source: VectorSource, vocab: Vocabulary, batch: int
) -> Iterator[Batch]:
    for ids, vectors, scalars in source.iter_vectors(batch):
        yield Batch(ids, vectors, FieldColumns.encode(scalars, vocab))


def sources_of_view(folder: Path, view: View, extra: Batch | None) -> list[Source]:
    """The live rows of `view` (its files in `folder`: base, then tail) and then `extra`'s,
    each view row with its list under the view's centres. The vectors are mapped again for
    reading whole: gathering a gigabyte of rows in list order through the searches' mapping
    (which reads no page ahead) or row by row with `pread` cost 2 s of CPU."""
    out = []
    m = view.manifest
    for rows, first, part, states in ((view.base, 0, "base", m.base),
                                      (view.tail, view.n_base, "tail", m.tail)):
        live = np.arange(len(rows), dtype=np.int64)
        if view.alive is not None:
            live = live[view.alive[first : first + len(rows)]]
        if not len(live):
            continue
        if rows.list is not None:
            lists = np.asarray(rows.list[live], dtype=np.int32)
        else:
            offsets = np.asarray(view.lists, dtype=np.int64)
            lists = np.repeat(np.arange(len(offsets) - 1, dtype=np.int32),
                              np.diff(offsets))[live]
        vectors = mapped.open_rows(folder / f"g{m.generation}.{part}.vectors", np.float32,
                                   m.dim, states["vectors"], verify_from=None)
        out.append(Source(replace(rows, vectors=vectors, reader=None), live, lists))
    if extra is not None and len(extra.ids):
        vectors = np.asarray(extra.vectors, dtype=np.float32)
        rows = Rows(ids=as_ids(extra.ids), vectors=vectors, int8=Int8Rows.of(vectors),
                    columns=extra.columns)
        out.append(Source(rows, np.arange(len(rows), dtype=np.int64)))
    return out


def write_rows(
    folder: Path, prefix: str, batch: Batch, states: dict[str, FileState],
    extra: dict[str, np.ndarray] | None = None, projection: Matrix | None = None,
    *, int8: bool | None = None,
) -> dict[str, FileState]:
    """Append a batch's rows (ids, vectors, fields, and their first-stage codes: the
    full-width int8 ones, or with a `projection` the projected ones) to files `prefix.*`.
    `int8` True or False: write the full-width codes, or not, whatever the projection."""
    arrays: dict[str, np.ndarray] = {
        "ids": batch.ids, "vectors": batch.vectors, **batch.columns.arrays,
        "size_codes": batch.columns.size_codes, **(extra or {}),
    }
    if (projection is None) if int8 is None else int8:
        arrays.update(_int8_arrays(Int8Rows.of(batch.vectors)))
    if projection is not None:
        arrays.update(_projected_arrays(projected_codes(batch.vectors, projection)))
    out = dict(states)
    for name, array in arrays.items():
        out[name] = mapped.append(folder / f"{prefix}.{name}", array,
                                  states.get(name, FileState()))
    return out


def projected_codes(vectors: Matrix, projection: Matrix) -> Int8Rows:
    """First-stage codes of `vectors`: int8 codes of their projection x' = P x (P's rows
    orthonormal), with an error term that keeps `QueryCodes.candidates`' bound true for the
    full-width product: q.x = q'.x' + r_q.r_x (r the parts outside the projection), so
    |q.x - q'~.x'~| <= |q| (|x' - x'~| + |r_x|) + |q' - q'~| |x'~| (~: dequantised) when the
    query's codes carry |q| as their norm (`QueryCodes.projected`). The bound is loose (|r_x|
    is some 0.35 for unit vectors): a projected generation's searches rescore a fixed number
    of rows instead (`EmbeddedStore.search`)."""
    x = np.asarray(vectors, dtype=np.float32)
    low = np.ascontiguousarray(x @ np.asarray(projection, dtype=np.float32).T)
    rows = Int8Rows.of(low)
    # |r_x|^2 = |x|^2 - |x'|^2; float32 rounding of the two sums is far below the 1e-6 added
    outside = (np.einsum("nd,nd->n", x, x, dtype=np.float64)
               - np.einsum("nd,nd->n", low, low, dtype=np.float64))
    residual = np.sqrt(np.maximum(outside, 0.0) + 1e-6)
    return replace(rows, error=(rows.error + residual).astype(np.float32))


def _int8_arrays(rows: Int8Rows) -> dict[str, np.ndarray]:
    return {"codes": rows.codes, "scale": rows.scale, "error": rows.error, "norm": rows.norm}


def _projected_arrays(rows: Int8Rows) -> dict[str, np.ndarray]:
    return {"pcodes": rows.codes, "pscale": rows.scale, "perror": rows.error,
            "pnorm": rows.norm}


def learn_projection(vectors: Matrix, code_dim: int) -> Matrix:
    """(code_dim, dim): the top principal directions of `vectors` about the origin (the
    eigenvectors of their second moment, not of their covariance: inner products, not
    distances to the mean, are what the codes must keep), one a row, orthonormal."""
    x = np.asarray(vectors, dtype=np.float32)
    moment = (x.T @ x).astype(np.float64)
    _, vecs = np.linalg.eigh(moment)
    top = vecs[:, ::-1][:, :code_dim].T
    return np.ascontiguousarray(top, dtype=np.float32)


def _take(rows: Rows, name: str, at: NDArray[np.int64]) -> np.ndarray:
    """Row file `name`'s rows `at` of `rows`."""
    if name == "vectors":
        if _is_run(at):  # one run: a slice
            run: np.ndarray = rows.vectors[int(at[0]) : int(at[-1]) + 1]
            return run
        return rows.rows(at)
    if name == "ids":
        return rows.ids[at]
    if name in INT8_FILES:
        if rows.int8 is None:
            raise ValueError(f"rows of a projected generation have no {name!r}")
        part: np.ndarray = getattr(rows.int8, name)
        return part[at]
    return rows.columns.arrays[name][at]


class _Picks:
    """The rows a build writes, numbered 0..n-1 in the order of its sources."""

    def __init__(self, sources: list[Source], dim: int) -> None:
        self.sources = sources
        self.dim = dim
        self.which = np.repeat(np.arange(len(sources), dtype=np.int32),
                               [len(s.at) for s in sources])
        self.pos = (np.concatenate([s.at for s in sources]) if sources
                    else np.zeros(0, dtype=np.int64))
        # whether every source holds full-width codes (a projected generation's rows do not)
        self.has_int8 = all(s.rows.int8 is not None for s in sources)

    def __len__(self) -> int:
        return len(self.pos)

    def _split(self, rows: NDArray[np.int64]) -> Iterator[tuple[int, NDArray[np.int64]]]:
        """(source, the indices into `rows` of its rows) for each source `rows` holds."""
        if len(self.sources) == 1:
            yield 0, np.arange(len(rows), dtype=np.int64)
            return
        which = self.which[rows]
        for i in range(len(self.sources)):
            sel = np.flatnonzero(which == i)
            if len(sel):
                yield i, sel

    def take(self, name: str, rows: NDArray[np.int64]) -> np.ndarray:
        """File `name`'s rows of picks `rows`, in that order."""
        dtype, spec = ROW_FILES[name]
        pos = self.pos[rows]
        parts = list(self._split(rows))
        if len(parts) == 1:  # one source: no scatter
            return np.asarray(_take(self.sources[parts[0][0]].rows, name, pos), dtype=dtype)
        out = np.empty((len(rows), self.dim) if spec == "dim" else len(rows), dtype=dtype)
        for i, sel in parts:
            out[sel] = _take(self.sources[i].rows, name, pos[sel])
        return out

    def size_codes(self, rows: NDArray[np.int64]) -> NDArray[np.int32]:
        """The size codes of picks `rows`, row after row."""
        counts = self.take("size_n", rows).astype(np.int64)
        starts = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        out = np.empty(int(starts[-1]), dtype=np.int32)
        pos = self.pos[rows]
        for i, sel in self._split(rows):
            columns = self.sources[i].rows.columns
            at = flat_positions(columns.size_starts(), columns.arrays["size_n"], pos[sel])
            out[flat_positions(starts, counts, sel)] = columns.size_codes[at]
        return out


def lists_for(n: int, settings: Settings) -> int:
    """The lists a clustering of n items makes (k-means needs a point a list)."""
    return min(settings.ivf_lists or auto_lists(n), n)


def _train(picks: _Picks, rows: NDArray[np.int64], k: int, seed: int) -> Matrix:
    """Spherical k-means centres of a sample of picks `rows` (FAISS, all cores)."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(rows), min(len(rows), k * KMEANS_SAMPLE), replace=False))
    km = faiss.Kmeans(picks.dim, k, niter=KMEANS_ITER, spherical=True, seed=seed,
                      max_points_per_centroid=KMEANS_SAMPLE, min_points_per_centroid=1)
    km.train(picks.take("vectors", rows[sample]))
    centroids: Matrix = np.asarray(km.centroids, dtype=np.float32)
    return centroids


def _centre_index(centroids: Matrix) -> faiss.IndexFlatIP:
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


def nearest_lists(
    vectors: Matrix, centroids: Matrix, batch: int = NEAREST_BATCH
) -> NDArray[np.int32]:
    """Each row's nearest centre (inner product)."""
    index = _centre_index(centroids)
    out = np.empty(len(vectors), dtype=np.int32)
    for a in range(0, len(vectors), batch):
        _, nearest = index.search(np.ascontiguousarray(vectors[a : a + batch]), 1)
        out[a : a + batch] = nearest[:, 0]
    return out


@dataclass(frozen=True)
class CentreGroups:
    """The lists' centres in about sqrt(lists) groups (a spherical k-means of the centres
    themselves), for assigning new rows: a row is compared with the groups' centres, then with
    the centres of its GROUPS_TRIED nearest groups, and goes to the nearest of those (as a
    fresh clustering's rows do, `_nearest_in_groups`); a row whose groups hold no centre to
    the nearest of all."""

    coarse: Matrix  # (groups, dim)
    centroids: Matrix  # the lists' centres, grouped: group g's are rows starts[g]..starts[g+1]
    lists: NDArray[np.int32]  # the list of each of those rows
    starts: NDArray[np.int64]  # (groups + 1,)

    @classmethod
    def of(cls, centroids: Matrix) -> CentreGroups:
        n, dim = centroids.shape
        groups = max(2, round(math.sqrt(n)))
        km = faiss.Kmeans(dim, groups, niter=KMEANS_ITER, spherical=True, seed=1,
                          max_points_per_centroid=max(n, 1), min_points_per_centroid=1)
        km.train(np.ascontiguousarray(centroids, dtype=np.float32))
        coarse = np.asarray(km.centroids, dtype=np.float32)
        group_of = nearest_lists(centroids, coarse)
        order = np.argsort(group_of, kind="stable")
        starts = np.searchsorted(group_of[order], np.arange(groups + 1)).astype(np.int64)
        return cls(coarse, np.ascontiguousarray(centroids[order], dtype=np.float32),
                   order.astype(np.int32), starts)

    def nearest(self, vectors: Matrix) -> NDArray[np.int32]:
        out = np.empty(len(vectors), dtype=np.int32)
        near = min(GROUPS_TRIED, len(self.coarse))
        step = max(1, ASSIGN_BYTES // (4 * max(self.coarse.shape[1], 1)))
        for a in range(0, len(vectors), step):
            x = np.ascontiguousarray(vectors[a : a + step], dtype=np.float32)
            top = np.argsort(-(x @ self.coarse.T), axis=1, kind="stable")[:, :near]
            best = np.full(len(x), -np.inf, dtype=np.float32)
            pick = np.zeros(len(x), dtype=np.int32)
            for g in np.unique(top).tolist():
                lo, hi = int(self.starts[g]), int(self.starts[g + 1])
                if lo == hi:
                    continue
                at = np.flatnonzero((top == g).any(axis=1))
                scores = x[at] @ self.centroids[lo:hi].T
                top_in = np.argmax(scores, axis=1)
                score = scores[np.arange(len(at)), top_in]
                better = score > best[at]
                best[at[better]] = score[better]
                pick[at[better]] = self.lists[lo + top_in[better]]
            lost = np.flatnonzero(~(best > -np.inf))  # (no centre in its groups; NaN rows)
            if len(lost):
                pick[lost] = self.lists[nearest_lists(x[lost], self.centroids)]
            out[a : a + len(x)] = pick
        return out


def _nearest(picks: _Picks, todo: NDArray[np.int64], centroids: Matrix) -> NDArray[np.int32]:
    """The nearest centre of picks `todo`, read a bounded block of rows at a time. The blocks
    split each `nearest_lists` batch at multiples of FAISS's query block, and never leave a
    block too small for its BLAS path, so each row's scores are the very numbers
    `nearest_lists` of all the rows computes."""
    out = np.empty(len(todo), dtype=np.int32)
    block = int(faiss.cvar.distance_compute_blas_query_bs)
    least = -(-int(faiss.cvar.distance_compute_blas_threshold) // max(picks.dim, 1))
    step = max(1, ASSIGN_BYTES // (4 * max(picks.dim, 1)) // block) * block
    index = _centre_index(centroids)
    for batch in range(0, len(todo), NEAREST_BATCH):
        end = min(batch + NEAREST_BATCH, len(todo))
        a = batch
        while a < end:
            b = min(a + step, end)
            if end - b < least:  # what is left would take the other path: take it now
                b = end
            _, nearest = index.search(picks.take("vectors", todo[a:b]), 1)
            out[a:b] = nearest[:, 0]
            a = b
    return out


def _assign(picks: _Picks, centroids: Matrix) -> NDArray[np.int32]:
    """Each pick's list: the one stored with it when known, else its nearest centre."""
    out = np.empty(len(picks), dtype=np.int32)
    unknown = np.ones(len(picks), dtype=np.bool_)
    start = 0
    for source in picks.sources:
        end = start + len(source.at)
        if source.lists is not None:
            out[start:end] = source.lists
            unknown[start:end] = False
        start = end
    if unknown.any():
        todo = np.flatnonzero(unknown)
        out[todo] = _nearest(picks, todo, centroids)
    return out


def _split(
    picks: _Picks, list_of: NDArray[np.int32], centroids: Matrix, parts: NDArray[np.int64]
) -> tuple[Matrix, NDArray[np.int32]]:
    """Split list i into parts[i] lists (a spherical k-means of its own rows; their rows
    assigned among those parts only, every other row keeps its list); parts[i] = 0 drops an
    empty list. The lists are numbered again, a split list's parts one after the other."""
    first = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(parts, out=first[1:])
    out = first[:-1][list_of].astype(np.int32)
    order = np.argsort(list_of, kind="stable")
    bounds = np.searchsorted(list_of[order], np.arange(len(parts) + 1))
    kept: list[Matrix] = []
    for i in range(len(parts)):
        if parts[i] == 1:
            kept.append(centroids[i : i + 1])
        elif parts[i] > 1:
            rows = np.sort(order[bounds[i] : bounds[i + 1]]).astype(np.int64)
            sub = _train(picks, rows, int(parts[i]), seed=1 + i)
            out[rows] = first[i] + _nearest(picks, rows, sub)
            kept.append(sub)
    new: Matrix = (np.concatenate(kept).astype(np.float32) if kept
                   else np.zeros((0, picks.dim), dtype=np.float32))
    return new, out


def _apportion(sizes: NDArray[np.int64], lists: int) -> NDArray[np.int64]:
    """About `lists` lists shared among groups of `sizes` rows in proportion (largest
    remainders; a group with rows gets at least one list, never more lists than rows)."""
    quota = sizes * (lists / max(1, int(sizes.sum())))
    parts: NDArray[np.int64] = np.minimum(np.floor(quota), sizes).astype(np.int64)
    parts[(sizes > 0) & (parts == 0)] = 1
    for i in np.argsort(-(quota - np.floor(quota)), kind="stable"):
        if parts.sum() >= lists:
            break
        if parts[i] < sizes[i]:
            parts[i] += 1
    return parts


def _cluster(picks: _Picks, lists: int) -> tuple[Matrix, NDArray[np.int32]]:
    """`lists` lists of every pick: a spherical k-means on a sample and every row assigned to
    its nearest centre; from TWO_LEVEL_FROM lists in two levels — about sqrt(lists) groups so,
    then each group split into lists in proportion to its rows by a k-means of its own rows,
    each row going to the nearest list of its GROUPS_TRIED nearest groups. Assigning n rows
    then compares each with about 4·sqrt(lists) centres, not `lists`: the cost per row stays
    nearly flat as a catalog grows (5.2 → 0.5 million multiply-adds a row at 1M items,
    2,624-d)."""
    everything = np.arange(len(picks), dtype=np.int64)
    if lists < TWO_LEVEL_FROM:
        centroids = _train(picks, everything, lists, seed=1)
        return centroids, _nearest(picks, everything, centroids)
    groups = max(2, round(math.sqrt(lists)))
    coarse = _train(picks, everything, groups, seed=1)
    group_of = _nearest(picks, everything, coarse)
    sizes = np.bincount(group_of, minlength=groups).astype(np.int64)
    parts = _apportion(sizes, lists)
    fine, list_of = _split(picks, group_of, coarse, parts)
    if GROUPS_TRIED > 1:
        list_of = _nearest_in_groups(picks, coarse, fine, parts)
    return fine, list_of


def _nearest_in_groups(
    picks: _Picks, coarse: Matrix, fine: Matrix, parts: NDArray[np.int64]
) -> NDArray[np.int32]:
    """Each pick's nearest list among those of its GROUPS_TRIED nearest groups (group g's
    lists: parts[g] of them, numbered after the lists of the groups before it)."""
    first = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(parts, out=first[1:])
    near = min(GROUPS_TRIED, len(coarse))
    out = np.empty(len(picks), dtype=np.int32)
    step = max(1, ASSIGN_BYTES // (4 * max(picks.dim, 1)))
    for a in range(0, len(picks), step):
        rows = np.arange(a, min(a + step, len(picks)), dtype=np.int64)
        x = np.ascontiguousarray(picks.take("vectors", rows))
        top = np.argsort(-(x @ coarse.T), axis=1, kind="stable")[:, :near]
        best = np.full(len(rows), -np.inf, dtype=np.float32)
        for g in np.unique(top).tolist():
            if parts[g] == 0:
                continue
            at = np.flatnonzero((top == g).any(axis=1))
            scores = x[at] @ fine[first[g] : first[g + 1]].T
            pick = np.argmax(scores, axis=1)
            score = scores[np.arange(len(at)), pick]
            better = score > best[at]
            best[at[better]] = score[better]
            out[a + at[better]] = first[g] + pick[better]
    return out


def _split_grown(
    picks: _Picks, list_of: NDArray[np.int32], centroids: Matrix, settings: Settings
) -> tuple[Matrix, NDArray[np.int32]]:
    """A compaction keeping the centres: every list grown past SPLIT_AT times the mean list
    size a clustering would make now (`lists_for`) is split into lists of about that size
    by a k-means of its own rows; only its rows change list (SPFresh's split, without the
    re-assignment of neighbouring lists' rows). The same centres when none has."""
    n = len(picks)
    if SPLIT_AT <= 0 or n == 0:
        return centroids, list_of
    mean = n / lists_for(n, settings)
    sizes = np.bincount(list_of, minlength=len(centroids)).astype(np.int64)
    grown = sizes > SPLIT_AT * mean
    if not grown.any():
        return centroids, list_of
    parts = np.ones(len(sizes), dtype=np.int64)
    parts[grown] = np.maximum(2, np.round(sizes[grown] / mean)).astype(np.int64)
    log.info("vector files: %d lists of %d rows split", int(grown.sum()), int(sizes[grown].sum()))
    return _split(picks, list_of, centroids, parts)


def build_base(
    folder: Path, generation: int, dim: int, batches: Iterator[Batch], settings: Settings,
    centroids: Matrix | None,
) -> tuple[dict[str, FileState], int, Matrix | None]:
    """Write generation `generation`'s base segment from `batches`; returns its file states,
    its lists and the centres it was clustered with (None: one list). `centroids` reuses
    existing centres instead of clustering again. The rows are first written as they come
    (quantised), then, when they are split into lists, copied list by list."""
    with _build_folder(folder, generation) as tmp:
        started = time.perf_counter()
        states: dict[str, FileState] = {}
        # vectors wider than the codes: clustered, the generation will be a projected one,
        # whose full-width codes nothing reads; computed below if it ends up one list
        projected = 0 < settings.index_code_dim < dim
        for batch in batches:
            states = write_rows(tmp, "rows", batch, states, int8=not projected)
        n = states["ids"].rows if states else 0
        log.info("vector files: %d rows read and quantised in %.1f s", n,
                 time.perf_counter() - started)
        flat = {**ROW_FILES, **FLAT_FILES}
        prefix = f"g{generation}.base"
        if n <= max(settings.exact_max_items, 1):  # one list: the rows as they are
            if n and projected:
                states = _write_int8(tmp, "rows", dim, states)
            ids = mapped.open_rows(tmp / "rows.ids", np.int64, 0, states["ids"],
                                   verify_from=None) if n else np.zeros(0, dtype=np.int64)
            ids = np.array(ids)
            out = {name: _move(tmp / f"rows.{name}", folder / f"{prefix}.{name}", states[name])
                   for name in flat} if n else {}
            return _finish(folder, prefix, dim, out, ids, np.zeros(n, dtype=np.int32),
                           None), 1, None
        written = {name: spec for name, spec in flat.items()
                   if not (projected and name in INT8_FILES)}
        arrays = _map_rows(tmp, "rows", written, states, dim, None, random_access=False)
        rows = _rows_from(arrays, tail=False)
        return _build(folder, tmp, generation, dim,
                      [Source(rows, np.arange(n, dtype=np.int64))], settings, centroids)


def build_base_from(
    folder: Path, generation: int, dim: int, sources: list[Source], settings: Settings,
    centroids: Matrix | None, projection: Matrix | None = None,
) -> tuple[dict[str, FileState], int, Matrix | None]:
    """`build_base` from rows already stored (a compaction: `sources_of_view`): their int8
    codes and fields are copied, not computed again, the rows written once, list by list,
    and (reusing `centroids`) their lists are the ones stored with them, and the projection
    of their first-stage codes `projection` (see `_projection_for`)."""
    with _build_folder(folder, generation) as tmp:
        return _build(folder, tmp, generation, dim, sources, settings, centroids, projection)


@contextlib.contextmanager
def _build_folder(folder: Path, generation: int) -> Iterator[Path]:
    """A build's folder (`build-<pid>-<generation>`: deleted when done, and by the next build
    when its process was killed)."""
    _remove_dead_builds(folder)
    tmp = folder / f"build-{os.getpid()}-{generation}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(
    folder: Path, tmp: Path, generation: int, dim: int, sources: list[Source],
    settings: Settings, centroids: Matrix | None, projection: Matrix | None = None,
) -> tuple[dict[str, FileState], int, Matrix | None]:
    """The rows of `sources` (in list order when split into lists) into files in `tmp`, then
    moved into `folder` as generation `generation`'s base segment. Lists of vectors wider
    than `settings.index_code_dim` get a projection for their first-stage codes: learnt
    with a fresh clustering, else `projection` kept (`_projection_for`)."""
    started = time.perf_counter()
    picks = _Picks(sources, dim)
    n = len(picks)
    if n <= max(settings.exact_max_items, 1):
        centroids = projection = None
        list_of = np.zeros(n, dtype=np.int32)
        order = np.arange(n, dtype=np.int64)
    else:
        if centroids is None:
            picks = _Picks([replace(s, lists=None) for s in sources], dim)
            centroids, list_of = _cluster(picks, lists_for(n, settings))
            projection = None  # learnt afresh with the lists
        else:
            centroids, list_of = _split_grown(picks, _assign(picks, centroids), centroids,
                                              settings)
        projection = _projection_for(picks, settings, projection)
        order = np.argsort(list_of, kind="stable").astype(np.int64)
        log.info("vector files: %d lists trained and assigned in %.1f s", len(centroids),
                 time.perf_counter() - started)
    prefix = f"g{generation}.base"
    states = _write_ordered(tmp, prefix, picks, order, dim, projection)
    out = {name: _move(tmp / f"{prefix}.{name}", folder / f"{prefix}.{name}", state)
           for name, state in states.items()}
    ids = picks.take("ids", order) if n else np.zeros(0, dtype=np.int64)
    return (_finish(folder, prefix, dim, out, ids, list_of[order], centroids, projection),
            1 if centroids is None else len(centroids), centroids)


def _projection_for(
    picks: _Picks, settings: Settings, kept: Matrix | None
) -> Matrix | None:
    """The projection of a clustered generation's first-stage codes: None when the vectors
    are no wider than `settings.index_code_dim` (or it is 0), else `kept` when of that width,
    else learnt from a sample of the rows (a setting changed since: at the next build)."""
    code_dim = settings.index_code_dim
    if not 0 < code_dim < picks.dim:
        return None
    if kept is not None and kept.shape == (code_dim, picks.dim):
        return kept
    return learn_projection(picks.take("vectors", projection_sample(len(picks))), code_dim)


def projection_sample(n: int) -> NDArray[np.int64]:
    """The rows (ascending) of n a projection is learnt from: all up to `PROJECTION_SAMPLE`,
    else that many drawn with a fixed seed (the same rows for the same catalog)."""
    return np.sort(np.random.default_rng(2).choice(n, min(n, PROJECTION_SAMPLE), replace=False))


def _write_ordered(
    tmp: Path, prefix: str, picks: _Picks, order: NDArray[np.int64], dim: int,
    projection: Matrix | None = None,
) -> dict[str, FileState]:
    """Picks in `order` into files `prefix.*` in `tmp`, a bounded block of rows at a time.
    With a `projection`, their first-stage codes are computed from their vectors (and no
    full-width codes written); without, the full-width codes are copied (computed from the
    vectors for rows of a projected generation, which have none)."""
    states: dict[str, FileState] = {}
    step = max(1, WRITE_BYTES // (5 * max(dim, 1) + 64))
    copied = [name for name in ROW_FILES
              if not (name in INT8_FILES and (projection is not None or not picks.has_int8))]
    for a in range(0, len(order), step):
        at = order[a : a + step]
        for name in copied:
            array = picks.take(name, at)
            states[name] = mapped.append(tmp / f"{prefix}.{name}", array,
                                         states.get(name, FileState()))
            if name != "vectors" or (picks.has_int8 and projection is None):
                continue
            computed = (_int8_arrays(Int8Rows.of(array)) if projection is None
                        else _projected_arrays(projected_codes(array, projection)))
            for cname, carray in computed.items():
                states[cname] = mapped.append(tmp / f"{prefix}.{cname}", carray,
                                              states.get(cname, FileState()))
        states["size_codes"] = mapped.append(tmp / f"{prefix}.size_codes",
                                             picks.size_codes(at),
                                             states.get("size_codes", FileState()))
    return states


def _write_int8(
    tmp: Path, prefix: str, dim: int, states: dict[str, FileState]
) -> dict[str, FileState]:
    """The full-width codes of the rows in files `prefix.*` (written without), appended."""
    vectors = mapped.open_rows(tmp / f"{prefix}.vectors", np.float32, dim, states["vectors"],
                               verify_from=None)
    out = dict(states)
    step = max(1, WRITE_BYTES // (5 * max(dim, 1)))
    for a in range(0, len(vectors), step):
        for name, array in _int8_arrays(Int8Rows.of(vectors[a : a + step])).items():
            out[name] = mapped.append(tmp / f"{prefix}.{name}", array,
                                      out.get(name, FileState()))
    return out


def _finish(
    folder: Path, prefix: str, dim: int, out: dict[str, FileState], ids: NDArray[np.int64],
    sorted_lists: NDArray[np.int32], centroids: Matrix | None,
    projection: Matrix | None = None,
) -> dict[str, FileState]:
    """The base-only files (list offsets, centres, ids sorted), and empty row files for an
    empty segment; returns every file's state."""
    n_lists = 1 if centroids is None else len(centroids)
    by_id = np.argsort(ids, kind="stable").astype(np.int64)
    offsets = np.searchsorted(sorted_lists, np.arange(n_lists + 1)).astype(np.int64)
    out = dict(out)
    for name, array in (
        ("lists", offsets),
        ("centroids", centroids if centroids is not None else np.zeros((1, dim), np.float32)),
        ("sorted_ids", np.asarray(ids[by_id])),
        ("sorted_slots", by_id),
    ):
        out[name] = mapped.write(folder / f"{prefix}.{name}", array)
    if projection is not None:
        out[PROJECTION] = mapped.write(folder / f"{prefix}.{PROJECTION}", projection)
    flat = {**row_files(projection is not None), **FLAT_FILES}
    for name in flat:  # an empty segment still has (empty) files
        if name not in out:
            out[name] = mapped.write(folder / f"{prefix}.{name}",
                                     np.zeros(0, dtype=flat[name][0]))
    return out


def _remove_dead_builds(folder: Path) -> None:
    """Delete the build folders (`build-<pid>-<generation>`) and temp files (`*.<pid>.tmp`)
    of processes killed midway: as large as the segment they were writing."""
    for path in [*folder.glob("build-*"), *folder.glob("*.tmp")]:
        part = path.name.split("-")[1] if path.name.startswith("build-") else (
            path.name.rsplit(".", 2)[-2] if path.name.count(".") >= 2 else "")
        if part.isdigit() and int(part) != os.getpid() and not is_alive(int(part)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _move(src: Path, dst: Path, state: FileState) -> FileState:
    mapped.sync(src)
    src.replace(dst)
    return state


def next_generation(folder: Path) -> int:
    gens = [int(p.name[1:].split(".", 1)[0]) for p in folder.glob("g*.*")
            if p.name[1:].split(".", 1)[0].isdigit()]
    return max(gens, default=0) + 1


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("g*.*") if p.is_file())
