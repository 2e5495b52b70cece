"""The pgvector backend against a real PostgreSQL 15 with the pgvector extension: its stored
columns and SQL filters mean exactly what `Scalars.matches` means (hypothesis), no filter value
can widen a filter, the catalog's own database (``pgvector``), clear errors, a database made
anew, and a server restart with catalogs open. Congruence with the other backends (1 % filters,
another process's writes, a writer that crashed) is `test_congruence.py`.

Without the extension these tests are skipped, unless LOOKALIKE_REQUIRE_SERVERS=1 (CI) makes
them fail; CI installs it (scripts/install-pgvector.sh, from scripts/install-servers.sh)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_congruence import K, World, assert_congruent

from databases import drop_schema, store_for
from lookalike import Catalog, Filters
from lookalike.evaluation.synthetic import SyntheticCatalog
from lookalike.index import Scalars, VectorStoreError
from lookalike.index.pgvector import PgvectorStore, copy_rows, filter_clause
from lookalike.servers import PostgresServer
from vector_worlds import (
    DIM,
    FILTERS,
    SCALARS,
    SQL_EVIL,
    add_branded,
    fill,
    open_catalog,
    recall,
    reference,
)

EVIL = SQL_EVIL


@pytest.fixture(scope="module")
def raw_table(pgvector_server: PostgresServer) -> Iterator[tuple[psycopg.Connection, str]]:
    """A table of the store's layout (no catalog), on the session's server."""
    conn = psycopg.connect(pgvector_server.url, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    name = f"t_fields_{uuid.uuid4().hex[:8]}"
    conn.execute(
        f"CREATE TABLE {name} (id bigint PRIMARY KEY, vector vector(4) NOT NULL, category text, "
        "brand text, colour text, sizes text[] NOT NULL, price double precision, "
        "sustainability double precision, kids boolean, second_hand boolean, state text NOT NULL)")
    yield conn, name
    conn.execute(f"DROP TABLE {name}")
    conn.close()


_BATCH = iter(range(1, 10**6))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(SCALARS, min_size=1, max_size=10),
       filters=st.lists(FILTERS, min_size=1, max_size=4))
def test_the_sql_keeps_exactly_what_scalars_matches_keeps(
    raw_table: tuple[psycopg.Connection, str], items: list[Scalars], filters: list[Filters]
) -> None:
    conn, name = raw_table
    base = next(_BATCH) * 100  # each example its own ids
    ids = np.arange(base, base + len(items), dtype=np.int64)
    with conn.cursor().copy(f"COPY {name} FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(copy_rows(ids, np.ones((len(items), 4), np.float32), items))
    for f in filters:
        want = {int(i) for i, s in zip(ids, items, strict=True) if s.matches(f)}
        clause = filter_clause(f, allowed=ids)  # only this example's items
        got: set[int] = set()
        if clause is not None:
            rows = conn.execute(f"SELECT id FROM {name} WHERE {clause[0]}", clause[1]).fetchall()
            got = {int(r[0]) for r in rows}
        assert got == want, (f, clause)


# -- through a catalog ---------------------------------------------------------------------------


@pytest.fixture
def catalogs() -> Iterator[list[Catalog]]:
    """Catalogs a test opens; their tables are dropped afterwards."""
    opened: list[Catalog] = []
    yield opened
    for cat in opened:
        if isinstance(cat.index, PgvectorStore) and cat.index._conn is not None:
            cat.index.drop()
        cat.close()


def test_a_brand_named_like_sql_does_not_widen_a_filter(
    tmp_path: Path, pgvector_server: PostgresServer, catalogs: list[Catalog]
) -> None:
    cat = open_catalog(tmp_path / "cat", vector_store=pgvector_server.url)
    catalogs.append(cat)
    rowids, vectors = add_branded(cat, [EVIL, "x", "x'", "X"])
    for brands, want in [([EVIL], {rowids[0]}), (["x"], {rowids[1], rowids[2], rowids[3]})]:
        got = cat.index.search(vectors[:3], 40, Filters(brand=brands))
        assert set(got.ids[got.ids >= 0].tolist()) == want, brands


def test_the_catalogs_own_database(tmp_path: Path, pgvector_server: PostgresServer) -> None:
    """``pgvector``: metadata and vectors in one PostgreSQL database, the catalog's schema; a
    second process-like catalog on the same database sees the first one's writes."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    db = f"{pgvector_server.url}?schema={schema}"
    store = store_for(tmp_path / "a", db)
    store.bind_model("synthetic", DIM)
    store.close()
    cat = open_catalog(tmp_path / "a", vector_store="pgvector?index=hnsw&ef=64",
                       database_url=db)
    assert isinstance(cat.index, PgvectorStore)
    assert (cat.index.url.schema, cat.index.url.table) == (schema, "pgvector_items")
    fill(cat, 1500)
    other = open_catalog(tmp_path / "b", vector_store="pgvector", database_url=db)
    try:
        queries = SyntheticCatalog(DIM).queries(20)
        w = World("pgvector-hnsw", other, {})
        assert len(other) == 1500
        cat.delete_item("syn-0-7")
        other.refresh()
        assert len(other.index) == 1499
        for filters in (None, Filters(category=["dress"], kids=True), Filters(second_hand=True)):
            assert_congruent(w, queries, filters, other.index.search(queries, K, filters))
    finally:
        other.close()
        cat.close()
        drop_schema(pgvector_server.url, schema)


