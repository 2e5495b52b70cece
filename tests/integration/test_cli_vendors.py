"""`lookalike export` round trips through `lookalike ingest`; `copy_images` makes a catalog
folder that can be moved and still shows its photos; `lookalike vendors add|list|revoke`.
In-process Typer runner, fake encoder, real SQLite files."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_serve import server  # noqa: F401  (the real-server fixture, over `catalog_dir` here)
from typer.testing import CliRunner

from catalog_factory import make_rows, write_images, write_jsonl
from lookalike.api import create_app
from lookalike.attributes import default_taggers
from lookalike.catalog import Catalog
from lookalike.catalog.maintenance import check
from lookalike.cli import app
from lookalike.config import Settings
from lookalike.users.vendors import Vendors

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    res = runner.invoke(app, [*args, "--json"], env=env)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def odd_rows(n: int) -> list[dict[str, Any]]:
    """Rows with values a round trip could lose: quotes, commas, newlines, unicode, a sold
    item, ratings, nested extra fields, empty fields."""
    rows = make_rows(n)
    rows[0]["title"] = 'Coat, "long", with\nnew line — ünïcode'
    rows[1]["state"] = "sold"
    rows[1]["rating"] = "4.5"
    rows[1]["reviews"] = "12"
    rows[2]["extra"] = {"usage": "Formal", "nested": {"a": [1, 2]}}
    rows[3]["url"] = "https://shop.example/item?id=3&x=y"
    rows[4]["brand"] = ""
    rows[5]["price"] = "1234.5"
    return rows


def snapshot(folder: Path) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """Every item's exported fields and its vector, by id."""
    with Catalog.open(Settings(catalog_dir=folder, model="fake", auto_tag=False),
                      create=False) as cat:
        out = {}
        for item in cat.store.list(None, 0, 10_000):
            fields = item.model_dump(exclude={"rowid", "image_path", "created_at", "updated_at",
                                              "predicted", "base_price", "base_currency",
                                              "brand_rating"})
            out[item.id] = (fields, cat.vector_of(item.id))
        return out


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_round_trips_through_ingest(tmp_path: Path, fmt: str) -> None:
    rows = odd_rows(16)
    write_images(tmp_path / "images", rows)
    write_jsonl(tmp_path / "items.jsonl", rows)
    invoke("ingest", str(tmp_path / "images"), "--metadata", str(tmp_path / "items.jsonl"),
           "-c", str(tmp_path / "cat"), "-m", "fake")
    exported = invoke("export", str(tmp_path / f"out.{fmt}"), "--images", str(tmp_path / "copy"),
                      "-c", str(tmp_path / "cat"))
    assert exported["items"] == 16 and exported["images_copied"] == 16
    shutil.rmtree(tmp_path / "images")  # the copy alone rebuilds it
    report = invoke("ingest", str(tmp_path / "copy"), "--metadata", str(tmp_path / f"out.{fmt}"),
                    "-c", str(tmp_path / "again"), "-m", "fake")
    assert report["added"] == 16 and report["rejected"] == 0
    before, after = snapshot(tmp_path / "cat"), snapshot(tmp_path / "again")
    assert before.keys() == after.keys()
    for item_id, (fields, vector) in before.items():
        assert after[item_id][0] == fields, item_id
        np.testing.assert_allclose(after[item_id][1], vector, atol=1e-6)
    assert after["item-0000"][0]["title"] == rows[0]["title"]
    assert after["item-0002"][0]["extra"]["nested"] == {"a": [1, 2]}


def test_copied_photos_make_a_catalog_folder_that_can_move(tmp_path: Path) -> None:
    rows = make_rows(8)
    write_images(tmp_path / "images", rows)
    write_jsonl(tmp_path / "items.jsonl", rows)
    invoke("ingest", str(tmp_path / "images"), "--metadata", str(tmp_path / "items.jsonl"),
           "-c", str(tmp_path / "cat"), "-m", "fake", env={"LOOKALIKE_COPY_IMAGES": "1"})
    photo = (tmp_path / "images" / rows[3]["image"]).read_bytes()
    shutil.rmtree(tmp_path / "images")  # the shop's folder is gone...
    (tmp_path / "cat").rename(tmp_path / "moved")  # ...and the catalog moved elsewhere
    settings = Settings(catalog_dir=tmp_path / "moved", model="fake")
    assert check(settings).ok
    with Catalog.open(settings, create=False, taggers=default_taggers) as cat:
        assert not Path(cat.get("item-0003").image_path).is_absolute()
        served = TestClient(create_app(settings, cat)).get("/items/item-0003/image")
        assert served.status_code == 200 and served.content == photo
    # an export of a self-contained catalog names photos relative to the catalog folder
    exported = invoke("export", str(tmp_path / "out.csv"), "-c", str(tmp_path / "moved"))
    assert Path(exported["images_root"]) == (tmp_path / "moved").resolve()
    assert exported["images_missing"] == []


