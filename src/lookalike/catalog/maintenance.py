"""Checking and repairing a catalog folder: `check` lists every problem by kind, `repair` fixes
what can be fixed from what the folder still holds.

    report = check(Settings(catalog_dir="my-shop"))
    for kind, problems in report.by_kind().items(): ...
    repair(Settings(catalog_dir="my-shop"))       # then check again: report.remaining

Kinds of problem (`Problem.kind`):

- `database`: catalog.sqlite is missing, empty, not SQLite, truncated, or SQLite's integrity
  check fails on it. Repair copies every row it can still read into a new file (the damaged one
  is kept beside it as `catalog.sqlite.damaged-<time>`); an empty or non-SQLite file holds
  nothing to recover: restore a backup.
- `meta`: the recorded model or vector length is missing or disagrees with the stored vectors.
  Repair records the length the vectors have.
- `embedding`: a stored vector of the wrong length, with non-finite values or not of unit
  length; `missing-embedding`: an item without a vector; `orphan-embedding`: a vector without
  an item. Repair re-embeds the item from its image (when the file is there and still has the
  bytes it was ingested with), else drops the item; orphan vectors are dropped.
- `item`: an item row whose fields do not parse. Repair resets the broken fields (sizes, extra,
  predicted tags, timestamps) to their defaults, or drops the row when that is not enough.
- `image`: an item's image file is missing (or, with `image_hashes`, holds other bytes). Not
  repaired: the item stays searchable; restore the images or delete the item.
- `index`: the embedded vector store's files (`vectors/`) are damaged (a checksum fails),
  missing, or hold other vectors than SQLite (changes still in SQLite's change log are not
  counted: the next open applies them). Repair rebuilds them from SQLite (and otherwise brings
  them in step with what repair changed). A Milvus store (`vector_store`) is not checked here.
- `leftover` (a note, not an error): temp files of killed saves, uploaded images no item uses
  (an upload killed before its item was stored). Repair deletes them.

Repair rewrites the database: stop servers and ingests on the catalog first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.catalog.catalog import DB_FILE, require_sqlite
from lookalike.catalog.database import Connection
from lookalike.catalog.imagefiles import image_file
from lookalike.catalog.sketch import vector_sketches
from lookalike.catalog.store import (
    SCHEMA,
    CatalogStore,
    DamagedRowError,
    _row_to_item,
    file_damage,
    is_corruption,
    vector_problem,
)
from lookalike.config import Settings
from lookalike.encoders import Encoder, create
from lookalike.errors import CatalogCorruptError, ImageLoadError, LookalikeError
from lookalike.images import ImageLimits, content_hash, load_image, read_image_bytes
from lookalike.index.backends import open_vector_store
from lookalike.index.embedded import FOLDER as VECTOR_FOLDER
from lookalike.index.embedded import MANIFEST as VECTOR_MANIFEST
from lookalike.index.embedded import check_files

__all__ = [
    "KINDS",
    "CheckReport",
    "Problem",
    "RepairReport",
    "check",
    "repair",
]

log = logging.getLogger(__name__)

KINDS = (
    "database",
    "meta",
    "embedding",
    "missing-embedding",
    "orphan-embedding",
    "item",
    "image",
    "index",
    "leftover",
)
NOTES = frozenset({"leftover"})  # reported, but a catalog with only these is healthy
UNIT_TOLERANCE = 1e-3  # |‖v‖ - 1| above this: not a vector the encoder wrote
INTEGRITY_LINES = 100  # SQLite's integrity check stops after this many problems
UPLOADS = "uploads"  # where the API stores uploaded images (lookalike.api.uploads)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a catalog folder."""

    kind: str
    message: str
    item_id: str | None = None
    rowid: int | None = None
    file: str | None = None


@dataclass
class CheckReport:
    """What `check` found. `ok` when nothing but notes (`leftover`) was found."""

    folder: Path
    items: int = 0
    vectors: int = 0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(p.kind in NOTES for p in self.problems)

    def by_kind(self) -> dict[str, list[Problem]]:
        """Problems grouped by kind, in the order of `KINDS`."""
        out: dict[str, list[Problem]] = {}
        for kind in KINDS:
            found = [p for p in self.problems if p.kind == kind]
            if found:
                out[kind] = found
        return out

    def of(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "ok": self.ok,
            "items": self.items,
            "vectors": self.vectors,
            "seconds": round(self.seconds, 3),
            "problems": {k: [asdict(p) for p in v] for k, v in self.by_kind().items()},
        }