def test_selective_filters_are_exact_by_default(
    tmp_path: Path, pgvector_server: PostgresServer, catalogs: list[Catalog]
) -> None:
    """Under `exact_max` kept rows (as the planner expects), every kept item is scored: the
    graph walk from a query far from the kept items would give up before finding them."""
    cat = open_catalog(tmp_path / "cat", vector_store=pgvector_server.url + "?exact_max=500")
    catalogs.append(cat)
    fill(cat, 3000)
    queries = SyntheticCatalog(DIM).queries(20)
    w = World("pgvector-hnsw", cat, {})
    for filters, method in [(Filters(category=["dress"]), "pgvector-exact-subset"),
                            (Filters(second_hand=True), "pgvector-hnsw"), (None, "pgvector-hnsw"),
                            (Filters(), "pgvector-hnsw")]:
        got = cat.index.search(queries, K, filters)
        assert got.plan.method == method, filters
        assert_congruent(w, queries, filters, got)


def test_a_filter_keeping_items_far_from_the_query_scores_them_all(
    tmp_path: Path, pgvector_server: PostgresServer, catalogs: list[Catalog]
) -> None:
    """Above `exact_max` kept rows a filtered search looks at the `filtered_ef` nearest items
    only; when fewer than k of those are kept (a query among dresses, a filter keeping other
    categories, which lie elsewhere in the vector space), it scores every kept row instead of
    walking the graph further, which found only ~0.6 of the true top 10 at 100k items."""
    cat = open_catalog(tmp_path / "cat",
                       vector_store=pgvector_server.url + "?exact_max=0&filtered_ef=40")
    catalogs.append(cat)
    fill(cat, 3000)
    dresses = cat.store.filter_rowids(Filters(category=["dress"]))[:20]
    queries = cat.index.vectors(dresses)
    w = World("pgvector-hnsw", cat, {})
    others = Filters(category=["coat", "jeans", "boots", "bag", "hat"])
    far = cat.index.search(queries, K, others)
    assert far.plan.method == "pgvector-exact-subset"  # every query fell back
    assert_congruent(w, queries, others, far)  # (exact: the same ids and scores)
    near = cat.index.search(queries, K, Filters(category=["dress", "coat"]))
    assert near.plan.method == "pgvector-hnsw"  # found among the 40 nearest
    assert_congruent(w, queries, Filters(category=["dress", "coat"]), near)


