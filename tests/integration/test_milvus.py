"""The Milvus backend against a real Milvus 2.3.5 server (the session's `milvus_server`): its
stored fields and filter expressions mean exactly what `Scalars.matches` means (hypothesis), no
filter value can widen a filter, clear errors, repair of a crashed writer's writes and of a
database made anew. The congruence with the embedded store is `test_congruence.py`."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lookalike import Catalog, Filters, ItemUpdate, Settings
from lookalike.attributes import default_taggers
from lookalike.evaluation.synthetic import SyntheticCatalog
from lookalike.index import Scalars, VectorStoreError
from lookalike.index import milvus as milvus_module
from lookalike.index.milvus import (
    MilvusStore,
    collection_schema,
    entity_rows,
    filter_expression,
)
from lookalike.index.naming import collection_name
from lookalike.servers import MilvusServer
from vector_worlds import (
    DIM,
    FILTERS,
    MILVUS_EVIL,
    SCALARS,
    add_branded,
    fill,
    open_catalog,
    recall,
    reference,
)

pytest.importorskip("pymilvus")
EVIL = MILVUS_EVIL


@pytest.fixture
def catalogs(milvus_server: MilvusServer) -> Iterator[list[Catalog]]:
    """Catalogs a test opens on the server; their collections are dropped afterwards."""
    opened: list[Catalog] = []
    yield opened
    for cat in opened:
        if isinstance(cat.index, MilvusStore) and cat.index._collection is not None:
            cat.index.drop()
        cat.close()


# -- the stored fields and expressions mean what Scalars.matches means -------------------------


@pytest.fixture(scope="module")
def raw_collection(milvus_server: MilvusServer) -> Iterator[object]:
    from pymilvus import Collection, connections, utility

    alias, name = f"t-{uuid.uuid4().hex}", f"t_fields_{uuid.uuid4().hex[:8]}"
    connections.connect(alias=alias, host="127.0.0.1", port=str(milvus_server.port))
    collection = Collection(name, collection_schema(4), using=alias)
    collection.create_index("vector", {"index_type": "FLAT", "metric_type": "IP", "params": {}})
    collection.load()
    yield collection
    utility.drop_collection(name, using=alias)
    connections.disconnect(alias)


_BATCH = iter(range(1, 10**6))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(SCALARS, min_size=1, max_size=10),
       filters=st.lists(FILTERS, min_size=1, max_size=4))
def test_milvus_keeps_exactly_what_scalars_matches_keeps(
    raw_collection: object, items: list[Scalars], filters: list[Filters]
) -> None:
    from pymilvus import Collection

    collection = raw_collection
    assert isinstance(collection, Collection)
    base = next(_BATCH) * 100  # each example its own ids: no need to delete between them
    ids = np.arange(base, base + len(items), dtype=np.int64)
    written = collection.insert(entity_rows(ids, np.ones((len(items), 4), np.float32), items))
    for f in filters:
        want = {int(i) for i, s in zip(ids, items, strict=True) if s.matches(f)}
        expr = filter_expression(f, allowed=ids)  # only this example's items
        got: set[int] = set()
        if expr is not None:
            rows = collection.query(expr, output_fields=["id"], consistency_level="Customized",
                                    guarantee_timestamp=written.timestamp)
            got = {int(r["id"]) for r in rows}
        assert got == want, (f, expr)


# -- through a catalog ---------------------------------------------------------------------------


def test_a_brand_named_like_an_expression_does_not_widen_a_filter(
    tmp_path: Path, milvus_server: MilvusServer, catalogs: list[Catalog]
) -> None:
    cat = open_catalog(tmp_path / "cat", vector_store=milvus_server.uri)
    catalogs.append(cat)
    rowids, vectors = add_branded(cat, [EVIL, "x", 'x"', "X"])
    queries = vectors[:3]
    # brands compare by their normalised names (x, x" and X are one brand), digested
    for brands, want in [([EVIL], {rowids[0]}), (["x"], {rowids[1], rowids[2], rowids[3]}),
                         (['x"'], {rowids[1], rowids[2], rowids[3]}),
                         ([EVIL.upper()], {rowids[0]}), (['" or ""=="'], set())]:
        hits = cat.search_vectors(queries, 10, Filters(brand=brands))
        assert all({r for r, _ in h} == want for h in hits), brands


def test_an_unreachable_server_is_one_line_naming_it(tmp_path: Path) -> None:
    from lookalike.servers import free_port

    url = f"milvus://127.0.0.1:{free_port()}/shop?timeout=1"
    with pytest.raises(VectorStoreError) as err:
        open_catalog(tmp_path / "cat", vector_store=url)
    message = str(err.value)
    assert "\n" not in message and url.split("?")[0] in message and "unreachable" in message


def test_a_collection_of_another_width_or_catalog_is_a_clear_error(
    tmp_path: Path, milvus_server: MilvusServer, catalogs: list[Catalog]
) -> None:
    folder = tmp_path / "cat"
    cat = open_catalog(folder, vector_store=milvus_server.uri)
    catalogs.append(cat)
    fill(cat, 50)
    name = cat.index.name  # type: ignore[attr-defined]
    # the same folder made again with a model of another width
    cat.store.close()
    for f in folder.glob("catalog.sqlite*"):
        f.unlink()
    with pytest.raises(VectorStoreError) as err:
        open_catalog(folder, dim=DIM * 2, vector_store=milvus_server.uri)
    assert f"{DIM}-d vectors but this catalog's model gives {DIM * 2}-d" in str(err.value)
    assert name in str(err.value) and "drop_collection" in str(err.value)
    # a collection of that name made for another folder (or by hand) is never overwritten
    from pymilvus import Collection, connections, utility

    alias = f"t-{uuid.uuid4().hex}"
    connections.connect(alias=alias, host="127.0.0.1", port=str(milvus_server.port))
    other = tmp_path / "other"
    try:
        Collection(collection_name(other), collection_schema(DIM, "by hand"),
                   using=alias)
        with pytest.raises(VectorStoreError, match="was not made by lookalike"):
            open_catalog(other, vector_store=milvus_server.uri)
    finally:
        utility.drop_collection(collection_name(other), using=alias)
        connections.disconnect(alias)


def test_a_long_list_of_allowed_ids_is_sent_as_the_ids_left_out(
    tmp_path: Path, milvus_server: MilvusServer, catalogs: list[Catalog],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A filter the catalog resolved in its database (currency, say) may keep most of a large
    catalog: more ids than an expression may list are listed as the few ids it leaves out."""
    cat = open_catalog(tmp_path / "c", vector_store=milvus_server.uri + "?index=flat")
    catalogs.append(cat)
    fill(cat, 300)
    monkeypatch.setattr(milvus_module, "MAX_EXPR_IDS", 50)
    ids = cat.index.ids()
    queries = SyntheticCatalog(DIM).queries(5)
    got = cat.index.search(queries, 10, None, allowed=ids[5:])
    _, want = reference(cat, queries, 10, exclude=tuple(ids[:5].tolist()))
    np.testing.assert_array_equal(got.ids, want)
    with pytest.raises(ValueError, match="at most 50"):  # half: neither way fits
        cat.index.search(queries, 10, None, allowed=ids[:150])