@dataclass
class RepairReport:
    """What `repair` did, and what `check` still finds afterwards."""

    folder: Path
    salvaged: dict[str, tuple[int, int]] = field(default_factory=dict)  # table → (kept, lost)
    damaged_copy: Path | None = None
    meta_fixed: list[str] = field(default_factory=list)
    reembedded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    fields_reset: list[str] = field(default_factory=list)
    orphan_vectors_dropped: int = 0
    leftovers_removed: list[str] = field(default_factory=list)
    index_rebuilt: bool = False  # the ANN files were written anew (not reused as saved)
    index_seconds: float = 0.0  # checking the index against SQLite, and rebuilding it
    remaining: CheckReport | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "salvaged": {t: {"kept": k, "lost": lost} for t, (k, lost) in self.salvaged.items()},
            "damaged_copy": None if self.damaged_copy is None else str(self.damaged_copy),
            "meta_fixed": self.meta_fixed,
            "reembedded": self.reembedded,
            "dropped": self.dropped,
            "fields_reset": self.fields_reset,
            "orphan_vectors_dropped": self.orphan_vectors_dropped,
            "leftovers_removed": self.leftovers_removed,
            "index_rebuilt": self.index_rebuilt,
            "index_seconds": round(self.index_seconds, 3),
            "remaining": None if self.remaining is None else self.remaining.as_dict(),
        }


# -- reading a possibly damaged database ----------------------------------------------------------


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def _integrity(conn: sqlite3.Connection) -> list[str]:
    lines = [str(r[0]) for r in conn.execute(f"PRAGMA integrity_check({INTEGRITY_LINES})")]
    return [] if lines == ["ok"] else lines


def _recorded_dim(conn: Connection) -> tuple[str | None, int | None]:
    row = conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
    raw = None if row is None else str(row[0])
    return raw, int(raw) if raw is not None and raw.isdigit() and int(raw) > 0 else None


def _vector_length(conn: Connection, recorded: int | None) -> int | None:
    """The length most stored vectors have (the recorded one on a tie), in floats."""
    counts = {
        int(k): int(v)
        for k, v in conn.execute("SELECT length(vector), count(*) FROM embeddings GROUP BY 1")
        if isinstance(k, int) and k > 0
    }
    if not counts:
        return recorded
    length = max(counts, key=lambda n: (counts[n], n == 4 * (recorded or 0), n))
    return length // 4 if length % 4 == 0 else recorded


def _true_dim(
    conn: Connection, settings: Settings, encoders: dict[str, Encoder]
) -> tuple[str | None, int | None, int | None]:
    """(recorded text, recorded length, true length). When the record and the majority of the
    stored vectors disagree, the catalog's model decides (it is loaded only then)."""
    raw, recorded = _recorded_dim(conn)
    majority = _vector_length(conn, recorded)
    if recorded is None or majority is None or recorded == majority:
        return raw, recorded, majority if majority is not None else recorded
    model = conn.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
    with contextlib.suppress(LookalikeError):
        name = str(model[0]) if model is not None else settings.model
        encoder = encoders.get(name) or create(name, settings)
        encoders[encoder.name] = encoder
        if encoder.dim in (recorded, majority):
            return raw, recorded, encoder.dim
    return raw, recorded, majority


# -- check -------------------------------------------------------------------------------------


def check(
    settings: Settings, *, image_hashes: bool = False, encoder: Encoder | None = None
) -> CheckReport:
    """Every problem of the catalog in `settings.catalog_dir` (reads only; writes nothing).
    `image_hashes` also reads every image to compare its bytes with the ingested ones. The
    catalog's model (`encoder`, else loaded by name) is only needed when the recorded vector
    length and the stored vectors disagree."""
    require_sqlite(settings, "check")
    started = time.perf_counter()
    folder = Path(settings.catalog_dir)
    report = CheckReport(folder)
    try:
        encoders = {} if encoder is None else {encoder.name: encoder}
        _check_into(report, settings, image_hashes, encoders)
    finally:
        report.seconds = time.perf_counter() - started
    return report


