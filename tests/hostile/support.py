"""Helpers of the hostile-input suite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lookalike import Settings


def stored_rows(folder: Path) -> list[tuple[object, ...]]:
    """Every stored item row and its vector, read from the catalog's SQLite file itself."""
    db = folder / "catalog.sqlite"
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT items.*, embeddings.vector FROM items "
            "LEFT JOIN embeddings ON embeddings.item_rowid = items.rowid ORDER BY items.rowid"
        )]


def fake_settings(folder: Path) -> Settings:
    return Settings(catalog_dir=folder, model="fake")