def test_old_absolute_paths_still_work_and_relative_ones_stay_inside(tmp_path: Path) -> None:
    rows = make_rows(4)
    write_images(tmp_path / "images", rows)
    write_jsonl(tmp_path / "items.jsonl", rows)
    invoke("ingest", str(tmp_path / "images"), "--metadata", str(tmp_path / "items.jsonl"),
           "-c", str(tmp_path / "cat"), "-m", "fake")
    settings = Settings(catalog_dir=tmp_path / "cat", model="fake")
    with Catalog.open(settings, create=False, taggers=default_taggers) as cat:
        item = cat.get("item-0001")
        assert Path(item.image_path).is_absolute()  # outside the folder: as before
        client = TestClient(create_app(settings, cat))
        assert client.get("/items/item-0001/image").status_code == 200
        # a stored relative path that leads out of the folder is never served
        (tmp_path / "secret.jpg").write_bytes(b"secret")
        with cat.store.transaction() as conn:
            conn.execute("UPDATE items SET image_path = '../secret.jpg' WHERE id = 'item-0001'")
            conn.execute("UPDATE items SET image_path = 'link.jpg' WHERE id = 'item-0002'")
        (tmp_path / "cat" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
        for item_id in ("item-0001", "item-0002"):
            answer = client.get(f"/items/{item_id}/image")
            assert answer.status_code == 404 and b"secret" not in answer.content
    problems = {p.item_id: p.message for p in check(settings).of("image")}
    assert "outside" in problems["item-0001"] and "outside" in problems["item-0002"]


def test_vendors_add_list_revoke(tmp_path: Path) -> None:
    rows = make_rows(2)
    write_images(tmp_path / "images", rows)
    invoke("ingest", str(tmp_path / "images"), "-c", str(tmp_path / "cat"), "-m", "fake")
    cat = str(tmp_path / "cat")
    added = invoke("vendors", "add", "acme", "-c", cat)
    assert added["vendor"] == "acme" and added["key"].startswith("lkv_")
    # only a digest is stored: the key itself is nowhere in the catalog file
    assert added["key"].encode() not in (tmp_path / "cat" / "catalog.sqlite").read_bytes()
    res = runner.invoke(app, ["vendors", "add", "acme", "-c", cat])
    assert res.exit_code != 0 and "exists" in res.output
    res = runner.invoke(app, ["vendors", "add", "Bad Name!", "-c", cat])
    assert res.exit_code != 0 and "vendor name" in res.output
    assert [v["vendor"] for v in invoke("vendors", "list", "-c", cat)] == ["acme"]
    res = runner.invoke(app, ["vendors", "revoke", "acme", "-c", cat])
    assert res.exit_code == 0, res.output
    listed = invoke("vendors", "list", "-c", cat)
    assert listed[0]["active"] is False
    with Catalog.open(Settings(catalog_dir=tmp_path / "cat", model="fake"), create=False,
                      taggers=default_taggers) as c:
        assert Vendors(c.store).authenticate(added["key"]) is None
    res = runner.invoke(app, ["vendors", "list", "-c", str(tmp_path / "nothing")])
    assert res.exit_code != 0



@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """For `test_serve`'s `server`: a self-contained catalog, moved after its ingest, its
    photo folder gone (the photo of item-0002 kept aside in photo.bin)."""
    rows = make_rows(6)
    write_images(tmp_path / "images", rows)
    write_jsonl(tmp_path / "items.jsonl", rows)
    invoke("ingest", str(tmp_path / "images"), "--metadata", str(tmp_path / "items.jsonl"),
           "-c", str(tmp_path / "cat"), "-m", "fake", env={"LOOKALIKE_COPY_IMAGES": "1"})
    (tmp_path / "photo.bin").write_bytes((tmp_path / "images" / rows[2]["image"]).read_bytes())
    shutil.rmtree(tmp_path / "images")
    (tmp_path / "cat").rename(tmp_path / "moved")
    return tmp_path / "moved"


def test_a_moved_catalog_served_by_a_real_server_shows_its_photos(
    server: tuple[Any, str], catalog_dir: Path,  # noqa: F811  (the fixture, used)
) -> None:
    """`lookalike serve` (a real process): photos of the moved catalog are served, and a vendor
    key made by the command line while it runs is refused another's item."""
    _, url = server
    with urllib.request.urlopen(f"{url}/items/item-0002/image", timeout=60) as answer:
        assert answer.read() == (catalog_dir.parent / "photo.bin").read_bytes()
    vendor_key = invoke("vendors", "add", "acme", "-c", str(catalog_dir))["key"]
    change = urllib.request.Request(
        f"{url}/items/item-0002", data=b'{"price": 1}', method="PATCH",
        headers={"X-API-Key": vendor_key, "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(change, timeout=60)
    assert refused.value.code == 403


@pytest.mark.slow
def test_export_round_trip_with_the_real_model(tmp_path: Path) -> None:
    """The default (real, int8 ONNX) model encodes the photos of an exported catalog again
    into the same vectors."""
    rows = make_rows(6)
    write_images(tmp_path / "images", rows)
    write_jsonl(tmp_path / "items.jsonl", rows)
    invoke("ingest", str(tmp_path / "images"), "--metadata", str(tmp_path / "items.jsonl"),
           "-c", str(tmp_path / "cat"))
    invoke("export", str(tmp_path / "out.jsonl"), "--images", str(tmp_path / "copy"),
           "-c", str(tmp_path / "cat"))
    invoke("ingest", str(tmp_path / "copy"), "--metadata", str(tmp_path / "out.jsonl"),
           "-c", str(tmp_path / "again"))
    with Catalog.open(Settings(catalog_dir=tmp_path / "cat"), create=False,
                      taggers=default_taggers) as first, \
            Catalog.open(Settings(catalog_dir=tmp_path / "again"), create=False,
                         taggers=default_taggers) as second:
        assert first.store.model_name == second.store.model_name != "fake"
        for row in rows:
            np.testing.assert_allclose(second.vector_of(row["id"]), first.vector_of(row["id"]),
                                       atol=1e-5)
            assert second.get(row["id"]).title == first.get(row["id"]).title