def _check_into(
    report: CheckReport, settings: Settings, image_hashes: bool, encoders: dict[str, Encoder]
) -> None:
    folder = report.folder
    path = folder / DB_FILE
    problems = report.problems
    problems.extend(_leftovers(folder))
    if not path.is_file():
        problems.append(Problem("database", f"{path}: no catalog database here", file=str(path)))
        return
    damage = file_damage(path)
    if damage:
        problems.append(Problem("database", f"{path}: {damage}", file=str(path)))
    try:
        with _read_only(path) as conn:
            for line in _integrity(conn):
                problems.append(Problem("database", f"{path}: {line}", file=str(path)))
            if any(p.kind == "database" for p in problems):
                return  # row checks on a damaged b-tree would only repeat the damage
            ids, vectors = _check_rows(conn, report, settings, image_hashes, encoders)
            problems.extend(_check_uploads(conn, folder))
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc) and not isinstance(exc, sqlite3.OperationalError):
            raise
        if not any(p.kind == "database" for p in problems):
            problems.append(Problem("database", f"{path}: unreadable ({exc})", file=str(path)))
        return
    _check_index(report, settings, ids, vectors)


def _check_rows(
    conn: sqlite3.Connection,
    report: CheckReport,
    settings: Settings,
    image_hashes: bool,
    encoders: dict[str, Encoder],
) -> tuple[np.ndarray, np.ndarray]:
    problems = report.problems
    path = report.folder / DB_FILE
    model = conn.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
    raw, recorded, dim = _true_dim(conn, settings, encoders)
    report.items = int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    if model is None and report.items:
        problems.append(Problem("meta", f"{path}: items exist but no model is recorded"))
    if dim is not None and recorded != dim:
        problems.append(Problem(
            "meta", f"{path}: the recorded vector length is {raw!r} but the stored vectors are "
            f"{dim}-d"))
    dim = dim or 0

    good_ids: list[int] = []
    good: list[bytes] = []
    for row in conn.execute(
        "SELECT e.item_rowid, e.vector, i.id FROM embeddings e "
        "LEFT JOIN items i ON i.rowid = e.item_rowid ORDER BY e.item_rowid"
    ):
        rowid, blob, item_id = int(row[0]), row[1], row[2]
        if item_id is None:
            problems.append(Problem("orphan-embedding", f"vector of rowid {rowid} has no item",
                                    rowid=rowid))
            continue
        problem = vector_problem(blob, dim)
        if problem is None:
            norm = float(np.linalg.norm(np.frombuffer(blob, dtype=np.float32)))
            if abs(norm - 1.0) > UNIT_TOLERANCE:
                problem = f"not of unit length (norm {norm:.4g})"
        if problem:
            problems.append(Problem("embedding", f"item {item_id!r}: embedding {problem}",
                                    item_id=item_id, rowid=rowid))
            continue
        good_ids.append(rowid)
        good.append(blob)
    report.vectors = len(good_ids)
    for row in conn.execute(
        "SELECT rowid, id FROM items WHERE rowid NOT IN (SELECT item_rowid FROM embeddings)"
    ):
        problems.append(Problem("missing-embedding", f"item {row[1]!r} has no embedding",
                                item_id=row[1], rowid=int(row[0])))

    for row in conn.execute("SELECT rowid, * FROM items ORDER BY rowid"):
        try:
            item = _row_to_item(row)
        except DamagedRowError as exc:
            problems.append(Problem("item", str(exc), item_id=row["id"], rowid=row["rowid"]))
            continue
        try:
            image = image_file(report.folder, item.image_path)
        except ImageLoadError as exc:
            problems.append(Problem("image", f"item {item.id!r}: image path {exc.reason}",
                                    item_id=item.id, rowid=item.rowid, file=item.image_path))
            continue
        if not image.is_file():
            problems.append(Problem("image", f"item {item.id!r}: image file missing",
                                    item_id=item.id, rowid=item.rowid, file=str(image)))
        elif image_hashes and content_hash(image.read_bytes()) != item.image_hash:
            problems.append(Problem("image", f"item {item.id!r}: the image file holds other "
                                    "bytes than the ones ingested", item_id=item.id,
                                    rowid=item.rowid, file=str(image)))
    ids = np.asarray(good_ids, dtype=np.int64)
    vectors = np.frombuffer(b"".join(good), dtype=np.float32).reshape(len(good), dim)
    return ids, vectors


