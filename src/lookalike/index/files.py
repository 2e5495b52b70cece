"""Index files that prove their own content: written atomically, checked before use.

An index is a cache of SQLite, saved as one or more data files plus a small JSON manifest
that lists each file's size and SHA-256 and the index's own metadata:

    write_files(folder, "index.json", {"index.faiss": ann.save}, {"dim": 256, ...})
    with read_files(folder, "index.json") as meta:   # IndexFileError if anything differs
        ann = HnswIndex.load(folder / "index.faiss")

Every data file and then the manifest are written to temp files, fsynced and checksummed, and
only then renamed into place, the manifest last. A crash at any moment leaves the old set, the
new set, or (killed between two renames) new data files that do not match the old manifest:
rejected, then rebuilt by the caller; never a file silently used with other content.

Saves take an exclusive lock on the folder's lock file and reads a shared one, so two
processes saving at once cannot interleave their files and a reader never checks one file and
then opens another writer's. The locks are `flock` locks: the kernel drops them
when a process dies, so a killed writer never blocks the others; the temp files a killed save
leaves are deleted by the next save.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from lookalike.errors import LookalikeError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS: saves are not serialised
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "IndexFileError",
    "file_identity",
    "file_sha256",
    "read_files",
    "remove_files",
    "verify_files",
    "write_files",
]

FORMAT = 1
_TMP_SUFFIX = ".tmp"


class IndexFileError(LookalikeError):
    """An index file is missing, unreadable or not the content its manifest describes."""


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of a file, None if absent: an atomic save replaces the file, so both
    change; equal identities mean the file was not rewritten in between."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


@contextlib.contextmanager
def _locked(folder: Path, manifest: str, *, exclusive: bool) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f".{manifest}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_of(path: Path) -> Path:
    """The temp name carries the pid: another process may be saving beside us (it waits on
    the lock, but a killed one may have left its temp file)."""
    return path.with_name(f"{path.name}.{os.getpid()}{_TMP_SUFFIX}")


def _write_temp(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` and fsync; the temp file, not yet in place."""
    tmp = _temp_of(path)
    try:
        write(tmp)
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_temp_files(folder: Path, name: str) -> None:
    """Temp files of saves killed midway (`<name>.<pid>.tmp...`): as large as the file they
    were to replace, so they are not left to pile up, crash after crash."""
    for tmp in folder.glob(f"{name}.*{_TMP_SUFFIX}"):
        pid = tmp.name[len(name) + 1 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def write_files(
    folder: Path,
    manifest: str,
    files: Mapping[str, Callable[[Path], object]],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """Write each data file through its writer (given the temp path to write), then the
    manifest: `meta` plus the size and SHA-256 of every file. Returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    if "files" in meta or "format" in meta:
        raise ValueError("'files' and 'format' are the manifest's own keys")
    with _locked(folder, manifest, exclusive=True):
        for name in (*files, manifest):
            _remove_dead_temp_files(folder, name)
        temps: dict[str, Path] = {}
        try:
            # everything written, synced and checksummed before anything is renamed: only
            # the few renames below separate the old set from the new one
            for name, write in files.items():
                temps[name] = _write_temp(folder / name, write)
            listed = {
                name: {"size": tmp.stat().st_size, "sha256": file_sha256(tmp)}
                for name, tmp in temps.items()
            }
            document = {**meta, "format": FORMAT, "files": listed}
            text = json.dumps(document, indent=1, sort_keys=True)
            temps[manifest] = _write_temp(folder / manifest, lambda tmp: tmp.write_text(text))
            for name, tmp in temps.items():  # the manifest last: it vouches for the others
                tmp.replace(folder / name)
        except BaseException:
            for tmp in temps.values():
                tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(folder)
    return document


def verify_files(folder: Path, manifest: str) -> dict[str, Any]:
    """The manifest, once it and every file it lists are present and match (size, then
    SHA-256); raises IndexFileError naming the first file that does not. Takes no lock (see
    `read_files`)."""
    path = folder / manifest
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise IndexFileError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise IndexFileError(f"{path}: unreadable ({exc})") from None
    files = document.get("files") if isinstance(document, dict) else None
    if document.get("format") != FORMAT or not isinstance(files, dict) or not files:
        raise IndexFileError(f"{path}: not an index manifest of format {FORMAT}")
    for name, expected in files.items():
        data = folder / name
        if Path(name).name != name or not isinstance(expected, dict):
            raise IndexFileError(f"{path}: bad entry {name!r}")
        try:
            size = data.stat().st_size
        except FileNotFoundError:
            raise IndexFileError(f"{data}: missing (listed in {manifest})") from None
        if size != expected.get("size"):
            raise IndexFileError(f"{data}: {size} bytes, {manifest} says {expected.get('size')}")
        if file_sha256(data) != expected.get("sha256"):
            raise IndexFileError(f"{data}: content does not match the checksum in {manifest}")
    return dict(document)


@contextlib.contextmanager
def read_files(folder: Path, manifest: str) -> Iterator[dict[str, Any]]:
    """Verified manifest (see `verify_files`), with a shared lock held for the block: open
    (or memory-map) the files inside it, and no save can replace them between the check and
    the open. Do not save from inside the block (the save would wait for this very lock)."""
    with _locked(folder, manifest, exclusive=False):
        yield verify_files(folder, manifest)


def remove_files(folder: Path, manifest: str, names: tuple[str, ...] = ()) -> list[Path]:
    """Delete the manifest, the files it lists (when readable), `names`, and temp files left by
    killed saves of any of them; returns what was deleted."""
    targets = {folder / manifest, *(folder / n for n in names)}
    with contextlib.suppress(OSError, ValueError, AttributeError):
        listed = json.loads((folder / manifest).read_text()).get("files", {})
        targets |= {folder / n for n in listed if Path(n).name == n}
    removed: list[Path] = []
    with _locked(folder, manifest, exclusive=True):
        for target in sorted(targets):
            leftovers = folder.glob(f"{target.name}.*{_TMP_SUFFIX}")
            for path in [target, *leftovers]:
                if path.is_file():
                    path.unlink()
                    removed.append(path)
    return removed
