"""The embedded vector store's files (see `lookalike.index.embedded`): the manifest, the rows of
a generation mapped into memory, and building a generation's base segment.

`<catalog>/vectors/`: per generation g, `g{g}.base.<column>` (written once: every item's id,
float32 vector, int8 codes and bound terms, filterable fields; large catalogs stored list by
list, with the lists' offsets and centres and the ids sorted), `g{g}.tail.<column>` (rows
appended since) and `g{g}.dead` (slots no longer live); `manifest.json` names the generation
and every file's valid rows and CRC-32; `checked.json` the base files' size, modification time
and inode when their checksums last matched.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    "BUILD_BATCH", "FOLDER", "MANIFEST", "Batch", "Manifest", "Rows", "View", "auto_lists",
    "batches_from_source", "batches_from_view", "build_base", "folder_bytes",
    "nearest_lists", "next_generation", "open_view", "stamp", "write_rows",
]

FOLDER = "vectors"
MANIFEST = "manifest.json"
STAMP = "checked.json"  # the base files' signatures when their checksums last matched
FORMAT = 2  # 2: the items' state column

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
FLAT_FILES: dict[str, tuple[type[np.generic], int | str]] = {"size_codes": (np.int32, 0)}
# base-only: list offsets, list centres, ids sorted and the slot of each
BASE_EXTRA: dict[str, tuple[type[np.generic], int | str]] = {
    "lists": (np.int64, 0),
    "centroids": (np.float32, "dim"),
    "sorted_ids": (np.int64, 0),
    "sorted_slots": (np.int64, 0),
}
BUILD_BATCH = 50_000
READ_ROWS_FROM = 64 << 20  # float32 files larger than this: rows read, not mapped
KMEANS_SAMPLE = 64  # training points per list
KMEANS_ITER = 12


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

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "dim": self.dim, "generation": self.generation,
            "applied": self.applied, "lists": self.lists, "clustered": self.clustered,
            "base": {k: v.to_json() for k, v in self.base.items()},
            "tail": {k: v.to_json() for k, v in self.tail.items()},
            "dead": self.dead.to_json(), "vocab": self.vocab.values,
        })

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
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
    int8: Int8Rows
    columns: FieldColumns
    list: NDArray[np.int32] | None = None  # tail rows only: each row's list
    reader: mapped.RowReader | None = None  # large files: float32 rows read, not mapped

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, positions: NDArray[np.int64]) -> Matrix:
        rows: Matrix = self.vectors[positions] if self.reader is None else self.reader(positions)
        return rows


def _width_of(spec: int | str, dim: int) -> int:
    return dim if spec == "dim" else int(spec)


def _map_rows(
    folder: Path, prefix: str, files: dict[str, tuple[type[np.generic], int | str]],
    states: dict[str, FileState], dim: int, verified: dict[str, FileState] | None,
) -> dict[str, np.ndarray]:
    """Map files `prefix.*`; check each against its state from the part `verified` records
    (None: do not check, the caller just wrote them)."""
    out = {}
    for name, (dtype, spec) in files.items():
        state = states.get(name, FileState())
        out[name] = mapped.open_rows(
            folder / f"{prefix}.{name}", dtype, _width_of(spec, dim), state,
            verify_from=None if verified is None else verified.get(name, FileState()),
            random_access=name == "vectors",
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
        int8=Int8Rows(arrays["codes"], arrays["scale"], arrays["error"], arrays["norm"]),
        columns=FieldColumns({k: arrays[k] for k in ROW_COLUMNS}, arrays["size_codes"]),
        list=arrays["list"] if tail else None, reader=reader,
    )


@dataclass(frozen=True)
class View:
    """One process's consistent picture of the files: swapped whole, never changed."""

    manifest: Manifest
    base: Rows
    tail: Rows
    lists: NDArray[np.int64]  # (lists + 1,) offsets of each list's base slots
    centroids: Matrix  # (lists, dim)
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
        n = len(slots)
        if n and int(slots[-1]) - int(slots[0]) + 1 == n:  # one run (a full scan): no gather
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
    dim, gen = manifest.dim, manifest.generation
    same_gen = old is not None and old.manifest.generation == gen
    if same_gen and old is not None:
        base, lists, centroids = old.base, old.lists, old.centroids
        sorted_ids, sorted_slots = old.sorted_ids, old.sorted_slots
    else:
        files = {**ROW_FILES, **FLAT_FILES, **BASE_EXTRA}
        trusted = not verify and _stamped(folder, manifest)
        arrays = _map_rows(folder, f"g{gen}.base", files, manifest.base, dim,
                           dict(manifest.base) if trusted else {})
        if not trusted and not verify:
            stamp(folder, manifest)
        base = _rows_from(arrays, tail=False, vectors=folder / f"g{gen}.base.vectors")
        lists, centroids = arrays["lists"], arrays["centroids"]
        sorted_ids, sorted_slots = arrays["sorted_ids"], arrays["sorted_slots"]
        n = len(base)
        if (len(lists) != manifest.lists + 1 or (n and int(lists[-1]) != n)
                or len(centroids) != manifest.lists or len(sorted_ids) != n):
            raise DamagedFileError(f"{folder}: base segment {gen} is inconsistent")
    verified = old.verified if same_gen and old is not None else {}
    tail_arrays = _map_rows(folder, f"g{gen}.tail", {**TAIL_FILES, **FLAT_FILES},
                            manifest.tail, dim, verified)
    tail = _rows_from(tail_arrays, tail=True, vectors=folder / f"g{gen}.tail.vectors")
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
        sorted_ids=sorted_ids, sorted_slots=sorted_slots,
        tail_ids=tail.ids[live_tail][order], tail_slots=live_tail[order] + len(base),
        tail_lists=np.searchsorted(tail_lists_of[by_list],
                                   np.arange(manifest.lists + 1)).astype(np.int64),
        tail_by_list=live_tail[by_list] + len(base),
        alive=alive, dead=n_dead,
        verified={**manifest.tail, "dead": manifest.dead},
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


