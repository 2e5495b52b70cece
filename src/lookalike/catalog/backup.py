"""Backups of a catalog folder, taken while servers keep writing to it, and restoring them.

    backup(Settings(catalog_dir="my-shop"), Path("backups/monday"), images=True)
    restore(Path("backups/monday"), Settings(catalog_dir="my-shop-restored"))

A backup is a folder:

- `catalog.sqlite`: SQLite's online backup of the whole database (items, embeddings, users,
  sessions, swipes, preferences): one consistent snapshot, read in a single transaction while
  other processes go on writing (in WAL mode a reader never blocks a writer), then checked with
  SQLite's integrity check. Stored in rollback-journal mode: one self-contained file.
- `vectors/`: the embedded vector store's files of exactly that snapshot: the source's files
  (copied under the store's write lock), then brought in step with the snapshot through its
  change log, or rebuilt from it. The restored catalog searches at once instead of rebuilding
  them (see docs/guide/maintenance.md for the times); a restore checks every file's checksum
  and rebuilds the files from the database if one fails. (A Milvus store is not backed up.)
- with `images=True`, `images/` and `uploads/`: every item's image file, named by its content
  hash (uploads keep their content-addressed names); restore points the items at the copies, so
  the backup can be restored on another machine. Without it, items keep pointing at the image
  files where they are (fine for a restore on the same machine).
- `backup.json`, written last: what the backup holds and the size and SHA-256 of every file.
  A folder without it is an unfinished backup; restore refuses it, and any file that does not
  match.

The backup is built in a hidden folder beside `dest` and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lookalike.catalog.catalog import DB_FILE, require_sqlite
from lookalike.catalog.imagefiles import image_file
from lookalike.catalog.store import CatalogStore, file_damage
from lookalike.config import Settings
from lookalike.errors import CatalogCorruptError, ImageLoadError, LookalikeError
from lookalike.images import content_hash
from lookalike.index.backends import open_vector_store
from lookalike.index.embedded import FOLDER as VECTORS
from lookalike.index.embedded import MANIFEST as VECTORS_MANIFEST
from lookalike.index.embedded import copy_files

__all__ = ["MANIFEST", "BackupError", "BackupReport", "RestoreReport", "backup", "restore"]

MANIFEST = "backup.json"
FORMAT = 1
IMAGES = "images"
UPLOADS = "uploads"  # where the API stores uploaded images (lookalike.api.uploads)


class BackupError(LookalikeError):
    """A backup cannot be made or restored (bad destination, unfinished or damaged backup)."""


@dataclass
class BackupReport:
    dest: Path
    items: int = 0
    users: int = 0
    swipes: int = 0
    index: bool = False  # the backup carries the vector store's files
    images: int = 0  # image files copied
    images_missing: list[str] = field(default_factory=list)  # item ids whose file was gone
    bytes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in vars(self).items() if k != "dest"}, "dest": str(self.dest),
                "seconds": round(self.seconds, 3)}


@dataclass
class RestoreReport:
    folder: Path
    items: int = 0
    users: int = 0
    swipes: int = 0
    images: int = 0
    replaced: Path | None = None  # where the catalog that was there before was moved
    copy_seconds: float = 0.0
    open_seconds: float = 0.0  # opening the restored catalog, ready to search
    index_reused: bool = False  # the backup's index was used as it is (not rebuilt)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k not in ("folder", "replaced")}
        return {**out, "folder": str(self.folder),
                "replaced": None if self.replaced is None else str(self.replaced),
                "copy_seconds": round(self.copy_seconds, 3),
                "open_seconds": round(self.open_seconds, 3)}


def _count(conn: sqlite3.Connection, table: str) -> int:
    try:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    except sqlite3.OperationalError:  # a catalog no user ever visited has no users table
        return 0


def _fsync(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def _copy(src: Path, dest: Path) -> None:
    """Copy through a temp file, fsync, rename: `dest` is whole or absent."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        _fsync(tmp)
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_json(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True))
    _fsync(tmp)
    tmp.replace(path)


# -- backup -------------------------------------------------------------------------------------


