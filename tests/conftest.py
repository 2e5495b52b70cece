"""Shared test setup: make helper modules in tests/ (e.g. `imagefactory`) importable."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

# The generated pictures most tests ingest (tests/catalog_factory.py: a few coloured rectangles)
# are, to the repost check, reposts of one another; so the suite adds them unchecked, and the
# tests of the check (test_reposts.py, test_repost_finder.py) choose its mode themselves.
# Set before any Settings is made.
import os  # noqa: E402

os.environ.setdefault("LOOKALIKE_DUPLICATES", "keep")

# Property tests draw the same examples on every run (CI runs a fresh clone, with no example
# database: a random draw there could fail once and never again). To explore new examples:
# `pytest --hypothesis-profile=explore`.
from hypothesis import settings as hypothesis_settings  # noqa: E402

hypothesis_settings.register_profile("repeatable", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile("repeatable")


# -- real servers (PostgreSQL, Milvus), started once per test session --------------------------
# Skipped when not installed, unless LOOKALIKE_REQUIRE_SERVERS=1 (CI): then a missing server
# fails the tests that need it instead of hiding them.

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from lookalike.servers import MilvusServer, PostgresServer, ServerError  # noqa: E402


def _unavailable(exc: Exception) -> None:
    if os.environ.get("LOOKALIKE_REQUIRE_SERVERS") == "1":
        raise exc
    pytest.skip(f"server not available: {exc}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
    except ServerError as exc:
        _unavailable(exc)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pgvector_server(postgres_server: PostgresServer) -> PostgresServer:
    """The session's PostgreSQL server, checked to offer the pgvector extension
    (scripts/install-pgvector.sh)."""
    import psycopg

    with psycopg.connect(postgres_server.url) as conn:
        row = conn.execute("SELECT default_version FROM pg_available_extensions "
                           "WHERE name = 'vector'").fetchone()
    if row is None:
        _unavailable(ServerError("the pgvector extension is not installed in PostgreSQL: run "
                                 "scripts/install-pgvector.sh (as root)"))
    return postgres_server


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    server = MilvusServer(tmp_path_factory.mktemp("milvus"))
    try:
        server.start()
    except ServerError as exc:
        _unavailable(exc)
    yield server
    server.stop()


# -- the Ray tests' photos and local-engine reference (tests/ray_world.py), built once ----------
# Registered here: imported into each Ray test module, a "session" fixture was built per module.

from ray_world import local_reference_fixture, ray_photos_fixture  # noqa: E402, F401

# -- the metadata database: each test that takes `database_url` runs on SQLite and PostgreSQL ---


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (the catalog folder's SQLite file), then a new schema of the session's PostgreSQL
    server (dropped after the test): `Settings.database_url` for the test's catalogs."""
    if request.param == "sqlite":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    from databases import drop_schema, new_schema_url

    url, schema = new_schema_url(server.url)
    yield url
    drop_schema(server.url, schema)
