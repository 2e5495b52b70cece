"""Catalog: ingest (validation, duplicates, bad images, resume), search, filters, item CRUD.

Real SQLite files in tmp_path; the fake encoder (a registered encoder, not a mock)."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catalog_factory import make_dataset, write_csv, write_jsonl
from imagefactory import jpeg, noise
from lookalike import Catalog, Filters, ItemIn, ItemUpdate, Settings
from lookalike.attributes import default_taggers
from lookalike.catalog import DuplicateItemError
from lookalike.errors import CatalogMismatchError, FilterError, ItemNotFoundError, LookalikeError
from lookalike.recommend import search_image, similar


def open_catalog(folder: Path, **kw: object) -> Catalog:
    return Catalog.open(Settings(catalog_dir=folder, model="fake", **kw),
                        taggers=default_taggers)  # type: ignore[arg-type]


def test_ingest_csv_adds_every_row_and_second_run_adds_nothing(tmp_path: Path) -> None:
    images, meta, _ = make_dataset(tmp_path, 40)
    with open_catalog(tmp_path / "cat") as cat:
        report = cat.ingest(images, meta)
        assert (report.added, report.skipped, report.rejected) == (40, 0, [])
        item = cat.get("item-0003")
        assert item.category == "Pants" and item.price == 31.5 and item.currency == "EUR"
        assert item.sizes == ["S", "M"] and item.second_hand is False
        assert item.extra == {"sender_id": "3"}
        again = cat.ingest(images, meta)
        assert (again.added, again.skipped) == (0, 40)
        assert len(cat) == 40 and cat.store.count() == 40


def test_ingest_jsonl_and_folder_only(tmp_path: Path) -> None:
    images, _, rows = make_dataset(tmp_path, 12)
    write_jsonl(tmp_path / "items.jsonl", rows)
    with open_catalog(tmp_path / "a") as cat:
        assert cat.ingest(images, tmp_path / "items.jsonl").added == 12
    with open_catalog(tmp_path / "b") as cat:
        report = cat.ingest(images)  # no metadata: every image is an item named by its file
        assert report.added == 12
        assert cat.get("img0001").title == ""


def test_bad_rows_and_bad_images_are_reported_not_fatal(tmp_path: Path) -> None:
    images, _, rows = make_dataset(tmp_path, 10)
    rows[1]["price"] = "-3"  # negative price
    rows[2]["url"] = "javascript:alert(1)"  # not http(s)
    rows[3]["image"] = "missing.jpg"  # no such file
    rows[4]["sustainability"] = "nine"  # not a number
    (images / "broken.jpg").write_bytes(jpeg(noise())[:300])  # truncated JPEG
    (images / "empty.jpg").write_bytes(b"")
    (images / "text.jpg").write_text("hello, not an image")
    rows += [
        {**rows[0], "id": "trunc", "image": "broken.jpg"},
        {**rows[0], "id": "empty", "image": "empty.jpg"},
        {**rows[0], "id": "text", "image": "text.jpg"},
        {**rows[5], "id": "dup-image"},  # same bytes as row 5 under another id
        {**rows[6]},  # same id again
        {"id": "no-image", "title": "x"},
    ]
    meta = tmp_path / "items.csv"
    write_csv(meta, rows)
    report_path = tmp_path / "rejected.csv"
    with open_catalog(tmp_path / "cat") as cat:
        report = cat.ingest(images, meta, report_path=report_path)
        assert report.added == 6  # rows 0, 5..9
        assert report.skipped == 2  # dup-image and repeated id
    by_id = {r.item_id: r for r in report.rejected}
    assert by_id["item-0001"].field == "price" and by_id["item-0001"].row == 3
    assert by_id["item-0002"].field == "url"
    assert by_id["item-0003"].reason == "file not found"
    assert by_id["item-0004"].field == "sustainability"
    assert "truncated" in by_id["trunc"].reason or "corrupt" in by_id["trunc"].reason
    assert "empty" in by_id["empty"].reason
    assert "not an image" in by_id["text"].reason
    assert by_id["no-image"].field == "image"
    with report_path.open() as f:
        written = list(csv.DictReader(f))
    assert {r["id"] for r in written} == set(by_id)
    assert all(r["row"] and r["reason"] for r in written)


def test_malformed_csv_and_unknown_format(tmp_path: Path) -> None:
    images, _, _ = make_dataset(tmp_path, 2)
    (tmp_path / "bad.csv").write_text("title,price\nx,1\n")
    (tmp_path / "items.xml").write_text("<items/>")
    with open_catalog(tmp_path / "cat") as cat:
        with pytest.raises(LookalikeError, match="'image' column"):
            cat.ingest(images, tmp_path / "bad.csv")
        with pytest.raises(LookalikeError, match=r"items\.xml.*\.csv or \.jsonl"):
            cat.ingest(images, tmp_path / "items.xml")
        assert len(cat) == 0


def test_catalog_refuses_another_encoder(tmp_path: Path) -> None:
    images, meta, _ = make_dataset(tmp_path, 3)
    with open_catalog(tmp_path / "cat") as cat:
        cat.ingest(images, meta)
    from lookalike.encoders.fake import FakeEncoder

    with pytest.raises(CatalogMismatchError, match="fake"):
        Catalog.open(Settings(catalog_dir=tmp_path / "cat"), encoder=FakeEncoder(dim=32),
                     taggers=default_taggers)


def test_search_image_similar_and_filters_keep_recall(tmp_path: Path) -> None:
    images, meta, rows = make_dataset(tmp_path, 80)
    with open_catalog(tmp_path / "cat") as cat:
        cat.ingest(images, meta)
        hits = search_image(cat, images / rows[0]["image"], k=5)
        assert hits[0].item.id == "item-0000" and hits[0].score == pytest.approx(1.0, abs=1e-3)
        assert all(h.item.category == "Dress" for h in hits)
        more = similar(cat, "item-0000", k=5)
        assert "item-0000" not in [h.item.id for h in more] and len(more) == 5
        # a filter that keeps a few items still returns every one of them
        f = Filters(category=["Shoes"], brand=["Acme"], price_max=60)
        keep = {r["id"] for r in rows if r["category"] == "Shoes" and r["brand"] == "Acme"
                and float(r["price"]) <= 60}
        got = search_image(cat, images / rows[0]["image"], k=50, filters=f)
        assert {h.item.id for h in got} == keep and keep
        assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
        second = search_image(cat, images / rows[0]["image"], k=10,
                                  filters=Filters(second_hand=True, min_sustainability=2))
        assert second and all(h.item.second_hand and (h.item.sustainability or 0) >= 2
                              for h in second)
        sized = search_image(cat, images / rows[0]["image"], k=80, filters=Filters(size=["m"]))
        assert sized and all("M" in h.item.sizes for h in sized)


def test_filters_parse_and_reject() -> None:
    f = Filters.parse(["category=Dress,Skirt", "price_max=50", "second-hand=true"])
    assert f.category == ["Dress", "Skirt"] and f.price_max == 50 and f.second_hand is True
    with pytest.raises(FilterError, match="unknown field 'colr'"):
        Filters.parse(["colr=red"])
    with pytest.raises(FilterError, match="expected field=value"):
        Filters.parse(["red"])
    with pytest.raises(FilterError, match="price_min"):
        Filters.parse(["price_min=10", "price_max=5"])


def test_add_update_delete_one_item(tmp_path: Path) -> None:
    images, meta, _ = make_dataset(tmp_path, 8)
    with open_catalog(tmp_path / "cat") as cat:
        cat.ingest(images, meta)
        data = jpeg(noise((60, 80), seed=5))
        path = tmp_path / "new.jpg"
        path.write_bytes(data)
        item = cat.add_item(ItemIn(id="new-1", image="new.jpg", title="Noisy"), data, path)
        assert len(cat) == 9 and item.title == "Noisy"
        assert search_image(cat, data, k=1)[0].item.id == "new-1"
        with pytest.raises(DuplicateItemError):
            cat.add_item(ItemIn(id="new-2", image="new.jpg"), data, path)
        updated = cat.update_item("new-1", ItemUpdate(price=12.0, title="Noisy top"))
        assert (updated.price, updated.title) == (12.0, "Noisy top")
        cat.delete_item("new-1")
        assert len(cat) == 8
        with pytest.raises(ItemNotFoundError):
            cat.get("new-1")
        assert search_image(cat, data, k=1)[0].item.id != "new-1"
    # the store really is a SQLite file in WAL mode holding the vectors
    conn = sqlite3.connect(tmp_path / "cat" / "catalog.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 8


def test_a_served_catalog_sees_items_another_process_adds_and_deletes(tmp_path: Path) -> None:
    """Two server workers, or a CLI ingest into a served catalog: each process's index follows
    SQLite at its next search, without a reopen."""
    images, meta, _ = make_dataset(tmp_path, 12)
    folder = tmp_path / "cat"
    with open_catalog(folder) as cat:
        cat.ingest(images, meta)
        data = jpeg(noise((60, 80), seed=7))
        assert search_image(cat, data, k=1)[0].item.id != "other-1"
        (tmp_path / "other.jpg").write_bytes(data)
        script = (
            "import sys\nfrom pathlib import Path\n"
            "from lookalike import Catalog, ItemIn, Settings\n"
            "from lookalike.attributes import default_taggers\n"
            "cat = Catalog.open(Settings(catalog_dir=sys.argv[1], model='fake'),\n"
            "                   taggers=default_taggers)\n"
            "p = Path(sys.argv[2])\n"
            "cat.add_item(ItemIn(id='other-1', image=p.name), p.read_bytes(), p)\n"
            "cat.delete_item('item-0000')\n"
        )
        subprocess.run([sys.executable, "-c", script, str(folder), str(tmp_path / "other.jpg")],
                       check=True)
        hits = search_image(cat, data, k=12)
        assert hits[0].item.id == "other-1" and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert "item-0000" not in {h.item.id for h in hits} and len(hits) == 12
        assert len(cat) == 12 and not cat.refresh()  # in step now: nothing more to do
        with open_catalog(folder) as fresh:  # the same index as a process that starts now
            np.testing.assert_array_equal(fresh.index.ids(), cat.index.ids())
            np.testing.assert_array_equal(fresh.index.vectors(fresh.index.ids()),
                                          cat.index.vectors(cat.index.ids()))


def test_reopen_restores_vectors_exactly(tmp_path: Path) -> None:
    images, meta, _ = make_dataset(tmp_path, 10)
    with open_catalog(tmp_path / "cat") as cat:
        cat.ingest(images, meta)
        before = cat.index.vectors(cat.index.ids()).copy()
    with open_catalog(tmp_path / "cat") as cat:
        np.testing.assert_array_equal(cat.index.vectors(cat.index.ids()), before)


def test_every_bad_image_kind_is_rejected_and_good_ones_of_every_mode_are_added(
    tmp_path: Path,
) -> None:
    from imagefactory import (
        animated_gif,
        corrupt_middle,
        encode,
        la_half_transparent,
        minimal_pdf,
        palette_with_transparency,
        png,
        png_with_declared_size,
        rgba_half_transparent,
        solid,
        tiff,
        truncated,
    )

    good = {
        "rgba.png": png(rgba_half_transparent((32, 32))),
        "la.png": png(la_half_transparent((32, 32))),
        "pal.png": png(palette_with_transparency((32, 32))),
        "cmyk.jpg": encode(solid((32, 32), (10, 200, 30), mode="CMYK"), "JPEG"),
        "anim.gif": animated_gif([(200, 0, 0), (0, 0, 200)], (32, 32)),
        "pic.webp": encode(solid((32, 32), (0, 90, 90)), "WEBP"),
        "pic.bmp": encode(solid((32, 32), (90, 0, 90)), "BMP"),
    }
    bad = {
        "trunc.jpg": truncated(jpeg(noise((64, 64)))),
        "trunc.png": truncated(png(noise((64, 64), seed=2))),
        "corrupt.png": corrupt_middle(png(noise((64, 64), seed=3))),
        "zero.jpg": b"",
        "text.png": b"hello",
        "doc.pdf": minimal_pdf(),
        "scan.tiff": tiff(),
        "bomb.png": png_with_declared_size(30000, 30000),
    }
    images = tmp_path / "images"
    images.mkdir()
    for name, data in {**good, **bad}.items():
        (images / name).write_bytes(data)
    write_csv(tmp_path / "items.csv", [{"id": n.replace(".", "-"), "image": n}
                                       for n in [*good, *bad]])
    with open_catalog(tmp_path / "cat", max_image_pixels=10_000_000) as cat:
        report = cat.ingest(images, tmp_path / "items.csv")
    assert report.added == len(good)
    rejected = {r.file.rsplit("/", 1)[-1]: r.reason for r in report.rejected}
    assert set(rejected) == set(bad)
    assert "pixels" in rejected["bomb.png"] or "bomb" in rejected["bomb.png"]
    assert any(w in rejected["doc.pdf"] for w in ("unsupported image format", "not an image"))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_duplicate_images_first_row_wins_whatever_the_threads(tmp_path: Path, workers: int) -> None:
    images, _, rows = make_dataset(tmp_path, 30)
    rows += [{**rows[i], "id": f"copy-of-{i}"} for i in (0, 13, 29)]
    rows.insert(1, {**rows[25], "id": "early-copy-of-25"})  # a copy *before* its original
    write_csv(tmp_path / "dups.csv", rows)
    with open_catalog(tmp_path / "cat", batch_size=4, decode_threads=workers) as cat:
        report = cat.ingest(images, tmp_path / "dups.csv")
        ids = {it.id for it in cat.items(limit=100)}
    assert report.added == 30 and report.skipped == 4
    assert "early-copy-of-25" in ids and "item-0025" not in ids
    assert not any(i.startswith("copy-of-") for i in ids)


def test_ingest_commits_in_groups_and_an_interrupted_run_keeps_what_was_committed(
    tmp_path: Path,
) -> None:
    from lookalike.catalog.ingest import IngestProgress, ingest

    images, meta, _ = make_dataset(tmp_path, 40)
    commits: list[int] = []
    seen: list[IngestProgress] = []

    def stop_after_five_batches(p: IngestProgress) -> None:
        seen.append(p)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with open_catalog(tmp_path / "cat") as cat:
        with pytest.raises(KeyboardInterrupt):
            ingest(cat.store, cat.encoder, images, meta, batch_size=2, chunk_size=4,
                   commit_items=12, progress=stop_after_five_batches,
                   on_batch=lambda rowids, vectors: commits.append(len(rowids)))
        # 5 chunks of 4 encoded: the first 12 committed, the next 8 were pending and are lost
        assert commits == [12] and cat.store.count() == 12
        assert [p.added for p in seen] == [4, 8, 12, 16, 20]  # progress counts pending items
        commits.clear()
        report = ingest(cat.store, cat.encoder, images, meta, batch_size=2, chunk_size=4,
                        commit_items=12,
                        on_batch=lambda rowids, vectors: commits.append(len(rowids)))
        assert (report.added, report.skipped) == (28, 12)
        assert commits == [12, 12, 4] and cat.store.count() == 40


def test_ingest_hands_the_vector_store_its_items_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver holds at most one chunk of vectors: the vector store gets the committed
    items chunk by chunk during the ingest (it used to get every vector at the very end)."""
    import lookalike.catalog.catalog as catalog_module

    monkeypatch.setattr(catalog_module, "UPSERT_ITEMS", 8)  # the chunk, small for the test
    images, meta, _ = make_dataset(tmp_path, 40)
    behind: list[tuple[int, int]] = []  # (committed to SQLite, in the vector store)
    with open_catalog(tmp_path / "cat", commit_every=4, batch_size=2, chunk_size=4) as cat:

        def watch(_: object) -> None:
            behind.append((cat.store.count(), len(cat.index)))

        report = cat.ingest(images, meta, progress=watch)
        assert report.added == 40 and len(cat.index) == 40
        assert cat.index.ids().tolist() == sorted(report.added_rowids)
        hits = similar(cat, "item-0007", k=3)
        assert hits and all(hit.item.id != "item-0007" for hit in hits)
    assert behind[-1][1] >= 24  # seen by the vector store before the ingest ended
    assert all(committed - indexed <= 8 + 4 for committed, indexed in behind), behind