def backup(settings: Settings, dest: Path, *, images: bool = False) -> BackupReport:
    """Back up the catalog in `settings.catalog_dir` into the new folder `dest` (see the
    module's docstring). Safe while servers and ingests write to the catalog."""
    require_sqlite(settings, "backup")
    started = time.perf_counter()
    folder = Path(settings.catalog_dir)
    source = folder / DB_FILE
    dest = Path(dest)
    if not source.is_file():
        raise BackupError(f"{source}: no catalog database here to back up")
    damage = file_damage(source)
    if damage:
        raise CatalogCorruptError(str(source), damage)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not empty: back up into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    report = BackupReport(dest)
    try:
        if settings.vector_store.strip() == "embedded":
            # before the snapshot: files behind it catch up through its change log, while
            # files ahead of it would have to be rebuilt
            copy_files(folder, work)
        _snapshot(source, work / DB_FILE)
        _index_for(work, settings, report)
        files = {DB_FILE: work / DB_FILE}
        if report.index:
            files |= {f"{VECTORS}/{p.name}": p for p in sorted((work / VECTORS).iterdir())
                      if p.is_file()}
        image_map: dict[str, str] = {}
        if images:
            image_map = _copy_images(work, folder, report)
        with contextlib.closing(sqlite3.connect(work / DB_FILE)) as conn:
            report.items = _count(conn, "items")
            report.users = _count(conn, "users")
            report.swipes = _count(conn, "swipes")
        listed: dict[str, dict[str, Any]] = {
            name: {"size": p.stat().st_size, "sha256": file_sha256(p)}
            for name, p in files.items()
        }
        for rel in image_map.values():
            listed[rel] = {"size": (work / rel).stat().st_size,
                           "sha256": content_hash((work / rel).read_bytes())}
        report.bytes = sum(int(v["size"]) for v in listed.values())
        _write_json(work / MANIFEST, {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": str(folder.resolve()),
            "items": report.items,
            "users": report.users,
            "swipes": report.swipes,
            "index": report.index,
            "images": image_map,  # image hash → file in the backup
            "files": listed,
        })
        if dest.exists():
            dest.rmdir()  # empty, checked above
        work.replace(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - started
    return report


def _snapshot(source: Path, out: Path) -> None:
    """SQLite's online backup of `source` into `out`, in one step (one read transaction: a
    consistent snapshot, whatever other processes commit meanwhile), then checked."""
    with (
        contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)) as src,
        contextlib.closing(sqlite3.connect(out, isolation_level=None)) as dst,
    ):
        try:
            src.backup(dst)
        except sqlite3.DatabaseError as exc:
            raise CatalogCorruptError(str(source), f"cannot be read to back up ({exc})") from None
        problems = [r[0] for r in dst.execute("PRAGMA integrity_check(10)")]
        if problems != ["ok"]:
            raise CatalogCorruptError(
                str(source), f"its copy fails SQLite's integrity check: {'; '.join(problems)}"
            )
        dst.execute("PRAGMA journal_mode=DELETE")  # a backup at rest is one file
    _fsync(out)


def _index_for(work: Path, settings: Settings, report: BackupReport) -> None:
    """The vector files of the snapshot in `work`, started from the source's (copied under
    their write lock, before the snapshot) so that only what changed since is redone: opening
    them on the snapshot applies its change log, or rebuilds them (a gap in the log, a failed
    checksum)."""
    if settings.vector_store.strip() != "embedded":
        return
    store = CatalogStore(work / DB_FILE)
    try:
        dim = store.dim
        if not dim:
            return
        open_vector_store(settings, work, dim, store).close()
    finally:
        store.close()
    files = work / VECTORS
    for leftover in ("lock", "checked.json"):  # per machine: a restore checks every file
        (files / leftover).unlink(missing_ok=True)
    report.index = (files / VECTORS_MANIFEST).is_file()


def _copy_images(work: Path, folder: Path, report: BackupReport) -> dict[str, str]:
    uploads = (folder / UPLOADS).resolve()
    image_map: dict[str, str] = {}
    with contextlib.closing(sqlite3.connect(work / DB_FILE)) as conn:
        rows = conn.execute("SELECT id, image_path, image_hash FROM items").fetchall()
    for item_id, image_path, image_hash in rows:
        try:
            src = image_file(folder, image_path)
            if src.parent.resolve() == uploads:
                rel = f"{UPLOADS}/{src.name}"
            else:
                rel = f"{IMAGES}/{image_hash[:32]}{src.suffix.lower()}"
            _copy(src, work / rel)
        except (OSError, ImageLoadError):
            report.images_missing.append(str(item_id))
            continue
        image_map[str(image_hash)] = rel
        report.images += 1
    return image_map


