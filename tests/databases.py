"""Test helpers for catalogs on either metadata database (SQLite file or PostgreSQL schema)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg

from lookalike.catalog.catalog import Catalog, open_store
from lookalike.catalog.store import CatalogStore
from lookalike.config import Settings
from lookalike.recommend import Feed
from lookalike.users import User, Users


def new_schema_url(server_url: str) -> tuple[str, str]:
    """A URL naming a schema no test used before, and the schema."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    return f"{server_url}?schema={schema}", schema


def drop_schema(server_url: str, schema: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def settings_for(folder: Path, database_url: str | None, **values: Any) -> Settings:
    return Settings(catalog_dir=folder, database_url=database_url, **values)


def store_for(folder: Path, database_url: str | None) -> CatalogStore:
    """The metadata store of the catalog in `folder` on the given database."""
    return open_store(settings_for(folder, database_url))


def swipe(feed: Feed, who: User, verdicts: list[bool], first: int) -> None:
    """`who` swipes items `first`, `first` + 1, ... of a made catalog (True: liked)."""
    for i, liked in enumerate(verdicts):
        feed.swipe(who, f"item-{i + first:04d}", liked)


def history(catalog: Catalog, who: User) -> tuple[list[str], list[str]]:
    """What `who` swiped and liked, in order, as `catalog` sees it (what a re-embedding keeps)."""
    users = Users(catalog.store)
    return [s.item_id for s in users.swipes(who)], [i.id for i in Feed(catalog, users).likes(who)]
