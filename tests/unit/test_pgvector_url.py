"""`PgvectorUrl.parse`: where a pgvector store goes and its options, and clear errors for bad
URLs (no server needed; the store itself is tested in tests/integration/test_pgvector.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.index import VectorStoreError
from lookalike.index.naming import collection_name
from lookalike.index.pgvector import OWN_TABLE, PgvectorUrl

DB = "postgresql://shop:secret@db.example:5432/shop"


def test_the_catalogs_own_database_and_schema(tmp_path: Path) -> None:
    url = PgvectorUrl.parse("pgvector?ef=64&filtered_ef=200&exact_max=0", tmp_path / "my-shop",
                            f"{DB}?schema=lookalike_x")
    assert (url.conninfo, url.schema, url.table, url.own) == (DB, "lookalike_x", OWN_TABLE, True)
    assert (url.index, url.ef, url.filtered_ef, url.exact_max) == ("hnsw", 64, 200, 0)
    assert url.category_index_min == 2000
    assert "secret" not in str(url)
    assert PgvectorUrl.parse("pgvector?category_index_min=50", tmp_path / "my-shop",
                             DB).category_index_min == 50


def test_another_server(tmp_path: Path) -> None:
    url = PgvectorUrl.parse(f"{DB}?schema=vectors&index=flat&sslmode=require", tmp_path / "s",
                            None)
    assert url.conninfo == f"{DB}?sslmode=require"  # libpq's own options pass through
    assert (url.schema, url.index, url.own) == ("vectors", "flat", False)
    assert url.table == collection_name(tmp_path / "s")
    assert PgvectorUrl.parse(DB, tmp_path / "s", None).schema == "public"


@pytest.mark.parametrize(("url", "database_url", "message"), [
    ("pgvector", None, "LOOKALIKE_DATABASE_URL"),
    ("pgvector?schema=x", DB, "schema= is for postgresql://"),
    ("pgvector?probe=3", DB, "unknown option 'probe'"),
    (f"{DB}?index=ivf", None, "index='ivf'"),
    (f"{DB}?ef=0", None, r"ef=0 is outside 1\.\.1000"),
    (f"{DB}?filtered_ef=x", None, "is not a whole number"),
    (f"{DB}?category_index_min=0", None, r"category_index_min=0 is outside 1\.\."),
    (f"{DB}?schema=Bad-Name", None, "schema 'Bad-Name'"),
    ("mysql://db/shop", None, "expected pgvector"),
])
def test_clear_errors(tmp_path: Path, url: str, database_url: str | None, message: str) -> None:
    with pytest.raises(VectorStoreError, match=message) as error:
        PgvectorUrl.parse(url, tmp_path / "s", database_url)
    assert "secret" not in str(error.value)