def batches_from_source(
    source: VectorSource, vocab: Vocabulary, batch: int
) -> Iterator[Batch]:
    for ids, vectors, scalars in source.iter_vectors(batch):
        yield Batch(ids, vectors, FieldColumns.encode(scalars, vocab))


def batches_from_view(view: View, extra: Batch | None, batch: int) -> Iterator[Batch]:
    for rows, first in ((view.base, 0), (view.tail, view.n_base)):
        live = np.arange(len(rows), dtype=np.int64)
        if view.alive is not None:
            live = live[view.alive[first : first + len(rows)]]
        for a in range(0, len(live), batch):
            at = live[a : a + batch]
            yield Batch(np.asarray(rows.ids[at]), np.asarray(rows.vectors[at]),
                         rows.columns.take(at))
    if extra is not None and len(extra.ids):
        yield extra


def write_rows(
    folder: Path, prefix: str, batch: Batch, states: dict[str, FileState],
    extra: dict[str, np.ndarray] | None = None,
) -> dict[str, FileState]:
    """Append a batch's rows (ids, vectors, int8 codes, fields) to files `prefix.*`."""
    int8 = Int8Rows.of(batch.vectors)
    arrays: dict[str, np.ndarray] = {
        "ids": batch.ids, "vectors": batch.vectors, "codes": int8.codes, "scale": int8.scale,
        "error": int8.error, "norm": int8.norm, **batch.columns.arrays,
        "size_codes": batch.columns.size_codes, **(extra or {}),
    }
    out = dict(states)
    for name, array in arrays.items():
        out[name] = mapped.append(folder / f"{prefix}.{name}", array,
                                  states.get(name, FileState()))
    return out


def _train_lists(vectors: Matrix, lists: int, seed: int = 1) -> Matrix:
    """Spherical k-means centres of a sample of `vectors` (FAISS, all cores)."""
    n = len(vectors)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, min(n, lists * KMEANS_SAMPLE), replace=False))
    km = faiss.Kmeans(vectors.shape[1], lists, niter=KMEANS_ITER, spherical=True, seed=seed,
                      max_points_per_centroid=KMEANS_SAMPLE, min_points_per_centroid=1)
    km.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    centroids: Matrix = np.asarray(km.centroids, dtype=np.float32)
    return centroids


def nearest_lists(vectors: Matrix, centroids: Matrix, batch: int = 65536) -> NDArray[np.int32]:
    """Each row's nearest centre (inner product)."""
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids))
    out = np.empty(len(vectors), dtype=np.int32)
    for a in range(0, len(vectors), batch):
        _, nearest = index.search(np.ascontiguousarray(vectors[a : a + batch]), 1)
        out[a : a + batch] = nearest[:, 0]
    return out