def test_categories_of_their_own_index_serve_queries_far_from_them(
    tmp_path: Path, pgvector_server: PostgresServer, catalogs: list[Catalog]
) -> None:
    """With an HNSW index per category (`category_index_min`), a query far from the kept
    categories walks their graphs (one walk per category) instead of scoring every kept row;
    the walk really uses the category's own index."""
    cat = open_catalog(tmp_path / "cat", vector_store=pgvector_server.url
                       + "?exact_max=0&filtered_ef=40&ef=40&category_index_min=150")
    catalogs.append(cat)
    fill(cat, 3000)
    assert isinstance(cat.index, PgvectorStore)
    store = cat.index
    dresses = cat.store.filter_rowids(Filters(category=["dress"]))[:20]
    queries = store.vectors(dresses)
    w = World("pgvector-hnsw", cat, {})
    for others in [Filters(category=["coat", "jeans", "boots", "bag", "hat"]),
                   Filters(category=["bag", "hat", "coat"], second_hand=True)]:
        far = store.search(queries, K, others)
        assert far.plan.method == "pgvector-hnsw-category", others
        assert_congruent(w, queries, others, far)
    code = sorted(store._indexed)[0]
    with store._conn.transaction():
        store._conn.execute("SET LOCAL enable_sort = off")  # as `_by_category` searches
        plan = "\n".join(r[0] for r in store._conn.execute(
            "EXPLAIN " + store._category_sql(code, "TRUE", 40), (queries[0].tolist(), K)))
    assert f"Index Scan using {store._category_index(code)}" in plan, plan
    near = store.search(queries, K, Filters(category=["dress", "coat"]))
    assert near.plan.method == "pgvector-hnsw"  # found among the 40 nearest
    # the categories of 150 items or more, as they grew through the writes (3,000 items)
    big = {r[0] for r in store._conn.execute(
        f"SELECT category FROM {store._table} GROUP BY category HAVING count(*) >= 150")}
    assert 5 <= len(big) < 20
    assert store._indexed == big


def test_filter_fields_stay_in_the_row_at_512_dimensions(
    tmp_path: Path, pgvector_server: PostgresServer, catalogs: list[Catalog]
) -> None:
    """A row with a 512-d vector is past PostgreSQL's TOAST threshold: by default its short text
    fields would be moved out of line, and every filter would read the TOAST index and table
    for each field of each row (10x the pages of a category scan at 100k items, measured).
    They stay in the row, and a table of the earlier layout (format 1) is filled again."""
    def toasted(cat: Catalog) -> int:
        assert isinstance(cat.index, PgvectorStore)
        return int(cat.index._conn.execute(
            "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = %s::regclass",
            (cat.index._table,)).fetchone()[0])

    cat = open_catalog(tmp_path / "cat", 512, vector_store=pgvector_server.url)
    fill(cat, 300)
    assert toasted(cat) == 0
    queries = SyntheticCatalog(512).queries(5)
    w = World("pgvector-hnsw", cat, {})
    f = Filters(category=["dress", "coat"])
    got = cat.index.search(queries, K, f)
    assert got.plan.method == "pgvector-exact-subset"
    assert_congruent(w, queries, f, got)
    # the earlier layout: text fields stored out of line, format 1 in the table's comment
    assert isinstance(cat.index, PgvectorStore)
    conn, table = cat.index._conn, cat.index._table
    about = conn.execute("SELECT obj_description(%s::regclass, 'pg_class')",
                         (table,)).fetchone()[0]
    old = about.replace('"lookalike": 2', '"lookalike": 1')
    conn.execute(f"COMMENT ON TABLE {table} IS '{old}'")
    conn.execute(f"ALTER TABLE {table} ALTER COLUMN category SET STORAGE EXTENDED")
    cat.close()
    cat = open_catalog(tmp_path / "cat", 512, vector_store=pgvector_server.url)
    catalogs.append(cat)
    assert toasted(cat) == 0
    assert isinstance(cat.index, PgvectorStore)
    storage = dict(cat.index._conn.execute(
        "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attnum > 0", (cat.index._table,)).fetchall())
    assert {storage[c] for c in ("category", "brand", "colour", "sizes", "state")} == {"m"}
    assert len(cat.index) == 300
    assert_congruent(World("pgvector-hnsw", cat, {}), queries, f, cat.index.search(queries, K, f))


