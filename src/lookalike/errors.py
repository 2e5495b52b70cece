"""Error types. Every error a user can cause names the file, row or field at fault."""

from __future__ import annotations


class LookalikeError(Exception):
    """Base class of every error lookalike raises on purpose."""


class ImageLoadError(LookalikeError):
    """An image could not be read safely: corrupt, truncated, too large, not an image..."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self) -> tuple[type[ImageLoadError], tuple[str, str]]:
        return type(self), (self.source, self.reason)  # intact across processes (pickle)


class ImageTooLargeError(ImageLoadError):
    """The image exceeds the byte or pixel cap (a decompression bomb is one)."""


class UnknownEncoderError(LookalikeError):
    """No encoder is registered under that name and no model file is at that path."""


class ItemNotFoundError(LookalikeError):
    """No catalog item has that id."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"no item with id {item_id!r}")
        self.item_id = item_id

    def __reduce__(self) -> tuple[type[ItemNotFoundError], tuple[str]]:
        return type(self), (self.item_id,)


class CatalogNotFoundError(LookalikeError):
    """No catalog in that folder, and the caller asked not to create one."""

    def __init__(self, folder: str, detail: str = "no catalog.sqlite in it") -> None:
        super().__init__(
            f"no catalog at {folder} ({detail}): make one with "
            f"`lookalike ingest PHOTOS --metadata items.csv --catalog {folder}`, or try "
            f"`lookalike demo --catalog {folder}` (the bundled sample)"
        )
        self.folder = folder
        self.detail = detail

    def __reduce__(self) -> tuple[type[CatalogNotFoundError], tuple[str, str]]:
        return type(self), (self.folder, self.detail)


class CatalogMismatchError(LookalikeError):
    """The catalog was built with another encoder (dimension or name differ)."""


class FilterError(LookalikeError):
    """A search filter is malformed (unknown field, min above max...)."""


class CatalogCorruptError(LookalikeError):
    """The catalog's database file is damaged (empty, not SQLite, truncated, malformed), or one
    of its rows is. The message names the file and says how to go on."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"{path}: {reason}. `lookalike check` shows the damage, `lookalike repair` fixes "
            "what can be fixed, `lookalike restore` brings back a backup"
        )
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[CatalogCorruptError], tuple[str, str]]:
        return type(self), (self.path, self.reason)


class MetadataError(LookalikeError):
    """The metadata file as a whole cannot be read: missing, unreadable, not text, no header.

    (A bad row is never this: it becomes a rejected row and the ingest goes on.)"""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[MetadataError], tuple[str, str]]:
        return type(self), (self.path, self.reason)


class DatabaseUnavailableError(LookalikeError):
    """The catalog's database server (PostgreSQL) cannot be reached, refused the connection or
    lost it. The message names the server's URL, without its password."""