def build_base(
    folder: Path, generation: int, dim: int, batches: Iterator[Batch], settings: Settings,
    centroids: Matrix | None,
) -> tuple[dict[str, FileState], int, Matrix | None]:
    """Write generation `generation`'s base segment from `batches`; returns its file states,
    its lists and the centres it was clustered with (None: one list). `centroids` reuses
    existing centres instead of clustering again."""
    _remove_dead_builds(folder)
    tmp = folder / f"build-{os.getpid()}-{generation}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.perf_counter()
    try:
        states: dict[str, FileState] = {}
        for batch in batches:
            states = write_rows(tmp, "rows", batch, states)
        n = states["ids"].rows if states else 0
        log.info("vector files: %d rows read and quantised in %.1f s", n,
                 time.perf_counter() - started)
        flat = {**ROW_FILES, **FLAT_FILES}
        arrays = _map_rows(tmp, "rows", flat, states, dim, None)
        if n <= max(settings.exact_max_items, 1):
            centroids = None
        elif centroids is None:
            lists = min(settings.ivf_lists or auto_lists(n), n)  # k-means needs a point a list
            centroids = _train_lists(arrays["vectors"], lists)
        prefix = f"g{generation}.base"
        if centroids is None:
            list_of = np.zeros(n, dtype=np.int32)
            order = np.arange(n, dtype=np.int64)
            n_lists = 1
            out = {name: _move(tmp / f"rows.{name}", folder / f"{prefix}.{name}", states[name])
                   for name in flat} if n else {}
        else:
            n_lists = len(centroids)
            list_of = nearest_lists(arrays["vectors"], centroids)
            order = np.argsort(list_of, kind="stable").astype(np.int64)
            log.info("vector files: %d lists trained and assigned (%.1f s so far)", n_lists,
                     time.perf_counter() - started)
            out = _write_permuted(folder, prefix, arrays, order, dim)
        final_ids = arrays["ids"][order]
        by_id = np.argsort(final_ids, kind="stable").astype(np.int64)
        offsets = np.searchsorted(list_of[order], np.arange(n_lists + 1)).astype(np.int64)
        for name, array in (
            ("lists", offsets),
            ("centroids", centroids if centroids is not None else np.zeros((1, dim), np.float32)),
            ("sorted_ids", np.asarray(final_ids[by_id])),
            ("sorted_slots", by_id),
        ):
            out[name] = mapped.write(folder / f"{prefix}.{name}", array)
        for name in flat:  # an empty segment still has (empty) files
            if name not in out:
                out[name] = mapped.write(folder / f"{prefix}.{name}",
                                         np.zeros(0, dtype=flat[name][0]))
        return out, n_lists, centroids
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def _write_permuted(
    folder: Path, prefix: str, arrays: dict[str, np.ndarray], order: NDArray[np.int64],
    dim: int,
) -> dict[str, FileState]:
    """Rows in `order` into `prefix.*` (sizes' flat codes follow their rows)."""
    states: dict[str, FileState] = {}
    n = len(order)
    for name in ROW_FILES:
        src = arrays[name]
        state = FileState()
        path = folder / f"{prefix}.{name}"
        path.unlink(missing_ok=True)
        for a in range(0, n, BUILD_BATCH):
            state = mapped.append(path, np.asarray(src[order[a : a + BUILD_BATCH]]), state)
        mapped.sync(path)
        states[name] = state
    counts = arrays["size_n"]
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    codes = arrays["size_codes"]
    path = folder / f"{prefix}.size_codes"
    path.unlink(missing_ok=True)
    state = FileState()
    for a in range(0, n, BUILD_BATCH):
        at = order[a : a + BUILD_BATCH]
        chunk = np.asarray(codes[flat_positions(starts, counts, at)], dtype=np.int32)
        state = mapped.append(path, chunk, state)
    mapped.sync(path)
    states["size_codes"] = state
    return states


def next_generation(folder: Path) -> int:
    gens = [int(p.name[1:].split(".", 1)[0]) for p in folder.glob("g*.*")
            if p.name[1:].split(".", 1)[0].isdigit()]
    return max(gens, default=0) + 1


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("g*.*") if p.is_file())
