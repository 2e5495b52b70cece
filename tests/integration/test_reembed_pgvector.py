"""`lookalike reembed --model NAME` on a catalog whose vectors are searched in pgvector (a real
PostgreSQL 15 with the extension, fixture `pgvector_server`): in the catalog's own database
(``pgvector``, metadata and users in a PostgreSQL schema) and on a server of its own
(``postgresql://…``, metadata and users in SQLite). The table is made again at the new width
with the new vectors, searches (HNSW and exact, filtered or not) find the new vectors on the
machine that re-encoded and on another one that was serving meanwhile, every account, swipe
and like is kept, and re-encoding back to the first model works too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image
from typer.testing import CliRunner

from catalog_factory import make_dataset
from databases import drop_schema, history, new_schema_url, swipe
from imagefactory import png
from lookalike import Catalog, Filters, Settings
from lookalike.attributes import default_taggers
from lookalike.catalog import ItemIn
from lookalike.cli import app
from lookalike.encoders import create
from lookalike.index.pgvector import DEFAULT_EXACT_MAX, PgvectorStore
from lookalike.recommend import Feed
from lookalike.servers import PostgresServer
from lookalike.users import Users

runner = CliRunner()


@pytest.fixture(params=["own-database", "server-of-its-own"])
def machines(request: pytest.FixtureRequest, tmp_path: Path,
             pgvector_server: PostgresServer) -> Iterator[tuple[Catalog, Catalog]]:
    """40 generated photos ingested with the 64-d fake encoder on machine A, and the catalog
    opened on machine B too (a folder of the same name elsewhere: one table for both)."""
    schema = None
    if request.param == "own-database":
        database_url, schema = new_schema_url(pgvector_server.url)
        vector_store = "pgvector"
    else:  # the metadata in SQLite: both machines open one folder
        database_url, vector_store = None, pgvector_server.url
    folders = [tmp_path / "a" / "shop", tmp_path / ("b" if schema else "a") / "shop"]
    images, meta, _ = make_dataset(tmp_path / "data")
    settings = [Settings(catalog_dir=f, database_url=database_url, vector_store=vector_store,
                         model="fake", auto_tag=False) for f in folders]
    a = Catalog.open(settings[0], taggers=default_taggers)
    b: Catalog | None = None
    try:
        a.ingest(images, meta)
        b = Catalog.open(settings[1], create=False, taggers=default_taggers)
        yield a, b
    finally:
        if isinstance(a.index, PgvectorStore) and a.index._conn is not None:
            a.index.drop()
        for cat in (a, b):
            if cat is not None:
                cat.close()
        if schema is not None:
            drop_schema(pgvector_server.url, schema)


def table_vectors(catalog: Catalog) -> tuple[str, dict[int, np.ndarray]]:
    """The pgvector table's vector column type and its rows, read with a connection of its
    own (what every other machine searches)."""
    store = catalog.index
    assert isinstance(store, PgvectorStore)
    with psycopg.connect(store.url.conninfo) as conn:
        kind = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                            "attrelid = %s::regclass AND attname = 'vector'",
                            (store._table,)).fetchone()
        rows = conn.execute(f"SELECT id, vector::text FROM {store._table}").fetchall()
    assert kind is not None
    return str(kind[0]), {int(i): np.asarray(json_floats(v), dtype=np.float32) for i, v in rows}


def json_floats(text: str) -> list[float]:
    return [float(x) for x in text.strip("[]").split(",")]


def encoded(catalog: Catalog, model: str) -> dict[int, np.ndarray]:
    """Each item's photo encoded with `model` directly (the reference), by rowid."""
    items = catalog.items(limit=1000)
    vectors = create(model, catalog.settings).encode_images(
        [Image.open(i.image_path) for i in items])
    return {i.rowid: v for i, v in zip(items, vectors, strict=True)}


def reembed_with_the_cli(catalog: Catalog, model: str) -> None:
    env = {"LOOKALIKE_DATABASE_URL": catalog.settings.database_url or "",
           "LOOKALIKE_VECTOR_STORE": catalog.settings.vector_store}
    res = runner.invoke(app, ["reembed", "-m", model, "-c", str(catalog.settings.catalog_dir)],
                        env=env)
    assert res.exit_code == 0, res.output