def test_clear_errors(tmp_path: Path, pgvector_server: PostgresServer) -> None:
    with pytest.raises(VectorStoreError, match="LOOKALIKE_DATABASE_URL"):
        open_catalog(tmp_path / "a", vector_store="pgvector")
    with pytest.raises(VectorStoreError, match="index='ivf'"):
        open_catalog(tmp_path / "b", vector_store=pgvector_server.url + "?index=ivf")
    with pytest.raises(VectorStoreError, match="ef=0 is outside"):
        open_catalog(tmp_path / "b", vector_store=pgvector_server.url + "?ef=0")
    with pytest.raises(VectorStoreError, match="unreachable"):
        open_catalog(tmp_path / "c", vector_store="postgresql://nobody@127.0.0.1:1/none")
    # a table of that name that lookalike did not make is never overwritten
    cat = open_catalog(tmp_path / "d", vector_store=pgvector_server.url)
    assert isinstance(cat.index, PgvectorStore)
    table = cat.index._table
    cat.index.drop()
    cat.close()
    with psycopg.connect(pgvector_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (x int)")
        try:
            with pytest.raises(VectorStoreError, match="not made by lookalike"):
                open_catalog(tmp_path / "d", vector_store=pgvector_server.url)
        finally:
            conn.execute(f"DROP TABLE {table}")


def test_a_database_made_anew_fills_the_table_again(
    tmp_path: Path, pgvector_server: PostgresServer, catalogs: list[Catalog]
) -> None:
    """The table's marker is ahead of a new metadata store's change log: filled again, not
    searched with the old catalog's items."""
    cat = open_catalog(tmp_path / "cat", vector_store=pgvector_server.url)
    fill(cat, 300)
    cat.close()
    (tmp_path / "cat" / "catalog.sqlite").unlink()
    cat = open_catalog(tmp_path / "cat", vector_store=pgvector_server.url)
    catalogs.append(cat)
    assert len(cat.index) == 0
    fill(cat, 50, seed=3)
    queries = SyntheticCatalog(DIM, 3).queries(5)
    _, want = reference(cat, queries, K)
    assert recall(want, cat.index.search(queries, K).ids) >= 0.95


def test_the_same_answers_after_a_server_restart(
    tmp_path: Path, pgvector_server: PostgresServer
) -> None:
    """A server of its own, restarted (same data folder and port) while catalogs are open on
    it: their next searches connect again and give the answers they gave before; writes too."""
    server = PostgresServer().start()  # (under /tmp: reachable for the postgres user)
    try:
        queries = SyntheticCatalog(DIM).queries(20)
        worlds: dict[str, World] = {}
        before = {}
        for backend in ("pgvector-flat", "pgvector-hnsw"):
            settings = {"vector_store": server.url + ("?index=flat" if "flat" in backend else "")}
            cat = open_catalog(tmp_path / backend, **settings)
            fill(cat, 1200)
            cat.delete_item("syn-0-3")
            worlds[backend] = World(backend, cat, settings)
            before[backend] = cat.index.search(queries, K, Filters(second_hand=True))
        server.restart()
        for w in worlds.values():
            after = w.catalog.index.search(queries, K, Filters(second_hand=True))
            np.testing.assert_array_equal(after.ids, before[w.backend].ids)
            assert_congruent(w, queries, Filters(second_hand=True), after)
            fill(w.catalog, 1250, start=1200)  # and it takes writes again
            w.catalog.delete_item("syn-0-4")
            assert len(w.catalog) == 1250 - 2
            assert_congruent(w, queries, None, w.catalog.index.search(queries, K))
            w.catalog.close()  # and opened again after the restart
            w.catalog = open_catalog(tmp_path / w.backend, **w.settings)
            assert len(w.catalog.index) == 1250 - 2
            assert_congruent(w, queries, Filters(category=["dress"], kids=True),
                             w.catalog.index.search(queries, K,
                                                    Filters(category=["dress"], kids=True)))
        for w in worlds.values():
            w.close()
    finally:
        server.stop()