def test_a_collection_an_older_lookalike_made_is_filled_again(
    tmp_path: Path, milvus_server: MilvusServer, catalogs: list[Catalog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Format 1 had no listing state (and compared brands, colours and prices as given): its
    collection is dropped and filled from the metadata store, which holds every field."""
    import json

    from pymilvus import Collection, CollectionSchema, connections

    cat = open_catalog(tmp_path / "old", vector_store=milvus_server.uri)
    fill(cat, 300)
    cat.update_item("syn-0-7", ItemUpdate(state="sold"))
    store = cat.index
    assert isinstance(store, MilvusStore)
    name, about = store.name, json.loads(store._collection.description)
    store.drop()
    cat.close()
    alias = f"t-{uuid.uuid4().hex}"
    connections.connect(alias=alias, host="127.0.0.1", port=str(milvus_server.port))
    try:  # the collection as format 1 made it: no state field, and empty
        old = collection_schema(DIM, json.dumps({**about, "lookalike": 1}))
        fields = [f for f in old.fields if f.name != "state"]
        made = Collection(name, CollectionSchema(fields, description=old.description),
                          using=alias)
        made.create_index("vector", {"index_type": "FLAT", "metric_type": "IP", "params": {}})
    finally:
        connections.disconnect(alias)
    with caplog.at_level("WARNING", logger="lookalike.index.milvus"):
        cat = open_catalog(tmp_path / "old", vector_store=milvus_server.uri)
    catalogs.append(cat)
    assert "made by an older lookalike" in caplog.text
    assert "state" in [f.name for f in cat.index._collection.schema.fields]  # type: ignore[attr-defined]
    assert len(cat.index) == 300
    sold = cat.store.get("syn-0-7")
    vector = cat.index.vectors(np.asarray([sold.rowid]))
    assert cat.search_vectors(vector, 1, Filters())[0][0][0] != sold.rowid  # left out
    assert cat.search_vectors(vector, 1, Filters(state=["sold"]))[0][0][0] == sold.rowid


def test_writes_a_crashed_writer_left_are_repaired_and_a_new_database_refills(
    tmp_path: Path, milvus_server: MilvusServer, catalogs: list[Catalog]
) -> None:
    folder = tmp_path / "cat"
    cat = open_catalog(folder, vector_store=milvus_server.uri)
    catalogs.append(cat)
    fill(cat, 300)
    gone = cat.store.rowid_of("syn-0-0")
    # another process commits to SQLite and dies before telling Milvus
    script = (
        "import os, sys\n"
        "from lookalike.catalog.store import CatalogStore\n"
        "from lookalike.catalog.schema import ItemUpdate\n"
        "from lookalike.evaluation.synthetic import SyntheticCatalog\n"
        "store = CatalogStore(sys.argv[1] + '/catalog.sqlite')\n"
        f"store.add(*SyntheticCatalog({DIM}, seed=3).items(0, 20))\n"
        "store.delete('syn-0-0')\n"
        "store.update('syn-0-1', ItemUpdate(category='only-one'))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(folder)], check=True)
    assert cat.refresh() and not cat.refresh()
    assert len(cat) == 300 + 20 - 1
    new_items, new_vectors = SyntheticCatalog(DIM, seed=3).items(0, 20)
    hits = cat.search_vectors(new_vectors[:3], 1)
    assert [cat.store.get_many([h[0][0]])[0].id for h in hits] == [it.id for it in new_items[:3]]
    only = cat.search_vectors(new_vectors[:1], 5, Filters(category=["only-one"]))[0]
    assert [cat.store.get_many([r])[0].id for r, _ in only] == ["syn-0-1"]
    assert gone not in set(cat.index.ids().tolist())
    # a new database in the same folder: the collection is filled again from it
    cat.close()
    catalogs.remove(cat)
    for f in folder.glob("catalog.sqlite*"):
        f.unlink()
    again = open_catalog(folder, vector_store=milvus_server.uri)
    catalogs.append(again)
    assert len(again) == 0
    fill(again, 30, seed=7)
    assert len(again) == 30
    q = SyntheticCatalog(DIM).queries(5)
    np.testing.assert_array_equal(again.index.search(q, 5).ids, reference(again, q, 5)[1])


def test_ids_are_listed_page_by_page(
    tmp_path: Path, milvus_server: MilvusServer, catalogs: list[Catalog],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cat = open_catalog(tmp_path / "cat", vector_store=milvus_server.uri)
    catalogs.append(cat)
    fill(cat, 230)
    for i in range(0, 40, 3):
        cat.delete_item(f"syn-0-{i}")
    cat.update_item("syn-0-1", ItemUpdate(price=1.0))  # an upsert: one row, not two
    monkeypatch.setattr(milvus_module, "_ID_PAGE", 16)
    ids, _ = cat.store.vectors()
    assert cat.index.ids().tolist() == ids.tolist() and len(cat) == len(ids) == 230 - 14
    pick = ids[::7][::-1]
    np.testing.assert_array_equal(cat.index.vectors(np.concatenate([pick, [-3, 10**9]])),
                                  cat.store.vectors_of(pick[::-1])[1][::-1])


def test_serving_on_the_embedded_store_never_imports_pymilvus(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from lookalike import Catalog, Settings\n"
        "cat = Catalog.open(Settings(catalog_dir=sys.argv[1], model='fake', auto_tag=False))\n"
        "import lookalike.api.app\n"
        "assert 'pymilvus' not in sys.modules and 'lookalike.index.milvus' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "cat")], check=True)


def test_the_cli_ingests_and_searches_through_milvus_by_environment(
    tmp_path: Path, milvus_server: MilvusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from catalog_factory import make_dataset
    from lookalike.cli import app

    images, meta, rows = make_dataset(tmp_path, 16)
    cat = str(tmp_path / "cat")
    monkeypatch.setenv("LOOKALIKE_VECTOR_STORE", milvus_server.uri)
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", cat,
                              "-m", "fake"])
    assert res.exit_code == 0, res.output
    try:
        res = runner.invoke(app, ["info", "-c", cat, "--json"])
        info = json.loads(res.stdout)
        assert info["items"] == 16 and info["vector_store"]["backend"] == "milvus"
        assert info["vector_store"]["items"] == 16
        res = runner.invoke(app, ["search", str(images / rows[1]["image"]), "-k", "3", "-c",
                                  cat, "--json", "-f", "category=Shoes"])
        hits = json.loads(res.stdout)
        assert hits[0]["id"] == rows[1]["id"] and {h["category"] for h in hits} == {"Shoes"}
    finally:
        with Catalog.open(Settings(catalog_dir=Path(cat), vector_store=milvus_server.uri,
                                   auto_tag=False)) as catalog:
            catalog.index.drop()  # type: ignore[attr-defined]


def test_a_catalog_re_encoded_with_a_model_of_another_width_fills_its_collection_again(
    tmp_path: Path, milvus_server: MilvusServer, catalogs: list[Catalog]
) -> None:
    """`lookalike reembed` to another width: the collection (recorded with the model
    generation it was filled at) is dropped and filled again with the new vectors, in the
    process that re-encoded and in a serving process that follows at its next refresh."""
    from catalog_factory import make_dataset
    from lookalike.catalog.reembed import reembed

    images, meta, _ = make_dataset(tmp_path / "data")
    settings = Settings(catalog_dir=tmp_path / "cat", model="fake", auto_tag=False,
                        vector_store=milvus_server.uri)
    cat = Catalog.open(settings, taggers=default_taggers)
    catalogs.append(cat)
    cat.ingest(images, meta)
    follower = Catalog.open(settings, create=False, taggers=default_taggers)
    catalogs.append(follower)
    assert follower.index.dim == 64
    report = reembed(cat, "fake-32")
    assert report.switched and cat.index.dim == 32 and len(cat.index) == len(cat) == 40
    assert follower.refresh() and follower.index.dim == 32
    for c in (cat, follower):
        hit = c.search_vector(cat.vector_of("item-0007"), k=1)
        assert hit[0].item.id == "item-0007" and abs(hit[0].score - 1.0) < 1e-4


def test_an_ingest_chunk_written_in_the_background_is_seen_and_its_error_raised(
    tmp_path: Path, milvus_server: MilvusServer, catalogs: list[Catalog],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`upsert(compact=False)` returns while Milvus writes; the next call of any kind waits
    for the write (and sees it), or raises its error; a failed write is repaired by `sync`."""
    cat = open_catalog(tmp_path / "cat", vector_store=milvus_server.uri)
    catalogs.append(cat)
    index = cat.index
    assert isinstance(index, MilvusStore)
    world = SyntheticCatalog(DIM, seed=5)
    items, vectors = world.items(0, 50)
    ids = np.asarray(cat.store.add(items, vectors))
    index.upsert(ids, vectors, cat.store.scalars_of(ids), compact=False)
    assert index._pending is not None  # under way in the background
    assert len(index) == 50
    np.testing.assert_array_equal(index.search(vectors[:4], 1).ids[:, 0], ids[:4])

    more, more_vectors = world.items(50, 80)
    more_ids = np.asarray(cat.store.add(more, more_vectors))
    real_apply = index._apply

    def lost() -> bool:
        raise VectorStoreError("connection lost")

    monkeypatch.setattr(index, "_apply", lost)
    index.upsert(more_ids, more_vectors, cat.store.scalars_of(more_ids), compact=False)
    with pytest.raises(VectorStoreError, match="connection lost"):
        len(index)
    monkeypatch.setattr(index, "_apply", real_apply)
    assert index.sync()  # the marker stayed behind: the rows are written now
    assert len(index) == 80
    np.testing.assert_array_equal(index.search(more_vectors[:4], 1).ids[:, 0], more_ids[:4])


@pytest.mark.parametrize("top_known", [True, False])
def test_new_ids_are_inserted_and_a_dead_writers_rows_are_not_written_twice(
    tmp_path: Path, milvus_server: MilvusServer, catalogs: list[Catalog],
    monkeypatch: pytest.MonkeyPatch, top_known: bool,
) -> None:
    """Ids above the collection's top are inserted (an upsert's deletes made Milvus rewrite
    and index every segment again); a writer that died after sending rows, before moving the
    marker, leaves them below the top it recorded first — or, when no top is known (an older
    lookalike's collection), below the highest id Milvus holds — so they are upserted again,
    never inserted twice."""
    folder = tmp_path / "cat"
    cat = open_catalog(folder, vector_store=milvus_server.uri)
    catalogs.append(cat)
    fill(cat, 200)
    store = cat.index
    assert isinstance(store, MilvusStore)
    ids, _ = cat.store.vectors()
    assert store._marker().top == int(ids.max())
    sent: list[bool] = []
    send = store._send

    def counted(*args: Any, **kwargs: Any) -> Any:
        sent.append(kwargs["insert"])
        return send(*args, **kwargs)

    monkeypatch.setattr(store, "_send", counted)
    fill(cat, 20, seed=5)  # new ids only: inserted
    assert sent and all(sent)
    cat.update_item("syn-0-3", ItemUpdate(price=2.0))  # a stored id: upserted
    assert sent[-1] is False
    # another process commits 20 items, sends them to Milvus and dies before the marker moves
    script = (
        "import sys\n"
        "from lookalike.catalog.store import CatalogStore\n"
        "from lookalike.evaluation.synthetic import SyntheticCatalog\n"
        "store = CatalogStore(sys.argv[1] + '/catalog.sqlite')\n"
        f"store.add(*SyntheticCatalog({DIM}, seed=9).items(0, 20))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(folder)], check=True)
    real = store._set_marker
    before = store._marker()

    def dies(marker: object) -> None:
        if marker.applied != before.applied:  # type: ignore[attr-defined]
            raise RuntimeError("killed")
        real(marker)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_set_marker", dies)
    with pytest.raises(RuntimeError), store._locked():
        store._apply()
    monkeypatch.setattr(store, "_set_marker", real)
    if not top_known:
        store._collection.set_properties({"lookalike.top": "-1:0"})  # stale: not known
    assert store._marker().applied == before.applied
    sent.clear()
    assert cat.refresh()
    assert sent == [False]  # the dead writer's rows are upserted again
    want = cat.store.vector_count()
    assert want == 240 and store._query_count(strong=True) == want
    rows = store._collection.query("id > 0", output_fields=["id"], limit=1000,
                                   consistency_level="Strong")
    assert sorted(r["id"] for r in rows) == sorted(cat.store.vectors()[0].tolist())
    fill(cat, 5, seed=11)  # and new ids after them are inserted again
    assert sent[-1] is True and store._query_count(strong=True) == 245


def test_seal_returns_once_every_row_is_searched_through_the_index(
    milvus_server: MilvusServer, tmp_path: Path, catalogs: list[Catalog]
) -> None:
    """`seal()` waits for the query node to search every row through the sealed, indexed
    segments, without the copies upserts deleted. It used to return once the index was built:
    the query node lists no growing segment, so its empty list passed, and searches went on
    scoring growing segments exactly until it took the sealed ones over (15-35 s later on a
    loaded machine), then searched an HNSW graph still holding both copies of each upserted
    row (recall@10 0.94 under a filter in test_congruence.py)."""
    from pymilvus import utility

    cat = open_catalog(tmp_path / "cat", vector_store=milvus_server.uri)
    catalogs.append(cat)
    fill(cat, 1500)
    with cat.store.connection() as conn:  # 600 items change state: 600 upserts
        conn.execute("UPDATE items SET state = 'reserved' WHERE rowid % 5 IN (0, 1)")
    cat.refresh()
    store = cat.index
    assert isinstance(store, MilvusStore)
    store.seal()
    segments = utility.get_query_segment_info(store.name, using=store._alias)
    assert segments and all(s.state == 3 and s.indexID for s in segments)  # sealed, indexed
    assert sum(s.num_rows for s in segments) == 1500 == len(store)  # no deleted copies left


def test_copies_upserts_left_in_a_sealed_segment_are_merged_away_without_seal(
    milvus_server: MilvusServer, tmp_path: Path, catalogs: list[Catalog]
) -> None:
    """Items whose state changed while their rows were in a growing segment leave both copies
    in it (an upsert deletes the old row, kept until a compaction): once Milvus seals that
    segment, its HNSW graph holds both (recall@10 under a state filter 0.94-0.98). Milvus
    compacts it by itself once it is indexed, at its next look for segments to compact: every
    60 s by default (served compacted 79-86 s after the seal, 4,000 items, load 15-20), every
    10 s on the servers lookalike starts, which also look for compactions done every 2 s
    instead of 10 (`servers.COMPACTION_INTERVAL`, `COMPACTION_CHECK`: 30 s here at load 16,
    68 s with the defaults at load 13).
    No `seal()` here."""
    from pymilvus import utility

    cat = open_catalog(tmp_path / "cat", vector_store=milvus_server.uri)
    catalogs.append(cat)
    fill(cat, 1500)
    with cat.store.connection() as conn:  # 600 items change state: 600 upserts
        conn.execute("UPDATE items SET state = 'reserved' WHERE rowid % 5 IN (0, 1)")
    cat.refresh()
    store = cat.index
    assert isinstance(store, MilvusStore)
    store._collection.flush()  # as Milvus seals a growing segment by itself, in time
    sealed = time.monotonic()
    served: dict[int, int] = {}
    while time.monotonic() - sealed < 45:
        segments = utility.get_query_segment_info(store.name, using=store._alias)
        served = {s.segmentID: int(s.num_rows) for s in segments}
        if sum(served.values()) == 1500 and all(s.indexID for s in segments):
            break
        time.sleep(1)
    # the replaced copies merged away (68 s after the seal with Milvus's default intervals)
    assert sum(served.values()) == 1500, (served, time.monotonic() - sealed)
    queries = SyntheticCatalog(DIM, 0).queries(100)
    filters = Filters(state=["reserved"])
    _, truth = reference(cat, queries, 10, filters)
    got = store.search(queries, 10, filters)
    assert recall(truth, got.ids[:, : truth.shape[1]]) >= 0.95
