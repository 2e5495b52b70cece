"""PostgreSQL and Milvus together, as two `lookalike serve` on two machines would run them: one
catalog whose items, vectors and users are in a PostgreSQL schema (`database_url`) and whose
vectors are searched in a Milvus collection (`vector_store=milvus://…`), opened from two
folders of the same name on different paths (each machine its own folder for photos and
locks). Items added or deleted through one are found or gone through the other, filters work
on both, and `lookalike reembed` keeps users and likes and moves both to the new vectors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from catalog_factory import make_dataset
from databases import drop_schema, history, new_schema_url, swipe
from imagefactory import png
from lookalike import Catalog, Filters, ItemUpdate, Settings
from lookalike.attributes import default_taggers
from lookalike.catalog import ItemIn
from lookalike.cli import app
from lookalike.recommend import Feed
from lookalike.servers import MilvusServer, PostgresServer
from lookalike.users import Users

pytest.importorskip("pymilvus")
runner = CliRunner()


def settings(folder: Path, database_url: str, vector_store: str) -> Settings:
    return Settings(catalog_dir=folder, database_url=database_url, vector_store=vector_store,
                    model="fake", auto_tag=False)


@pytest.fixture
def machines(tmp_path: Path, postgres_server: PostgresServer,
             milvus_server: MilvusServer) -> Iterator[tuple[Catalog, Catalog]]:
    """The catalog ingested on machine A (40 generated photos, fake encoder), then opened on
    machine B from a folder of the same name elsewhere."""
    url, schema = new_schema_url(postgres_server.url)
    images, meta, _ = make_dataset(tmp_path / "data")
    a = Catalog.open(settings(tmp_path / "a" / "shop", url, milvus_server.uri),
                     taggers=default_taggers)
    b: Catalog | None = None
    try:
        a.ingest(images, meta)
        b = Catalog.open(settings(tmp_path / "b" / "shop", url, milvus_server.uri), create=False,
                         taggers=default_taggers)
        yield a, b
    finally:
        for cat in (a, b):
            if cat is not None:
                drop = getattr(cat.index, "drop", None)
                if drop is not None and getattr(cat.index, "_collection", None) is not None:
                    drop()
                cat.close()
        drop_schema(postgres_server.url, schema)


def ids_near(catalog: Catalog, item_id: str, k: int = 45,
             filters: Filters | None = None) -> list[str]:
    catalog.refresh()
    return [r.item.id for r in catalog.search_vector(catalog.vector_of(item_id), k, filters)]


def test_both_machines_search_one_collection(machines: tuple[Catalog, Catalog]) -> None:
    a, b = machines
    assert type(a.index).__name__ == type(b.index).__name__ == "MilvusStore"
    assert a.store.location == b.store.location and "(schema " in a.store.location
    # one collection for the one catalog, not one per machine
    assert a.index.describe()["collection"] == b.index.describe()["collection"]
    # and one writer at a time across machines (their folder locks are in different folders)
    with a.index._locked() as mine:  # type: ignore[attr-defined]
        assert mine
        with b.index._locked(wait=False) as theirs:  # type: ignore[attr-defined]
            assert not theirs
    with b.index._locked(wait=False) as theirs:  # type: ignore[attr-defined]
        assert theirs
    assert len(a) == len(b) == 40
    assert ids_near(b, "item-0007", 1) == ["item-0007"]
    assert ids_near(a, "item-0007") == ids_near(b, "item-0007")


def test_adds_and_deletes_on_one_machine_are_seen_on_the_other(
    machines: tuple[Catalog, Catalog], tmp_path: Path,
) -> None:
    a, b = machines
    added = b.add_item(ItemIn(id="from-b", image="b.png", category="Hat", brand="Zeta"),
                       png(Image.new("RGB", (48, 64), (250, 120, 250))), tmp_path / "b.png")
    assert a.get("from-b").rowid == added.rowid
    assert ids_near(a, "from-b", 1) == ["from-b"]
    assert "from-b" in ids_near(a, "from-b", 5, Filters(brand=["zeta"]))
    a.delete_item("item-0003")
    a.delete_item("from-b")
    for cat in (a, b):
        near = ids_near(cat, "item-0001")
        assert "item-0003" not in near and "from-b" not in near and len(near) == 39


def test_filters_agree_on_both_machines(machines: tuple[Catalog, Catalog]) -> None:
    a, b = machines
    pants = Filters(category=["pants"], brand=["acme", "cobalt"])
    want = {i.id for i in a.items(pants)}
    assert 0 < len(want) < 10  # a quarter of the items are pants, two thirds of those kept
    for cat in (a, b):
        assert set(ids_near(cat, "item-0002", 40, pants)) == want
    b.store.update("item-0002", ItemUpdate(category="Pants"))  # T-Shirt by Cobalt until now
    for cat in (a, b):
        assert set(ids_near(cat, "item-0002", 40, pants)) == want | {"item-0002"}


def test_reembed_keeps_users_and_likes_and_both_machines_follow(
    machines: tuple[Catalog, Catalog],
) -> None:
    a, b = machines
    users = Users(a.store)
    feed = Feed(a, users)
    user, _ = users.register("keeper", "a long password")
    swipe(feed, user, [True, False, True], 10)
    before = history(a, user)
    env = {"LOOKALIKE_DATABASE_URL": a.settings.database_url or "",
           "LOOKALIKE_VECTOR_STORE": a.settings.vector_store}
    res = runner.invoke(app, ["reembed", "-m", "fake-32", "-c", str(a.settings.catalog_dir)],
                        env=env)
    assert res.exit_code == 0, res.output
    for cat in (a, b):
        assert cat.refresh() and cat.index.dim == 32 and len(cat) == 40
        assert ids_near(cat, "item-0005", 1) == ["item-0005"]
        assert "item-0005" in ids_near(cat, "item-0005", 40, Filters(
            category=[cat.get("item-0005").category or ""]))
    other = Users(b.store)
    assert other.login("keeper", "a long password") is not None
    assert history(b, user) == before
    assert len(Feed(b, other).next(user, 3)) == 3