def test_a_file_longer_than_a_window_goes_through_window_by_window_to_the_same_catalog(
    tmp_path: Path,
) -> None:
    """Validate → encode → write runs `window_rows` rows at a time (the driver never holds the
    whole file): the engine gets no more than a window of photos, and the catalog, the report
    and the progress total are those of one window — a repeated id, the same photo under
    another id and a bad row in later windows included."""
    from collections.abc import Iterator, Sequence

    from lookalike.catalog.ingest import IngestProgress, LocalEngine, ingest

    images, _, rows = make_dataset(tmp_path, 30)
    extra = [dict(rows[2]), {**rows[5], "id": "copy-of-5"}, {**rows[7], "id": "bad", "price": "x"}]
    write_csv(tmp_path / "long.csv", rows + extra)
    sizes: list[int] = []

    class Recording(LocalEngine):
        def encode(self, encoder, images: Sequence[str], prepare):  # type: ignore[no-untyped-def]
            sizes.append(len(images))
            batches: Iterator[object] = super().encode(encoder, images, prepare)
            yield from batches

    outcome = {}
    for window in (7, 1000):
        sizes.clear()
        seen: list[IngestProgress] = []
        with open_catalog(tmp_path / f"cat-{window}") as cat:
            report = ingest(cat.store, cat.encoder, images, tmp_path / "long.csv",
                            engine=Recording(2, 4, 2), window_rows=window,
                            progress=seen.append)
            outcome[window] = (
                report.added, report.skipped,
                [(r.row, r.item_id, r.field) for r in report.rejected],
                sorted((i.id, i.image_hash, i.price) for i in cat.items(limit=100)),
                seen[-1].total, seen[-1].done,
            )
        assert sizes == ([7, 7, 7, 7, 3] if window == 7 else [31])  # 30 rows + copy-of-5
    assert outcome[7] == outcome[1000]
    added, skipped, rejected, _, total, done = outcome[7]
    assert (added, skipped, total, done) == (30, 2, 31, 31)  # repeated id, same photo skipped
    assert rejected == [(34, "bad", "price")]
