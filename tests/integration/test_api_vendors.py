"""Vendors over HTTP (issue 21): vendor keys that own their items, the admin key over all,
replacing a photo, bulk upserts of JSON Lines validated as ingest validates. TestClient
against a real SQLite catalog built with the fake encoder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_api import ADMIN, assert_error, settings_for

from catalog_factory import make_dataset, write_jsonl
from imagefactory import noise, png
from lookalike.api import create_app
from lookalike.attributes import default_taggers
from lookalike.catalog import Catalog
from lookalike.catalog.ingest import validate_row
from lookalike.catalog.metadata import read_metadata
from lookalike.users.vendors import Vendors


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[TestClient, Catalog, dict[str, str]]]:
    """12 items ingested by the admin; vendors acme and birch with their keys."""
    images, meta, _ = make_dataset(tmp_path / "data", 12)
    # a burst of 3 wrong keys that no refill undoes mid-test, however slow the machine (the
    # default 6 a minute gave one back if three key checks took over 10 s)
    catalog = Catalog.open(settings_for(tmp_path / "cat", auth_failures_burst=3,
                                        auth_failures_per_minute=0.01), taggers=default_taggers)
    catalog.ingest(images, meta)
    vendors = Vendors(catalog.store)
    keys = {name: vendors.add(name)[1] for name in ("acme", "birch")}
    yield TestClient(create_app(catalog.settings, catalog)), catalog, keys
    catalog.close()


def key(k: str) -> dict[str, str]:
    return {"X-API-Key": k}


def photo(seed: int) -> bytes:
    return png(noise((96, 128), seed=seed))


def add(c: TestClient, k: str, meta: dict[str, Any], seed: int) -> Any:
    return c.post("/items", files={"image": ("p.png", photo(seed), "image/png")},
                  data={"item": json.dumps(meta)}, headers=key(k))


def test_a_vendor_changes_only_its_own_items(
    shop: tuple[TestClient, Catalog, dict[str, str]],
) -> None:
    c, catalog, keys = shop
    made = add(c, keys["acme"], {"id": "coat-1", "title": "Coat"}, 1)
    assert made.status_code == 201, made.text
    assert made.json()["id"] == "acme:coat-1"  # the vendor's namespace
    assert c.patch("/items/acme:coat-1", json={"price": 20},
                   headers=key(keys["acme"])).json()["price"] == 20
    # another vendor: 403 for every write; the item is unchanged
    assert_error(c.patch("/items/acme:coat-1", json={"price": 1}, headers=key(keys["birch"])),
                 403, "another vendor")
    assert_error(c.delete("/items/acme:coat-1", headers=key(keys["birch"])), 403)
    assert_error(c.put("/items/acme:coat-1/image", files={"image": ("x.png", photo(2))},
                       headers=key(keys["birch"])), 403)
    assert c.get("/items/acme:coat-1").json()["price"] == 20
    # an item the admin ingested belongs to no vendor: only the admin may change it
    assert_error(c.patch("/items/item-0001", json={"price": 1}, headers=key(keys["acme"])),
                 403, "admin")
    assert c.patch("/items/item-0001", json={"price": 1}, headers=ADMIN).status_code == 200
    # the admin may change a vendor's item too
    assert c.patch("/items/acme:coat-1", json={"state": "sold"}, headers=ADMIN).json()[
        "state"] == "sold"
    assert_error(c.delete("/items/ghost", headers=key(keys["acme"])), 404)
    assert c.delete("/items/acme:coat-1", headers=key(keys["acme"])).status_code == 204
    assert_error(c.get("/items/acme:coat-1"), 404)
    assert Vendors(catalog.store).list()[0][1] == 0  # the ownership went with the item


def test_wrong_and_revoked_keys_are_refused_and_rate_limited(
    shop: tuple[TestClient, Catalog, dict[str, str]],
) -> None:
    c, catalog, keys = shop
    assert_error(c.patch("/items/item-0001", json={"price": 1}), 401, "X-API-Key")
    Vendors(catalog.store).revoke("birch")
    assert_error(add(c, keys["birch"], {"id": "x"}, 3), 403, "revoked")
    assert_error(add(c, keys["acme"][:-2] + "zz", {"id": "x"}, 3), 403)
    assert_error(add(c, "lkv_guess", {"id": "x"}, 3), 403)  # the burst of 3 is spent
    limited = add(c, keys["acme"] + "x", {"id": "x"}, 3)
    assert_error(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert c.get("/catalog").json()["items"] == 12


def test_replacing_a_photo_reencodes_and_keeps_the_fields(
    shop: tuple[TestClient, Catalog, dict[str, str]],
) -> None:
    c, catalog, keys = shop
    assert add(c, keys["acme"], {"id": "bag", "title": "Bag", "price": 9}, 4).status_code == 201
    old_file = catalog.image_file(catalog.get("acme:bag"))
    new = photo(5)
    changed = c.put("/items/acme:bag/image", files={"image": ("new.png", new, "image/png")},
                    headers=key(keys["acme"]))
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Bag" and changed.json()["price"] == 9
    assert c.get("/items/acme:bag/image").content == new
    assert not old_file.exists()  # the API's own upload is gone with its item's old photo
    hit = c.post("/search", files={"photo": ("q.png", new, "image/png")}, data={"k": "1"})
    assert hit.json()["results"][0]["item"]["id"] == "acme:bag"
    assert not Path(catalog.get("acme:bag").image_path).is_absolute()  # inside the folder
    # bad photos change nothing
    assert_error(c.put("/items/acme:bag/image", files={"image": ("n.png", b"nope")},
                       headers=key(keys["acme"])), 415)
    assert c.get("/items/acme:bag/image").content == new
    assert Vendors(catalog.store).owner("acme:bag") is not None  # still the vendor's


def bulk(c: TestClient, k: str, rows: list[Any] | bytes, photos: dict[str, bytes]) -> Any:
    body = rows if isinstance(rows, bytes) else b"".join(
        (r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in rows)
    files: list[tuple[str, tuple[str, bytes]]] = [("rows", ("rows.jsonl", body))]
    files += [("images", (name, data)) for name, data in photos.items()]
    return c.post("/items/bulk", files=files, headers=key(k))


def test_bulk_upsert_creates_updates_and_reports_each_line(
    shop: tuple[TestClient, Catalog, dict[str, str]],
) -> None:
    c, _, keys = shop
    rows: list[Any] = [
        {"id": "a", "image": "a.png", "title": "A", "price": "12,50", "sizes": "S;M"},
        {"id": "b", "image": "b.png", "title": "B", "price": "free"},
        "{not json",
        {"id": "c", "image": "missing.png"},
        {"id": "d", "image": "../../etc/passwd"},
    ]
    first = bulk(c, keys["acme"], rows, {"a.png": photo(10), "b.png": photo(11)})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["created"], body["updated"], body["rejected"]) == (1, 0, 4)
    by_line = {r["line"]: r for r in body["rows"]}
    assert by_line[1]["status"] == "created" and by_line[1]["id"] == "acme:a"
    assert by_line[2]["errors"][0]["field"] == "price"
    assert "invalid JSON" in by_line[3]["errors"][0]["reason"]
    assert "missing.png" in by_line[4]["errors"][0]["reason"]
    assert "outside" in by_line[5]["errors"][0]["reason"]
    item = c.get("/items/acme:a").json()
    assert item["price"] == 12.5 and item["sizes"] == ["S", "M"]
    # again: the same id updates (the row is the whole item), a new photo replaces the old
    second = bulk(c, keys["acme"], [{"id": "a", "image": "a2.png", "title": "A2"}],
                  {"a2.png": photo(12)})
    assert second.json()["rows"][0]["status"] == "updated"
    item = c.get("/items/acme:a").json()
    assert item["title"] == "A2" and item["price"] is None
    assert c.get("/items/acme:a/image").content == photo(12)
    # another vendor's rows land in its own namespace, never on acme's items
    third = bulk(c, keys["birch"], [{"id": "a", "image": "x.png"}], {"x.png": photo(13)})
    assert third.json()["rows"][0]["id"] == "birch:a"
    assert c.get("/items/acme:a").json()["title"] == "A2"
    # a row whose photo is refused (birch's very photo) changes nothing of the item
    dup = bulk(c, keys["acme"], [{"id": "a", "image": "d.png", "title": "changed"}],
               {"d.png": photo(13)})
    assert dup.json()["rows"][0]["status"] == "rejected"
    assert dup.json()["rows"][0]["errors"][0]["field"] == "image"
    assert c.get("/items/acme:a").json()["title"] == "A2"
    # the admin's rows are upserts by plain id: an ingested item is updated
    admin = bulk(c, ADMIN["X-API-Key"], [{"id": "item-0002", "image": "img0002.jpg",
                                           "title": "renamed"}], {})
    assert admin.json()["rows"][0]["status"] == "updated"
    assert c.get("/items/item-0002").json()["title"] == "renamed"


def test_bulk_rows_are_validated_exactly_as_ingest_validates_them(
    shop: tuple[TestClient, Catalog, dict[str, str]], tmp_path: Path,
) -> None:
    c, _, keys = shop
    rows = [{"id": "x", "image": "x.png", "price": -1, "currency": "euro", "url": "ftp://a",
             "state": "gone", "rating": "9", "kids": "maybe"},
            {"id": "bad id!", "image": "/abs.png"}]
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, rows)
    expected = []
    for raw in read_metadata(path):
        checked = validate_row(raw)
        assert isinstance(checked, list)
        expected.append([{"field": r.field, "reason": r.reason} for r in checked])
    got = bulk(c, keys["acme"], rows, {"x.png": photo(20)}).json()["rows"]
    assert [r["errors"] for r in got] == expected
    assert {e["field"] for e in expected[0]} >= {"price", "currency", "url", "state"}


def test_bulk_bodies_are_bounded(shop: tuple[TestClient, Catalog, dict[str, str]]) -> None:
    c, catalog, keys = shop
    app = create_app(catalog.settings.model_copy(update={"bulk_max_rows": 3}), catalog)
    small = TestClient(app)
    too_many = bulk(small, keys["acme"], [{"id": str(i), "image": "a.png"} for i in range(4)],
                    {"a.png": photo(30)})
    assert_error(too_many, 422, "more than 3 rows")
    assert_error(bulk(c, keys["acme"], b"\n\n", {}), 422, "no rows")
    assert_error(bulk(c, "lkv_nope", [{"id": "a", "image": "a.png"}], {}), 403)
    assert c.get("/catalog").json()["items"] == 12


def test_the_http_reference_lists_the_vendor_routes(
    shop: tuple[TestClient, Catalog, dict[str, str]],
) -> None:
    paths = shop[0].get("/openapi.json").json()["paths"]
    assert "put" in paths["/items/{item_id}/image"] and "post" in paths["/items/bulk"]