def _check_index(
    report: CheckReport, settings: Settings, ids: np.ndarray, vectors: np.ndarray
) -> None:
    folder = report.folder
    if settings.vector_store.strip() != "embedded":
        return  # another server keeps the vectors
    skip = np.asarray([p.rowid for p in report.problems
                       if p.rowid is not None and p.kind in ("embedding", "orphan-embedding")],
                      dtype=np.int64)
    with _read_only(folder / DB_FILE) as conn:
        found = check_files(folder, vectors.shape[1], _ChangeLog(conn), ids, vectors, skip)
    for message in found:
        report.problems.append(Problem("index", f"{message} (rebuilt at the next open, or by "
                                       "`lookalike repair`)",
                                       file=str(folder / VECTOR_FOLDER / VECTOR_MANIFEST)))


class _ChangeLog:
    """The vector files' change log, read through a read-only connection (a catalog made
    before the log has none: nothing pending)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def change_seq(self) -> int:
        try:
            row = self.conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'vector_changes'").fetchone()
        except sqlite3.OperationalError:
            return 0
        return 0 if row is None else int(row[0])

    def changes(self, since: int) -> tuple[NDArray[np.int64], NDArray[np.int64],
                                           NDArray[np.int64]]:
        try:
            rows = self.conn.execute("SELECT seq, item_rowid, kind FROM vector_changes "
                                     "WHERE seq > ? ORDER BY seq", (since,)).fetchall()
        except sqlite3.OperationalError:
            rows = []
        table = np.asarray([tuple(r) for r in rows], dtype=np.int64).reshape(-1, 3)
        return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()


def _leftovers(folder: Path) -> list[Problem]:
    found = [
        *folder.glob("*.tmp"),
        *(folder / VECTOR_FOLDER).glob("*.tmp"),
        *(p for p in folder.glob(f"{DB_FILE}.*.new*")),
        *(p for p in (folder / UPLOADS).glob(".upload-*")),
    ]
    return [Problem("leftover", f"{p}: temp file of a killed save", file=str(p))
            for p in sorted(found) if p.is_file()]


def _check_uploads(conn: sqlite3.Connection, folder: Path) -> list[Problem]:
    uploads = folder / UPLOADS
    if not uploads.is_dir():
        return []
    used = set()
    for (stored,) in conn.execute("SELECT image_path FROM items"):
        with contextlib.suppress(ImageLoadError, OSError):
            used.add(str(image_file(folder, stored).resolve()))
    return [
        Problem("leftover", f"{p}: uploaded image that no item uses", file=str(p))
        for p in sorted(uploads.iterdir())
        if p.is_file() and not p.name.startswith(".") and str(p.resolve()) not in used
    ]


# -- repair ------------------------------------------------------------------------------------


def repair(
    settings: Settings, *, reembed: bool = True, encoder: Encoder | None = None
) -> RepairReport:
    """Fix what `check` finds, from what the folder still holds (see the module's docstring);
    `reembed=False` drops items with a damaged vector instead of re-embedding them. Returns
    what was done and, in `remaining`, what a new check still finds."""
    require_sqlite(settings, "repair")
    folder = Path(settings.catalog_dir)
    path = folder / DB_FILE
    report = RepairReport(folder)
    if not path.is_file():
        raise LookalikeError(f"{path}: no catalog database here: nothing to repair")
    found = check(settings, encoder=encoder)
    if found.of("database"):
        _salvage_into_place(path, report)
        found = check(settings, encoder=encoder)
    encoders = {} if encoder is None else {encoder.name: encoder}
    store = CatalogStore(path)
    try:
        _repair_meta(store, report, settings, encoders)
        _repair_rows(store, found, report, settings, reembed, encoders)
        for problem in found.of("leftover"):
            if problem.file:
                Path(problem.file).unlink(missing_ok=True)
                report.leftovers_removed.append(problem.file)
        started = time.perf_counter()
        report.index_rebuilt = _repair_vector_files(folder, store, settings,
                                                    bool(found.of("index")))
        report.index_seconds = time.perf_counter() - started
    finally:
        store.close()
    report.remaining = check(settings, encoder=encoder)
    return report


def _repair_vector_files(
    folder: Path, store: CatalogStore, settings: Settings, damaged: bool
) -> bool:
    """Rebuild the vector files from SQLite when `damaged`, else bring them in step with it
    (what repair changed is in the change log); True when they were written anew."""
    dim = store.dim
    if not dim or settings.vector_store.strip() != "embedded":
        return False
    files = folder / VECTOR_FOLDER
    if damaged:
        shutil.rmtree(files, ignore_errors=True)
    before = _generation(files)
    open_vector_store(settings, folder, dim, store).close()
    return damaged or _generation(files) != before


def _generation(files: Path) -> int | None:
    try:
        return int(json.loads((files / VECTOR_MANIFEST).read_text())["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _repair_meta(
    store: CatalogStore, report: RepairReport, settings: Settings, encoders: dict[str, Encoder]
) -> None:
    with store.connection() as conn:
        raw, recorded, length = _true_dim(conn, settings, encoders)
    if length is not None and length != recorded:
        store.set_meta("dim", str(length))
        report.meta_fixed.append(f"dim {raw!r} → {length}")
    if store.model_name is None and store.count():
        enc = _encoder(encoders, settings.model, settings)
        if store.dim not in (None, enc.dim):
            raise CatalogCorruptError(
                str(store.path), f"no model is recorded and the vectors are {store.dim}-d, not "
                f"those of {enc.name!r} ({enc.dim}-d): give the catalog's model with --model")
        store.set_meta("model", enc.name)
        report.meta_fixed.append(f"model → {enc.name}")


def _encoder(encoders: dict[str, Encoder], name: str, settings: Settings) -> Encoder:
    if name not in encoders:
        encoder = create(name, settings)
        encoders[name] = encoders[encoder.name] = encoder
    return encoders[name]


def _repair_rows(
    store: CatalogStore,
    found: CheckReport,
    report: RepairReport,
    settings: Settings,
    reembed: bool,
    encoders: dict[str, Encoder],
) -> None:
    for problem in found.of("item"):
        assert problem.rowid is not None
        _reset_fields(store, problem.rowid, report)
    with store.transaction() as conn:
        for problem in found.of("orphan-embedding"):
            conn.execute("DELETE FROM embeddings WHERE item_rowid = ?", (problem.rowid,))
            report.orphan_vectors_dropped += 1
    limits = ImageLimits(settings.max_image_pixels, settings.max_image_bytes)
    for problem in found.of("embedding") + found.of("missing-embedding"):
        assert problem.rowid is not None and problem.item_id is not None
        with store.connection() as conn:
            row = conn.execute("SELECT image_path, image_hash FROM items WHERE rowid = ?",
                               (problem.rowid,)).fetchone()
        vector = None
        if reembed and row is not None:
            enc = _encoder(encoders, store.model_name or settings.model, settings)
            store.bind_model(enc.name, enc.dim)
            with contextlib.suppress(ImageLoadError):
                vector = _embed(enc, image_file(Path(settings.catalog_dir), row[0]), str(row[1]),
                                limits)
        with store.transaction() as conn:
            if vector is None:
                conn.execute("DELETE FROM embeddings WHERE item_rowid = ?", (problem.rowid,))
                conn.execute("DELETE FROM items WHERE rowid = ?", (problem.rowid,))
                report.dropped.append(problem.item_id)
            else:
                conn.execute(
                    "INSERT INTO embeddings (item_rowid, vector) VALUES (?, ?) "
                    "ON CONFLICT (item_rowid) DO UPDATE SET vector = excluded.vector",
                    (problem.rowid, vector.tobytes()),
                )
                conn.execute("UPDATE items SET sketch = ? WHERE rowid = ?",
                             (vector_sketches(vector.reshape(1, -1))[0].tobytes(),
                              problem.rowid))
                report.reembedded.append(problem.item_id)


def _embed(
    encoder: Encoder, image: Path, image_hash: str, limits: ImageLimits
) -> NDArray[np.float32] | None:
    """The image's vector, or None when the file is gone, unreadable or not the ingested one."""
    try:
        data = read_image_bytes(image, limits)
        if content_hash(data) != image_hash:
            log.warning("%s holds other bytes than the ones ingested: not re-embedded", image)
            return None
        vector: NDArray[np.float32] = encoder.encode_images(
            [load_image(data, limits=limits, name=str(image))])[0]
        return vector
    except ImageLoadError as exc:
        log.warning("cannot re-embed: %s", exc)
        return None


_FIELD_DEFAULTS = {"sizes": "[]", "extra": "{}", "predicted": "{}"}


def _reset_fields(store: CatalogStore, rowid: int, report: RepairReport) -> None:
    """Reset an item's unparsable fields to their defaults; drop the row if that is not
    enough."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    with store.transaction() as conn:
        row = conn.execute("SELECT rowid, * FROM items WHERE rowid = ?", (rowid,)).fetchone()
        if row is None:
            return
        for name, default in _FIELD_DEFAULTS.items():
            try:
                json.loads(row[name])
            except (TypeError, ValueError):
                conn.execute(f"UPDATE items SET {name} = ? WHERE rowid = ?", (default, rowid))
                report.fields_reset.append(f"{row['id']}.{name}")
        for name in ("created_at", "updated_at"):
            try:
                datetime.fromisoformat(row[name])
            except (TypeError, ValueError):
                conn.execute(f"UPDATE items SET {name} = ? WHERE rowid = ?", (now, rowid))
                report.fields_reset.append(f"{row['id']}.{name}")
        fixed = conn.execute("SELECT rowid, * FROM items WHERE rowid = ?", (rowid,)).fetchone()
        try:
            _row_to_item(fixed)
        except DamagedRowError:
            conn.execute("DELETE FROM embeddings WHERE item_rowid = ?", (rowid,))
            conn.execute("DELETE FROM items WHERE rowid = ?", (rowid,))
            report.dropped.append(str(row["id"]))


# -- salvage -----------------------------------------------------------------------------------

_CHUNK = 256
_GIVE_UP_AFTER = 64  # consecutive unreadable chunks past the last readable row


def _salvage_into_place(path: Path, report: RepairReport) -> None:
    """Copy every readable row of the damaged database at `path` into a new file and swap it
    in; the damaged file (and its WAL) is kept as `<name>.damaged-<time>`."""
    damage = file_damage(path)
    if damage and not damage.startswith("truncated"):
        raise CatalogCorruptError(
            str(path), f"{damage}: nothing can be recovered from it; restore a backup")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    fresh = path.with_name(f"{path.name}.salvage-{stamp}")
    work = path.with_name(f"{path.name}.salvage-{stamp}-source")
    for suffix in ("", "-wal"):  # read a copy: the damaged file stays exactly as it was
        if path.with_name(path.name + suffix).exists():
            shutil.copyfile(path.with_name(path.name + suffix), work.with_name(work.name + suffix))
    try:
        _pad_to_header_size(work)
        fresh.unlink(missing_ok=True)
        salvaged = _salvage(work, fresh)
    finally:
        for suffix in ("", "-wal", "-shm"):
            work.with_name(work.name + suffix).unlink(missing_ok=True)
    if not sum(kept for kept, _ in salvaged.values()):
        fresh.unlink(missing_ok=True)
        raise CatalogCorruptError(
            str(path), f"{damage or 'damaged'}: no row could be read from it; restore a backup")
    report.salvaged = salvaged
    damaged = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        old = path.with_name(path.name + suffix)
        if old.exists():
            old.replace(damaged.with_name(damaged.name + suffix))
    fresh.replace(path)
    report.damaged_copy = damaged


def _pad_to_header_size(path: Path) -> None:
    """Extend a truncated database file with zeros to the size its header records: SQLite
    refuses a whole file whose tables' root pages lie past its end, but reads the other
    tables of a padded one (the zeroed pages read as damage, met only where they are)."""
    with path.open("rb+") as f:
        header = f.read(100)
        if len(header) < 100:
            return
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        size = f.seek(0, 2)
        whole = max(int.from_bytes(header[28:32], "big"), -(-size // page_size)) * page_size
        if size < whole:
            f.truncate(whole)


def _salvage(damaged: Path, out: Path) -> dict[str, tuple[int, int]]:
    from lookalike.users import SCHEMA as USERS_SCHEMA  # users keep their tables in this file

    counts: dict[str, tuple[int, int]] = {}
    dst = sqlite3.connect(str(out), isolation_level=None)
    try:
        with _read_only(damaged) as src:
            try:
                schema = src.execute(
                    "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                    "AND name NOT LIKE 'sqlite_%'").fetchall()
            except sqlite3.DatabaseError:
                schema = []
            dst.executescript(_tables_only(SCHEMA) + _tables_only(USERS_SCHEMA))
            for kind, _, sql in schema:
                if kind == "table":
                    with contextlib.suppress(sqlite3.Error):
                        dst.execute(sql.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1))
            tables = [r[0] for r in dst.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'")]
            for table in tables:
                counts[table] = _copy_table(src, dst, table)
            for kind, _, sql in schema:
                if kind in ("index", "trigger"):
                    with contextlib.suppress(sqlite3.Error):
                        dst.execute(sql)
        dst.executescript(SCHEMA + USERS_SCHEMA)  # anything the damage took
        dst.execute("PRAGMA journal_mode=WAL")
    finally:
        dst.close()
    return counts


def _tables_only(script: str) -> str:
    return "".join(s + ";" for s in script.split(";") if "CREATE TABLE" in s)


def _copy_table(
    src: sqlite3.Connection, dst: sqlite3.Connection, table: str
) -> tuple[int, int]:
    """Copy the rows of `table` readable in `src`: chunk by chunk in rowid order, row by row
    where a chunk meets damage. Returns (rows copied, rows known lost)."""
    info = list(dst.execute(f'PRAGMA table_info("{table}")'))
    pk = [r for r in info if r[5]]
    alias = pk[0][1] if len(pk) == 1 and str(pk[0][2]).upper() == "INTEGER" else None
    columns = [r[1] for r in info if r[1] != alias]  # the rowid alias travels as _rowid_
    with contextlib.suppress(sqlite3.Error):  # a catalog older than a column lacks it
        have = {r[1] for r in src.execute(f'PRAGMA table_info("{table}")')}
        if have:
            columns = [c for c in columns if c in have]
    names = "".join(f', "{c}"' for c in columns)
    select = f'SELECT _rowid_{names} FROM "{table}"'
    insert = (f'INSERT OR IGNORE INTO "{table}" (_rowid_{names}) '
              f"VALUES ({', '.join('?' * (len(columns) + 1))})")
    try:
        expected = int(src.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    except sqlite3.Error:
        expected = -1
    try:
        last = src.execute(f'SELECT max(_rowid_) FROM "{table}"').fetchone()[0]
    except sqlite3.Error:
        last = None
    copied, after, misses = 0, -(2**63), 0
    dst.execute("BEGIN")
    while True:
        try:
            rows = src.execute(f"{select} WHERE _rowid_ > ? ORDER BY _rowid_ LIMIT {_CHUNK}",
                               (after,)).fetchall()
        except sqlite3.Error:  # damage within the next chunk: probe its rowids one by one
            start = max(after, 0)
            rows = []
            for rowid in range(start + 1, start + 1 + _CHUNK):
                with contextlib.suppress(sqlite3.Error):
                    rows += src.execute(f"{select} WHERE _rowid_ = ?", (rowid,)).fetchall()
            after = start + _CHUNK
            misses = 0 if rows else misses + 1
            done = (last is not None and after >= int(last)) or misses >= _GIVE_UP_AFTER
        else:
            done = not rows
            if rows:
                after = int(rows[-1][0])
        dst.executemany(insert, [tuple(r) for r in rows])
        copied += len(rows)
        if done:
            break
    dst.execute("COMMIT")
    lost = max(0, expected - copied) if expected >= 0 else 0
    if expected < 0 or lost:
        log.warning("salvaged %d rows of %s (%s lost)", copied, table,
                    lost if expected >= 0 else "an unknown number")
    return copied, lost
