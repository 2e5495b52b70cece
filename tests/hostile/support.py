"""Helpers of the hostile-input suite."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from lookalike import Settings


def stored_rows(folder: Path) -> list[tuple[object, ...]]:
    """Every stored item row and its vector, read from the catalog's SQLite file itself."""
    db = folder / "catalog.sqlite"
    if not db.exists():
        return []
    # closed on the way out (sqlite3's own context manager only commits): a connection left
    # open beside the catalog's own ones made later read-only opens fail ("disk I/O error")
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT items.*, embeddings.vector FROM items "
            "LEFT JOIN embeddings ON embeddings.item_rowid = items.rowid ORDER BY items.rowid"
        )]


def fake_settings(folder: Path) -> Settings:
    return Settings(catalog_dir=folder, model="fake")