# -- restore ------------------------------------------------------------------------------------


def _read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    if not path.is_file():
        raise BackupError(f"{source}: not a finished backup (no {MANIFEST})")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path}: unreadable ({exc})") from None
    if manifest.get("format") != FORMAT or DB_FILE not in manifest.get("files", {}):
        raise BackupError(f"{path}: not a lookalike backup of format {FORMAT}")
    for name, expected in manifest["files"].items():
        file = source / name
        if not file.is_file():
            raise BackupError(f"{file}: missing from the backup")
        if file.stat().st_size != expected["size"] or file_sha256(file) != expected["sha256"]:
            raise BackupError(f"{file}: does not match its checksum in {MANIFEST}")
    return manifest


def restore(source: Path, settings: Settings, *, force: bool = False) -> RestoreReport:
    """Restore the backup in `source` into `settings.catalog_dir`: a new or empty folder, or,
    with `force`, one holding a catalog (whose files are moved to `replaced-<time>/` inside
    it, never deleted). Every file is checked against the backup's manifest first. No server
    may be running on the target folder."""
    require_sqlite(settings, "restore")
    started = time.perf_counter()
    source = Path(source)
    manifest = _read_manifest(source)
    target = Path(settings.catalog_dir)
    report = RestoreReport(target)
    if (target / DB_FILE).exists():
        if not force:
            raise BackupError(f"{target} holds a catalog: restore into a new folder, or force "
                              "it (the current catalog is moved aside, not deleted)")
        report.replaced = _move_aside(target)
    target.mkdir(parents=True, exist_ok=True)

    restored = target / f".{DB_FILE}.{os.getpid()}.restoring"
    shutil.copyfile(source / DB_FILE, restored)
    try:
        image_map: dict[str, str] = manifest.get("images", {})
        for rel in image_map.values():
            _copy(source / rel, target / rel)
        report.images = len(image_map)
        with contextlib.closing(sqlite3.connect(restored, isolation_level=None)) as conn:
            conn.executemany(
                "UPDATE items SET image_path = ? WHERE image_hash = ?",
                [(rel, h) for h, rel in image_map.items()],  # relative: the folder may move
            )
            report.items = _count(conn, "items")
            report.users = _count(conn, "users")
            report.swipes = _count(conn, "swipes")
        _fsync(restored)
        if manifest.get("index"):
            shutil.rmtree(target / VECTORS, ignore_errors=True)
            names = [n for n in manifest["files"] if n.startswith(f"{VECTORS}/")]
            for name in sorted(names, key=lambda n: n.endswith(f"/{VECTORS_MANIFEST}")):
                _copy(source / name, target / name)  # the manifest last: it names the rest
        restored.replace(target / DB_FILE)
    except BaseException:
        restored.unlink(missing_ok=True)
        raise
    report.copy_seconds = time.perf_counter() - started

    opened = time.perf_counter()
    saved = _generation(target)
    store = CatalogStore(target / DB_FILE)
    try:
        dim = store.dim
        if dim and settings.vector_store.strip() == "embedded":
            open_vector_store(settings, target, dim, store).close()  # checks every file
    finally:
        store.close()
    report.open_seconds = time.perf_counter() - opened
    report.index_reused = saved is not None and _generation(target) == saved
    return report


def _generation(catalog: Path) -> int | None:
    """The vector files' generation (a rebuild makes a new one), None without files."""
    try:
        return int(json.loads((catalog / VECTORS / VECTORS_MANIFEST).read_text())["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _move_aside(target: Path) -> Path:
    stamp = f"replaced-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    aside = target / stamp
    for n in itertools.count(2):  # two restores within a second each keep what they replaced
        try:
            aside.mkdir()
            break
        except FileExistsError:
            aside = target / f"{stamp}-{n}"
    for name in (DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm", VECTORS):
        if (target / name).exists():
            (target / name).replace(aside / name)
    return aside