def assert_searches_the_new_vectors(catalog: Catalog, model: str, dim: int) -> None:
    """The table holds exactly the catalog's vectors of `model`; every search path finds
    each item by its own vector."""
    catalog.refresh()
    assert isinstance(catalog.index, PgvectorStore) and catalog.index.dim == dim
    kind, rows = table_vectors(catalog)
    want = encoded(catalog, model)
    assert kind == f"vector({dim})" and rows.keys() == want.keys() and len(catalog) == 40
    for rowid, vector in want.items():
        np.testing.assert_allclose(rows[rowid], vector, atol=1e-6)
        np.testing.assert_allclose(catalog.vector_of(catalog.store.get_many([rowid])[0].id),
                                   vector, atol=1e-6)
    item = catalog.get("item-0005")
    vector = want[item.rowid]
    assert [r.item.id for r in catalog.search_vector(vector, k=1)] == ["item-0005"]
    same_kind = Filters(category=[item.category or ""])
    kind_ids = {i.rowid for i in catalog.items(same_kind, limit=100)}
    assert len(kind_ids) >= 3
    store = catalog.index
    try:  # every kept item scored, and the HNSW index (k=3: found among the ef nearest)
        store.url = replace(store.url, exact_max=10**6)
        every = store.search(vector[None], 40, same_kind)
        assert every.plan.method == "pgvector-exact-subset"
        assert set(every.ids[0][every.ids[0] >= 0].tolist()) == kind_ids
        assert int(every.ids[0, 0]) == item.rowid
        store.url = replace(store.url, exact_max=0)
        near = store.search(vector[None], 3, same_kind)
        assert near.plan.method == "pgvector-hnsw"
        np.testing.assert_array_equal(near.ids[0], every.ids[0, :3])
    finally:
        store.url = replace(store.url, exact_max=DEFAULT_EXACT_MAX)


def test_reembed_makes_the_table_again_and_keeps_users_and_likes(
    machines: tuple[Catalog, Catalog],
) -> None:
    a, b = machines
    users = Users(a.store)
    feed = Feed(a, users)
    user, _ = users.register("keeper", "a long password")
    guest, guest_token = users.create_guest()
    swipe(feed, user, [True, False, True], 10 + user.id)
    swipe(feed, guest, [False, True], 10 + guest.id)
    before = {u.id: history(a, u) for u in (user, guest)}
    _, old_rows = table_vectors(a)
    assert all(len(v) == 64 for v in old_rows.values())

    reembed_with_the_cli(a, "fake-32")
    for cat in (a, b):  # the machine that re-encoded, and one serving meanwhile
        assert_searches_the_new_vectors(cat, "fake-32", 32)
        other = Users(cat.store)
        assert other.login("keeper", "a long password") is not None
        assert other.by_token(guest_token) == guest
        for who in (user, guest):
            assert history(cat, who) == before[who.id]
        assert len(Feed(cat, other).next(user, 3)) == 3
    # the other machine adds an item with the new model; the first finds it
    photo = Path(a.settings.catalog_dir).parents[1] / "b.png"  # (the caller saves photos)
    photo.write_bytes(png(Image.new("RGB", (48, 64), (250, 120, 250))))
    added = b.add_item(ItemIn(id="from-b", image="b.png", category="Hat"), photo.read_bytes(),
                       photo)
    assert b.vector_of(added.id).shape == (32,)
    assert [r.item.id for r in a.search_vector(b.vector_of(added.id), k=1)] == ["from-b"]
    assert len(a.index) == len(b.index) == len(a) == 41
    # and back to the first model: the table of 64-d vectors again
    reembed_with_the_cli(b, "fake")
    for cat in (b, a):
        cat.refresh()
        assert cat.index.dim == 64 and len(cat.index) == 41
        kind, rows = table_vectors(cat)
        assert kind == "vector(64)" and len(rows) == 41
        probe = cat.vector_of("item-0007")
        assert [r.item.id for r in cat.search_vector(probe, k=1)] == ["item-0007"]
