"""Every kind of damage a catalog folder can take: what opening it does (a clear error, or the
damaged rows left out), what `check` reports, and what `repair` leaves. Real SQLite files,
the embedded vector store's real files, the fake encoder."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from catalog_factory import make_dataset
from lookalike import Catalog, Settings
from lookalike.api.app import create_app
from lookalike.api.deps import hash_admin_key
from lookalike.attributes import default_taggers
from lookalike.catalog import Filters
from lookalike.catalog.maintenance import check, repair
from lookalike.catalog.schema import ItemUpdate
from lookalike.errors import CatalogCorruptError
from lookalike.index.embedded import FOLDER as VECTORS
from lookalike.recommend import search_image, similar

N = 40


def settings(folder: Path, **kw: object) -> Settings:
    return Settings(catalog_dir=folder, model="fake", auto_tag=False, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog of N items in inverted lists (exact_max_items=10), built once."""
    root = tmp_path_factory.mktemp("pristine")
    images, meta, _ = make_dataset(root, N)
    with Catalog.open(settings(root / "cat", exact_max_items=10), taggers=default_taggers) as cat:
        cat.ingest(images, meta)
        assert cat.index.describe()["method"] == "ivf"
    return root


@pytest.fixture
def folder(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the pristine catalog and its images (image paths are absolute, so the
    copy's rows point at the copied images)."""
    shutil.copytree(pristine, tmp_path / "copy")
    cat = tmp_path / "copy" / "cat"
    sql(cat, "UPDATE items SET image_path = replace(image_path, ?, ?)",
        str(pristine), str(tmp_path / "copy"))
    return cat


def s(folder: Path) -> Settings:
    return settings(folder, exact_max_items=10)


def db(folder: Path) -> contextlib.closing[sqlite3.Connection]:
    """A connection closed at the end of the block (its WAL checkpointed into the file, so that
    damage done to the file afterwards is what readers see)."""
    return contextlib.closing(sqlite3.connect(folder / "catalog.sqlite", isolation_level=None))


def sql(folder: Path, statement: str, *args: object) -> None:
    with db(folder) as conn:
        conn.execute(statement, args)


def snapshot(folder: Path) -> dict[str, bytes]:
    with db(folder) as conn:
        return {r[0]: r[1] for r in conn.execute(
            "SELECT i.id, e.vector FROM items i JOIN embeddings e ON e.item_rowid = i.rowid")}


def top_ids(folder: Path, k: int = 5) -> list[list[str]]:
    """Each item's look-alikes: what a shopper would see."""
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        return [[r.item.id for r in similar(cat, it.id, k)] for it in cat.items(limit=N)]


def kinds(folder: Path) -> set[str]:
    return set(check(s(folder)).by_kind())


def test_a_healthy_catalog_checks_clean(folder: Path) -> None:
    report = check(s(folder))
    assert report.ok and report.problems == [] and report.items == report.vectors == N


# -- the vector files --------------------------------------------------------------------------


def vector_file(folder: Path) -> Path:
    """The float32 vectors of the current base segment."""
    generation = json.loads((folder / VECTORS / "manifest.json").read_text())["generation"]
    return folder / VECTORS / f"g{generation}.base.vectors"


def test_flipped_bytes_in_a_vector_file_are_rebuilt(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expected = top_ids(folder)
    path = vector_file(folder)
    data = bytearray(path.read_bytes())
    for at in (100, len(data) // 2, len(data) - 50):
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    assert kinds(folder) == {"index"}
    with caplog.at_level(logging.WARNING):
        assert top_ids(folder) == expected
    assert "checksum does not match" in caplog.text
    assert check(s(folder)).ok, "the rebuilt files were written with their checksums"


def test_a_changed_vector_in_a_vector_file_is_found_and_repaired(folder: Path) -> None:
    vectors = snapshot(folder)
    path = vector_file(folder)
    data = path.read_bytes()
    first, second = next(iter(vectors.values())), list(vectors.values())[7]
    at = data.find(first)
    assert at >= 0
    path.write_bytes(data[:at] + second + data[at + len(second):])
    problems = check(s(folder)).of("index")
    assert len(problems) == 1 and "checksum does not match" in problems[0].message
    report = repair(s(folder))
    assert report.index_rebuilt
    assert report.remaining is not None and report.remaining.ok


def test_a_vector_change_sqlite_did_not_log_is_found_by_check_and_repaired(
    folder: Path,
) -> None:
    """Same rowids, other vectors, and no trace in SQLite's change log (an edit made with the
    triggers off): every checksum holds, the stored vector differs from SQLite's."""
    ids = list(snapshot(folder))
    other = snapshot(folder)[ids[20]]
    with db(folder) as conn:
        seq = conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'vector_changes'").fetchone()[0]
        conn.execute("UPDATE embeddings SET vector = ? WHERE item_rowid = "
                     "(SELECT rowid FROM items WHERE id = ?)", (other, ids[3]))
        conn.execute("DELETE FROM vector_changes WHERE seq > ?", (seq,))
        conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'vector_changes'", (seq,))
    problems = check(s(folder)).of("index")
    assert len(problems) == 1 and "built from other vectors" in problems[0].message
    assert repair(s(folder)).index_rebuilt
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        hits = cat.search_vector(np.frombuffer(other, dtype=np.float32), k=2)
        assert {h.item.id for h in hits} == {ids[3], ids[20]}
    assert check(s(folder)).ok


def test_a_logged_vector_change_is_applied_at_the_open_not_a_problem(folder: Path) -> None:
    ids = list(snapshot(folder))
    other = snapshot(folder)[ids[20]]
    sql(folder, "UPDATE embeddings SET vector = ? WHERE item_rowid = "
                "(SELECT rowid FROM items WHERE id = ?)", other, ids[3])
    assert check(s(folder)).ok
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        hits = cat.search_vector(np.frombuffer(other, dtype=np.float32), k=2)
        assert {h.item.id for h in hits} == {ids[3], ids[20]}


# -- the database file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: p.write_bytes(b""), r"empty \(0 bytes\)"),
        (lambda p: p.write_bytes(b"this is not a database at all\n" * 200), "not an SQLite"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 40), "truncated"),
    ],
    ids=["0-byte", "garbage", "header-only"],
)
def test_an_unusable_database_file_is_a_clear_error_and_not_an_empty_catalog(
    folder: Path, damage, reason: str  # type: ignore[no-untyped-def]
) -> None:
    db = folder / "catalog.sqlite"
    damage(db)
    size = db.stat().st_size
    with pytest.raises(CatalogCorruptError, match=reason) as caught:
        Catalog.open(s(folder), taggers=default_taggers)
    assert str(db) in str(caught.value) and "lookalike restore" in str(caught.value)
    assert db.stat().st_size == size, "opening must not turn it into an empty catalog"
    assert [p.kind for p in check(s(folder)).problems] == ["database"]
    with pytest.raises(CatalogCorruptError, match="restore a backup"):
        repair(s(folder))


def test_a_truncated_database_is_refused_then_salvaged(folder: Path) -> None:
    db = folder / "catalog.sqlite"
    before = snapshot(folder)
    size = db.stat().st_size
    with db.open("rb+") as f:
        f.truncate(size * 3 // 4)
    with pytest.raises(CatalogCorruptError, match="truncated"):
        Catalog.open(s(folder), taggers=default_taggers)
    assert "database" in kinds(folder)
    report = repair(s(folder))
    assert report.damaged_copy is not None and report.damaged_copy.stat().st_size < size
    assert report.remaining is not None and report.remaining.ok, report.remaining.problems
    after = snapshot(folder)
    assert 0 < len(after) <= len(before)
    assert all(before[k] == v for k, v in after.items()), "what was salvaged is unchanged"
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        assert len(cat) == len(after)


def test_a_salvaged_catalog_keeps_listing_state_ratings_and_brand_ratings(folder: Path) -> None:
    # the salvage copies the columns of the tables it creates: the shop columns (state, rating,
    # reviews, brand_key...) were once only added on opening, so a repaired catalog lost them
    # and every sold item came back as available
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        ids = [it.id for it in cat.items(limit=N)]
        for item_id in ids[:10]:
            cat.update_item(item_id, ItemUpdate(state="sold", rating=4.5, reviews=7,
                                                brand="Kettle & Loom"))
        cat.import_brand_ratings(b"brand,overall,source\nkettle and loom,4,Test\n", "r.csv")
    path = folder / "catalog.sqlite"
    with path.open("rb+") as f:
        f.truncate(path.stat().st_size * 3 // 4)
    repair(s(folder))
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        kept = {it.id: it for it in cat.items(Filters(include_sold=True), limit=N)}
        assert kept, "something was salvaged"
        for item_id in ids[:10]:
            if item_id in kept:
                item = kept[item_id]
                assert (item.state, item.rating, item.reviews) == ("sold", 4.5, 7)
                assert item.brand_rating is not None and item.brand_rating.overall == 4
        assert any(i in kept for i in ids[:10]), "a sold item survived the truncation"
        assert [r.brand for r, _ in cat.store.brand_ratings()] == ["kettle and loom"]
        assert cat.store.count(Filters(state=["sold"])) == sum(i in kept for i in ids[:10])


def test_a_damaged_catalog_older_than_the_repost_columns_is_salvaged(folder: Path) -> None:
    """A catalog made before `phash` / `duplicate_of` existed, damaged before this version
    ever opened it: repair copies the columns it has (the new ones stay empty)."""
    sql(folder, "DROP INDEX items_unhashed")
    sql(folder, "PRAGMA user_version = 1")  # the shop columns' version
    sql(folder, "ALTER TABLE items DROP COLUMN phash")
    sql(folder, "ALTER TABLE items DROP COLUMN duplicate_of")
    before = snapshot(folder)
    db = folder / "catalog.sqlite"
    size = db.stat().st_size
    with db.open("rb+") as f:
        f.truncate(size * 3 // 4)
    report = repair(s(folder))
    assert report.remaining is not None and report.remaining.ok, report.remaining.problems
    after = snapshot(folder)
    assert 0 < len(after) <= len(before)
    assert all(before[k] == v for k, v in after.items())
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        assert len(cat) == len(after)
        assert all(i.duplicate_of is None for i in cat.items(limit=100))


def leaf_page_of(conn: sqlite3.Connection, table: str) -> int:
    """The page number of the right-most leaf of `table`'s b-tree (its root is interior)."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
    number = int(root.fetchone()[0])
    data = Path(conn.execute("PRAGMA database_list").fetchone()[2]).read_bytes()
    header = data[(number - 1) * page_size:]
    assert header[0] == 0x05, f"{table}'s root is an interior page"
    return int.from_bytes(header[8:12], "big")


def test_a_damaged_page_gives_clear_errors_and_is_salvaged(folder: Path) -> None:
    path = folder / "catalog.sqlite"
    before = snapshot(folder)
    with db(folder) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        victim = leaf_page_of(conn, "items")
    data = bytearray(path.read_bytes())
    data[(victim - 1) * page_size : victim * page_size] = bytes([0xA5]) * page_size
    path.write_bytes(bytes(data))
    report = check(s(folder))
    assert report.of("database") and not report.ok
    with pytest.raises(CatalogCorruptError) as caught, Catalog.open(s(folder),
                                                                    taggers=default_taggers) as cat:
        cat.items(limit=N)
    assert str(path) in str(caught.value) and "lookalike repair" in str(caught.value)
    fixed = repair(s(folder))
    assert fixed.remaining is not None and fixed.remaining.ok, fixed.remaining.problems
    kept, lost = fixed.salvaged["items"]
    assert kept and lost and kept + lost == N
    after = snapshot(folder)
    assert len(after) == kept and all(before[k] == v for k, v in after.items())
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        assert len(cat) == len(after) == cat.store.count()
        assert len(similar(cat, next(iter(after)), k=N)) == kept - 1


# -- rows --------------------------------------------------------------------------------------


def test_a_short_embedding_blob_costs_one_item_not_the_catalog(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expected = top_ids(folder)
    original = snapshot(folder)["item-0005"]
    sql(folder, "UPDATE embeddings SET vector = substr(vector, 1, 10) WHERE item_rowid = "
                "(SELECT rowid FROM items WHERE id = 'item-0005')")
    with caplog.at_level(logging.WARNING), Catalog.open(s(folder), taggers=default_taggers) as cat:
        assert len(cat) == N - 1
        hits = similar(cat, "item-0006", k=N)
        assert "item-0005" not in [h.item.id for h in hits] and len(hits) == N - 2
        with pytest.raises(CatalogCorruptError, match="embedding of item rowid"):
            similar(cat, "item-0005")
    assert "damaged embedding" in caplog.text
    problems = check(s(folder)).by_kind()
    assert set(problems) == {"embedding"}, "the open took it out of the vector files"
    assert problems["embedding"][0].item_id == "item-0005"
    assert "10 bytes" in problems["embedding"][0].message

    report = repair(s(folder))
    assert report.reembedded == ["item-0005"] and report.dropped == []
    assert report.remaining is not None and report.remaining.ok
    assert snapshot(folder)["item-0005"] == original, "re-embedded from its image"
    assert top_ids(folder) == expected


def test_a_damaged_vector_whose_image_is_gone_is_dropped(folder: Path) -> None:
    sql(folder, "UPDATE embeddings SET vector = zeroblob(256) WHERE item_rowid = "
                "(SELECT rowid FROM items WHERE id = 'item-0007')")
    with db(folder) as conn:
        Path(conn.execute("SELECT image_path FROM items WHERE id = 'item-0007'").fetchone()[0]
             ).unlink()
    problems = check(s(folder)).by_kind()
    assert "not of unit length" in problems["embedding"][0].message
    assert problems["image"][0].item_id == "item-0007"
    report = repair(s(folder))
    assert report.dropped == ["item-0007"] and report.remaining is not None
    assert report.remaining.ok and "item-0007" not in snapshot(folder)


def test_repair_without_reembedding_drops_items_with_damaged_vectors(folder: Path) -> None:
    nan = np.full(64, np.nan, dtype=np.float32).tobytes()
    sql(folder, "UPDATE embeddings SET vector = ? WHERE item_rowid = 3", nan)
    assert "non-finite" in check(s(folder)).of("embedding")[0].message
    report = repair(s(folder), reembed=False)
    assert len(report.dropped) == 1 and report.remaining is not None and report.remaining.ok
    assert len(snapshot(folder)) == N - 1


def test_a_wrong_stored_dim_does_not_make_the_catalog_unusable(folder: Path) -> None:
    expected = top_ids(folder)
    for wrong in ("128", "banana"):
        sql(folder, "UPDATE meta SET value = ? WHERE key = 'dim'", wrong)
        assert top_ids(folder) == expected
        with Catalog.open(s(folder), taggers=default_taggers) as cat:
            probe = folder.parent / "images" / "img0001.jpg"
            assert search_image(cat, probe, k=1)[0].item.id == "item-0001"  # encoder bound fine
        problems = check(s(folder)).of("meta")
        assert len(problems) == 1 and repr(wrong) in problems[0].message
    report = repair(s(folder))
    assert report.meta_fixed == ["dim 'banana' → 64"]
    assert report.remaining is not None and report.remaining.ok


def test_an_item_row_that_does_not_parse_is_left_out_then_reset(folder: Path) -> None:
    sql(folder, "UPDATE items SET sizes = '[not json', created_at = 'yesterday' "
                "WHERE id = 'item-0002'")
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        assert len(cat.items(limit=N)) == N - 1
        with pytest.raises(CatalogCorruptError, match="item-0002"):
            cat.get("item-0002")
    assert check(s(folder)).of("item")[0].item_id == "item-0002"
    report = repair(s(folder))
    assert sorted(report.fields_reset) == ["item-0002.created_at", "item-0002.sizes"]
    assert report.remaining is not None and report.remaining.ok
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        assert cat.get("item-0002").sizes == []


def test_missing_images_are_reported_and_left_searchable(folder: Path) -> None:
    (folder.parent / "images" / "img0003.jpg").unlink()
    (folder.parent / "images" / "img0004.jpg").unlink()
    problems = check(s(folder)).of("image")
    assert sorted(p.item_id or "" for p in problems) == ["item-0003", "item-0004"]
    assert all(p.file and p.file.endswith(".jpg") for p in problems)
    report = repair(s(folder))
    assert report.remaining is not None and not report.remaining.ok
    assert set(report.remaining.by_kind()) == {"image"} and report.dropped == []
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        assert similar(cat, "item-0003", 1)


def test_leftovers_of_killed_saves_are_notes_and_repair_removes_them(folder: Path) -> None:
    (folder / VECTORS / "manifest.json.4242.tmp").write_bytes(b"half a file")
    (folder / "uploads").mkdir()
    (folder / "uploads" / "0123abcd.jpg").write_bytes(b"an upload whose item was never stored")
    report = check(s(folder))
    assert report.ok and len(report.of("leftover")) == 2
    fixed = repair(s(folder))
    assert len(fixed.leftovers_removed) == 2
    assert fixed.remaining is not None and fixed.remaining.problems == []


def test_check_and_repair_json_reports_are_plain_data(folder: Path) -> None:
    sql(folder, "UPDATE meta SET value = '7' WHERE key = 'dim'")
    assert json.loads(json.dumps(check(s(folder)).as_dict()))["problems"]["meta"]
    assert json.loads(json.dumps(repair(s(folder)).as_dict()))["remaining"]["ok"]


def test_the_api_answers_503_for_a_damaged_item_not_a_traceback(folder: Path) -> None:
    sql(folder, "UPDATE embeddings SET vector = x'00' WHERE item_rowid = "
                "(SELECT rowid FROM items WHERE id = 'item-0009')")
    app = create_app(s(folder).model_copy(update={"admin_key_hash": hash_admin_key("k")}))
    with TestClient(app) as client:
        response = client.get("/items/item-0009/similar")
        assert response.status_code == 503
        assert "damaged" in response.json()["detail"] and str(folder) not in response.text
        assert client.get("/items/item-0010/similar").status_code == 200
    with Catalog.open(s(folder), taggers=default_taggers) as cat:
        assert len(cat.index) == N - 1, "the damaged row left the vector store"
