"""What the vector stores held by a server (Milvus, pgvector) share: the name of a catalog's
collection or table, the same on every machine that serves the catalog, and the stored form of
a text field (a digest, so any value fits a fixed-width field and a filter compares equals)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["CODE_LENGTH", "catalog_identity", "collection_name", "text_code"]

CODE_LENGTH = 32  # hex digits of a string's digest


def catalog_identity(folder: Path, database_url: str | None = None) -> tuple[str, str]:
    """(name, identity) of the catalog a collection belongs to: for a catalog in PostgreSQL its
    schema (without ``lookalike_``) and ``postgresql://HOST:PORT/DATABASE#SCHEMA`` — the same on
    every machine serving it, whatever its folder there —; else the folder's name and absolute
    path."""
    if database_url:
        from lookalike.catalog.database import postgres_target

        target = postgres_target(database_url, Path(folder))
        parts = urlsplit(target.url)
        where = f"{(parts.hostname or '').lower()}:{parts.port or 5432}{parts.path or '/'}"
        return (target.schema.removeprefix("lookalike_"),
                f"postgresql://{where}#{target.schema}")
    path = Path(folder).resolve()
    return path.name, str(path)


def collection_name(folder: Path, prefix: str = "", database_url: str | None = None) -> str:
    """The collection of the catalog in `folder` (see the module doc)."""
    name, identity = catalog_identity(folder, database_url)
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "catalog"
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{prefix}lookalike_{slug}_{digest}"


def text_code(value: str | None) -> str:
    """A string field's stored form: its digest, "" for unknown."""
    if value is None:
        return ""
    data = value.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=CODE_LENGTH // 2).hexdigest()
