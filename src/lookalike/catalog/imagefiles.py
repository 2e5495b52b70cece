"""Where a catalog's item photos live, and how their paths are stored.

A catalog folder is self-contained when its photos are inside it: `images/` (photos copied on
ingest when `Settings.copy_images` is on, and photos a backup restores), `uploads/` (photos
sent through the API). Paths inside the catalog folder are stored relative to it (POSIX
form, e.g. `images/3f…9a.jpg`), so the folder can be moved, copied or restored elsewhere and
its photos still found. A photo outside the folder (an ingest from the shop's own photo folder
without copying) is stored by its absolute path, as every path was before: such paths are
still read as they are.

Reading a stored relative path resolves it inside the catalog folder, links included; a path
that leads outside (a `..`, a link pointing away) is refused, never opened.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from lookalike.catalog.schema import OUTSIDE
from lookalike.errors import ImageLoadError

__all__ = [
    "IMAGES",
    "UPLOADS",
    "StoredPaths",
    "copy_image",
    "image_file",
    "stored_path",
    "write_file",
]

#: The catalog's own photo folders (inside the catalog folder).
IMAGES = "images"
UPLOADS = "uploads"


def stored_path(folder: Path, path: Path) -> str:
    """What to store for the photo at `path`: relative to the catalog `folder` (POSIX form)
    when it lies inside it, else its absolute path."""
    return StoredPaths(folder)(path)


class StoredPaths:
    """`stored_path` for the many photos of one ingest: the catalog folder resolved once.

    `paths(path, resolved=True)` takes the word of whoever resolved `path` (the ingest's
    engine resolves every photo's path, links included, before it opens the file) and only
    compares text; a path that does not look resolved (relative, or with `.`, `..` or `//`
    in it) is resolved anyway, so a stored relative path never leads out of the folder. A
    resolve per photo cost the writer a fifth of its time (two per photo, folder included)."""

    def __init__(self, folder: Path) -> None:
        self.root = Path(folder).resolve()
        root = str(self.root)
        self._prefix = root if root.endswith(os.sep) else root + os.sep  # "<root>/"

    def __call__(self, path: Path | str, *, resolved: bool = False) -> str:
        text = os.fspath(path)
        # text only, no pathlib object: this runs for every photo of an ingest
        if not (resolved and os.path.isabs(text)  # noqa: PTH117
                and os.path.normpath(text) == text):
            text = str(Path(text).resolve())
        if text.startswith(self._prefix) and len(text) > len(self._prefix):
            return _posix(text[len(self._prefix):])
        return text


_posix: Callable[[str], str] = (
    (lambda rel: rel) if os.sep == "/" else (lambda rel: rel.replace(os.sep, "/")))


def image_file(folder: Path, stored: str) -> Path:
    """The file a stored `image_path` names: an absolute path as it is (catalogs made before
    relative paths; photos outside the folder), a relative one inside the catalog `folder`,
    every link resolved, or `ImageLoadError` "outside the images folder"."""
    if "\x00" in stored:
        raise ImageLoadError(stored, "contains a NUL character")
    if Path(stored).is_absolute():
        return Path(stored)
    root = Path(folder).resolve()
    if ".." in PurePosixPath(stored).parts:
        raise ImageLoadError(stored, f"{OUTSIDE} ('..' in the path)")
    try:
        real = (root / stored).resolve()
    except (OSError, RuntimeError, ValueError):
        raise ImageLoadError(stored, "invalid file name or a loop of links") from None
    if root not in real.parents:
        raise ImageLoadError(stored, OUTSIDE)
    return real


def copy_image(folder: Path, data: bytes, digest: str, suffix: str) -> Path:
    """Store a photo's bytes as `images/<first 32 hex of its hash><suffix>` in the catalog
    `folder` (the name a backup gives it too), atomically; an existing copy is kept (same
    name, same bytes)."""
    target = Path(folder) / IMAGES / f"{digest[:32]}{suffix.lower()}"
    if not target.exists():
        write_file(data, target, ".copy-")
    return target


def write_file(data: bytes, path: Path, prefix: str) -> None:
    """Atomic write: a temp file named `prefix`… beside `path`, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
