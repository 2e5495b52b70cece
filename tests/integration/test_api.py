"""API tests with TestClient against a real SQLite catalog of the bundled sample, built with
the registered `fake` encoder (fast). The real encoder runs in test_api_real.py."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from imagefactory import jpeg, minimal_pdf, noise, png, png_with_declared_size, truncated
from lookalike.api import create_app
from lookalike.api.deps import hash_admin_key
from lookalike.api.queries import search_photo
from lookalike.api.schemas import Steering
from lookalike.catalog import Catalog, Filters
from lookalike.config import Settings
from lookalike.demo import build_demo_catalog, sample_images, sample_metadata

ADMIN_KEY = "test-admin-key-5f2c"
ADMIN = {"X-API-Key": ADMIN_KEY}
ADMIN_HASH = hash_admin_key(ADMIN_KEY)


def sample_rows() -> list[dict[str, str]]:
    with sample_metadata().open(newline="") as f:
        return list(csv.DictReader(f))


def photo_of(row: dict[str, str]) -> bytes:
    return (sample_images() / row["image"]).read_bytes()


def settings_for(folder: Path, **overrides: Any) -> Settings:
    return Settings(catalog_dir=folder, model="fake", admin_key_hash=ADMIN_HASH, **overrides)


@pytest.fixture(scope="module")
def shared_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """Read-mostly catalog shared by a module's tests (users may be added, items not)."""
    catalog, report = build_demo_catalog(settings_for(tmp_path_factory.mktemp("fake-sample")))
    assert report.added == 306
    yield catalog
    catalog.close()


@pytest.fixture
def client(shared_catalog: Catalog) -> TestClient:
    return TestClient(create_app(shared_catalog.settings, shared_catalog))


@pytest.fixture
def fresh_client(tmp_path: Path) -> Iterator[TestClient]:
    """A client over a catalog of its own, for tests that add, change or delete items."""
    catalog, _ = build_demo_catalog(settings_for(tmp_path / "cat"))
    yield TestClient(create_app(catalog.settings, catalog))
    catalog.close()


def assert_error(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    for word in words:
        assert word.lower() in detail.lower(), detail


# -- items ---------------------------------------------------------------------------------------


def test_list_items_paginates(client: TestClient) -> None:
    for_sale = sum(r["state"] != "sold" for r in sample_rows())  # sold items are left out
    first = client.get("/items", params={"limit": 50}).json()
    second = client.get("/items", params={"limit": 50, "offset": 50}).json()
    assert first["total"] == for_sale
    assert len(first["items"]) == 50 and len(second["items"]) == 50
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}
    last = client.get("/items", params={"limit": 50, "offset": 250}).json()
    assert len(last["items"]) == for_sale - 250
    everything = client.get("/items", params={"include_sold": "true"}).json()
    assert everything["total"] == 306


def test_list_items_filters(client: TestClient) -> None:
    page = client.get("/items", params={"category": "Dress,Skirt", "price_max": 60,
                                        "second_hand": "true", "limit": 200}).json()
    assert page["total"] == len(page["items"]) > 0
    for item in page["items"]:
        assert item["category"] in ("Dress", "Skirt")
        assert item["price"] <= 60 and item["second_hand"] is True
    repeated = client.get("/items", params=[("category", "Dress"), ("category", "Hat")]).json()
    assert {i["category"] for i in repeated["items"]} == {"Dress", "Hat"}


def test_public_item_hides_server_paths(client: TestClient) -> None:
    item = client.get("/items", params={"limit": 1}).json()["items"][0]
    assert "image_path" not in item and "rowid" not in item and "image_hash" not in item
    assert item["image_url"] == f"/items/{item['id']}/image"


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"price_min": 50, "price_max": 10}, ["price_min", "price_max"]),
        ({"price_min": "cheap"}, ["price_min"]),
        ({"min_sustainability": 9}, ["min_sustainability"]),
        ({"kids": "maybe"}, ["kids"]),
        ({"limit": 0}, ["limit"]),
        ({"limit": 100000}, ["limit"]),
        ({"offset": -1}, ["offset"]),
    ],
)
def test_bad_filters_are_422(client: TestClient, params: dict[str, Any], words: list[str]) -> None:
    assert_error(client.get("/items", params=params), 422, *words)


def test_misspelt_parameters_are_422_not_ignored(client: TestClient) -> None:
    assert_error(client.get("/items", params={"colr": "red"}), 422, "'colr'", "colour")
    assert_error(client.get("/me/feed", params={"count": 3}), 422, "'count'")
    row = sample_rows()[2]
    response = client.post("/search", files={"photo": ("q.jpg", photo_of(row), "image/jpeg")},
                           data={"k": "3", "diversty": "0.5"})
    assert_error(response, 422, "'diversty'", "diversity")
    ok = client.get("/items", params={"category": "Hat", "limit": 2, "offset": 1})
    assert ok.status_code == 200


def test_get_item_and_404(client: TestClient) -> None:
    row = sample_rows()[0]
    item = client.get(f"/items/{row['id']}").json()
    assert item["title"] == row["title"] and item["brand"] == row["brand"]
    assert_error(client.get("/items/no-such-item"), 404, "no-such-item")
    assert_error(client.get("/items/no-such-item/similar"), 404, "no-such-item")
    assert_error(client.get("/items/no-such-item/image"), 404)


def test_item_image_is_the_items_own_file(client: TestClient) -> None:
    row = sample_rows()[3]
    response = client.get(f"/items/{row['id']}/image")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == photo_of(row)
    for sneaky in ("..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "....//....//etc/passwd"):
        assert client.get(f"/items/{sneaky}/image").status_code == 404


def test_similar_excludes_the_item_and_obeys_filters(client: TestClient) -> None:
    row = sample_rows()[10]
    results = client.get(f"/items/{row['id']}/similar", params={"k": 7}).json()["results"]
    assert len(results) == 7
    assert row["id"] not in {r["item"]["id"] for r in results}
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    shoes = client.get(f"/items/{row['id']}/similar",
                       params={"k": 5, "category": "Shoes"}).json()["results"]
    assert len(shoes) == 5 and {r["item"]["category"] for r in shoes} == {"Shoes"}


# -- search --------------------------------------------------------------------------------------


def test_search_by_photo_finds_the_item_itself(client: TestClient) -> None:
    row = sample_rows()[42]
    response = client.post("/search", files={"photo": ("q.jpg", photo_of(row), "image/jpeg")},
                           data={"k": "5"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 5
    assert results[0]["item"]["id"] == row["id"] and results[0]["score"] > 0.999


def test_search_filters_hold(client: TestClient) -> None:
    row = sample_rows()[0]
    response = client.post(
        "/search",
        files={"photo": ("q.jpg", photo_of(row), "image/jpeg")},
        data={"k": "10", "category": ["Hat", "Shoes"], "price_max": "80", "kids": "false"},
    )
    results = response.json()["results"]
    assert len(results) == 10
    for r in results:
        assert r["item"]["category"] in ("Hat", "Shoes")
        assert r["item"]["price"] <= 80 and r["item"]["kids"] is False


def test_search_with_steering_and_diversity(client: TestClient) -> None:
    rows = sample_rows()
    direction = client.get("/search/directions").json()["directions"][0]
    response = client.post(
        "/search",
        files={"photo": ("q.jpg", photo_of(rows[5]), "image/jpeg")},
        data={"k": "8", "diversity": "0.5", "steer": f"{direction}=0.7",
              "positive": rows[100]["id"], "negative": rows[200]["id"], "colour_weight": "0.3"},
    )
    assert response.status_code == 200, response.text
    ids = [r["item"]["id"] for r in response.json()["results"]]
    assert len(ids) == 8 and rows[100]["id"] not in ids and rows[200]["id"] not in ids


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"steer": "colour:plaid-ish=0.5"}, ["colour:plaid-ish"]),
        ({"steer": "nonsense"}, ["steer"]),
        ({"diversity": "2"}, ["diversity"]),
        ({"k": "0"}, ["k"]),
        ({"price_min": "9", "price_max": "1"}, ["price_min"]),
        ({"positive": "no-such-item"}, ["no-such-item"]),
    ],
)
def test_bad_search_parameters(client: TestClient, data: dict[str, str], words: list[str]) -> None:
    row = sample_rows()[1]
    response = client.post("/search", files={"photo": ("q.jpg", photo_of(row), "image/jpeg")},
                           data=data)
    status = 404 if "positive" in data else 422
    assert_error(response, status, *words)


def test_more_and_less_like_these_items(client: TestClient) -> None:
    rows = sample_rows()
    body = {"positive": [rows[0]["id"], rows[1]["id"]], "negative": [rows[50]["id"]], "k": 6}
    results = client.post("/search/items", json=body).json()["results"]
    ids = {r["item"]["id"] for r in results}
    assert len(ids) == 6 and not ids & {rows[0]["id"], rows[1]["id"], rows[50]["id"]}
    filtered = client.post("/search/items",
                           json={**body, "filters": {"category": ["Dress"]}}).json()["results"]
    assert {r["item"]["category"] for r in filtered} == {"Dress"}
    assert_error(client.post("/search/items", json={"k": 5}), 422, "positive")
    assert_error(client.post("/search/items", json={"positive": ["nope"]}), 404, "nope")
    assert_error(client.post("/search/items", json={"positive": [rows[0]["id"]], "oops": 1}),
                 422, "oops")


def test_profile_search_from_several_photos(client: TestClient) -> None:
    rows = sample_rows()
    shoes = [r for r in rows if r["category"] == "Shoes"][:3]
    hats = [r for r in rows if r["category"] == "Hat"][:3]
    files = [("photos", (f"{r['id']}.jpg", photo_of(r), "image/jpeg")) for r in shoes + hats]
    response = client.post("/search/profile", files=files, data={"k": "10"})
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 10
    too_many = [("photos", (f"{i}.jpg", photo_of(rows[i]), "image/jpeg")) for i in range(13)]
    assert_error(client.post("/search/profile", files=too_many), 422, "12")


# -- controls of every query: match colour, diversity; scores; pages ------------------------------


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["item"]["id"] for r in response.json()["results"]]


def test_match_colour_is_a_control_of_every_query(
    client: TestClient, shared_catalog: Catalog
) -> None:
    rows = sample_rows()
    row = rows[7]
    photo = {"photo": ("q.jpg", photo_of(row), "image/jpeg")}
    profile = [("photos", ("q.jpg", photo_of(row), "image/jpeg"))]
    def each(w: str) -> dict[str, list[str]]:
        return {
            "photo": _ids(client.post("/search", files=photo,
                                      data={"k": "12", "colour_weight": w})),
            "similar": _ids(client.get(f"/items/{row['id']}/similar",
                                       params={"k": 12, "colour_weight": w})),
            "items": _ids(client.post("/search/items", json={
                "positive": [row["id"]], "k": 12, "colour_weight": float(w)})),
            "profile": _ids(client.post("/search/profile", files=profile,
                                        data={"k": "12", "colour_weight": w})),
        }

    shape, colour = each("0"), each("1")
    for kind in shape:
        assert shape[kind] != colour[kind], kind
    # omitted = the server's default, the same as sending it
    default = str(shared_catalog.settings.colour_weight)
    assert _ids(client.post("/search", files=photo, data={"k": "12"})) == _ids(
        client.post("/search", files=photo, data={"k": "12", "colour_weight": default}))


def test_openapi_shows_the_servers_defaults(shared_catalog: Catalog) -> None:
    settings = shared_catalog.settings.model_copy(update={"colour_weight": 0.35,
                                                          "diversity": 0.4})
    spec = TestClient(create_app(settings, shared_catalog)).get("/openapi.json").json()
    bodies = spec["components"]["schemas"]
    for body in ("Body_search_photo_search_post", "Body_search_profile_search_profile_post",
                 "RecommendRequest"):
        assert bodies[body]["properties"]["colour_weight"]["default"] == 0.35, body
        assert bodies[body]["properties"]["diversity"]["default"] == 0.4, body
    params = {p["name"]: p for p in spec["paths"]["/items/{item_id}/similar"]["get"]["parameters"]}
    assert params["colour_weight"]["schema"]["default"] == 0.35
    assert params["diversity"]["schema"]["default"] == 0.4


def test_scores_are_the_ranking_and_similarity_the_cosine(client: TestClient) -> None:
    row = sample_rows()[3]
    for data in ({}, {"diversity": "0.8", "colour_weight": "0.5"}):
        results = client.post("/search", files={"photo": ("q.jpg", photo_of(row), "image/jpeg")},
                              data={"k": "24", **data}).json()["results"]
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True)
        assert results[0]["item"]["id"] == row["id"] and results[0]["similarity"] > 0.999
        assert all(-1 <= r["similarity"] <= 1 for r in results)
    plain = client.get(f"/items/{row['id']}/similar",
                       params={"k": 10, "colour_weight": 0, "diversity": 0}).json()["results"]
    assert [r["score"] for r in plain] == [r["similarity"] for r in plain]


def test_photo_search_pages_are_cut_from_one_ranking(
    client: TestClient, shared_catalog: Catalog
) -> None:
    row = sample_rows()[20]
    photo = {"photo": ("q.jpg", photo_of(row), "image/jpeg")}

    def page(offset: int, k: int) -> dict[str, Any]:
        response = client.post("/search", files=photo,
                               data={"k": str(k), "offset": str(offset), "diversity": "0.3"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    whole = page(0, 72)
    pages = [page(0, 24), page(24, 24), page(48, 24)]
    assert [p["offset"] for p in pages] == [0, 24, 48]
    assert [p["next_offset"] for p in pages] == [24, 48, 72]
    assert [r["item"]["id"] for p in pages for r in p["results"]] == [
        r["item"]["id"] for r in whole["results"]]
    # the bound: offset + k stays within it (k is cut to fit), then no next page; with
    # diversity it is sort_depth (the list MMR picks), stated in every answer
    bound = whole["bound"]
    assert bound == shared_catalog.settings.sort_depth and {p["bound"] for p in pages} == {bound}
    last = page(bound - 10, 24)
    assert len(last["results"]) == 10 and last["next_offset"] is None
    assert_error(client.post("/search", files=photo,
                             data={"offset": str(bound), "diversity": "0.3"}), 422,
                 "offset", str(bound))
    # "more like these" and "more like this" page the same way
    more = {"positive": [row["id"]], "k": 10}
    both = client.post("/search/items", json={**more, "k": 20}).json()["results"]
    second = client.post("/search/items", json={**more, "offset": 10}).json()
    assert [r["item"]["id"] for r in second["results"]] == [r["item"]["id"] for r in both[10:]]
    similar = client.get(f"/items/{row['id']}/similar", params={"k": 20}).json()["results"]
    later = client.get(f"/items/{row['id']}/similar", params={"k": 10, "offset": 10}).json()
    assert [r["item"]["id"] for r in later["results"]] == [r["item"]["id"] for r in similar[10:]]


# -- bad uploads: clear JSON errors, and the server keeps answering -------------------------------


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        (b"hello, I am text", 415, ["not an image"]),
        (minimal_pdf(), 415, ["not an image"]),
        (truncated(jpeg(noise((256, 256))), 0.4), 422, ["truncated"]),
        (png_with_declared_size(20_000, 20_000), 422, ["pixel"]),
        (b"", 422, ["empty"]),
    ],
    ids=["text", "pdf", "truncated-jpeg", "png-bomb", "empty"],
)
def test_bad_photos(client: TestClient, payload: bytes, status: int, words: list[str]) -> None:
    response = client.post("/search", files={"photo": ("x.jpg", payload, "image/jpeg")})
    assert_error(response, status, *words)
    assert client.get("/catalog").status_code == 200


def test_missing_photo_and_garbage_bodies(client: TestClient) -> None:
    assert_error(client.post("/search", data={"k": "3"}), 422, "photo")
    garbage = client.post("/search", content=b"\x00\xff" * 1000,
                          headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert 400 <= garbage.status_code < 500
    assert "detail" in garbage.json()
    assert_error(client.post("/search/items", content=b"{not json",
                             headers={"content-type": "application/json"}), 422)
    assert client.get("/catalog").json()["items"] == 306


def test_oversized_upload_is_413(shared_catalog: Catalog) -> None:
    small = shared_catalog.settings.model_copy(update={"upload_max_bytes": 50_000})
    client = TestClient(create_app(small, shared_catalog))
    big = jpeg(noise((700, 700)), quality=95)
    assert len(big) > 50_000 + 64 * 1024
    assert_error(client.post("/search", files={"photo": ("big.jpg", big, "image/jpeg")}),
                 413, "50,000")
    # a file just over the per-file limit but within the body cap is refused while read
    over = big[: 50_001]
    assert_error(client.post("/search", files={"photo": ("o.jpg", over, "image/jpeg")}),
                 413, "50,000")

    # no Content-Length at all (chunked): the cap holds while reading
    def chunks() -> Iterator[bytes]:
        yield b"--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"x.jpg\"\r\n"
        yield b"Content-Type: image/jpeg\r\n\r\n"
        for _ in range(40):
            yield b"\xff" * 10_000

    response = client.post("/search", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(response, 413, "limit")
    row = sample_rows()[0]
    ok = client.post("/search", files={"photo": ("q.jpg", photo_of(row), "image/jpeg")})
    assert ok.status_code == 200


def test_default_upload_limit_is_10_mb() -> None:
    assert Settings().upload_max_bytes == 10 * 1024 * 1024


# -- catalog writes (admin key) -------------------------------------------------------------------


def new_photo() -> bytes:
    return png(noise((120, 160), seed=1234))


def test_catalog_writes_need_the_admin_key(fresh_client: TestClient) -> None:
    files = {"image": ("new.png", new_photo(), "image/png")}
    assert_error(fresh_client.post("/items", files=files), 401, "X-API-Key")
    assert_error(fresh_client.post("/items", files=files, headers={"X-API-Key": "nope"}),
                 403, "wrong")
    assert_error(fresh_client.patch("/items/x", json={"price": 1}), 401)
    assert_error(fresh_client.delete("/items/x", headers={"X-API-Key": "nope"}), 403)


def test_no_admin_key_configured_means_no_writes(shared_catalog: Catalog) -> None:
    settings = shared_catalog.settings.model_copy(update={"admin_key_hash": None})
    client = TestClient(create_app(settings, shared_catalog))
    response = client.post("/items", files={"image": ("n.png", new_photo(), "image/png")},
                           headers=ADMIN)
    assert_error(response, 403, "no admin key")


def test_add_update_delete_one_item(fresh_client: TestClient) -> None:
    c = fresh_client
    photo = new_photo()
    meta = '{"id": "new-1", "title": "Noise Jacket", "category": "Outwear", "price": 12.5, ' \
           '"currency": "EUR", "second_hand": true}'
    added = c.post("/items", files={"image": ("new.png", photo, "image/png")},
                   data={"item": meta}, headers=ADMIN)
    assert added.status_code == 201, added.text
    assert added.json()["id"] == "new-1" and added.json()["category"] == "Outwear"
    assert c.get("/catalog").json()["items"] == 307
    # searchable at once (the index was extended, not rebuilt)
    hit = c.post("/search", files={"photo": ("q.png", photo, "image/png")}, data={"k": "1"})
    assert hit.json()["results"][0]["item"]["id"] == "new-1"
    assert c.get("/items/new-1/image").content == photo
    # duplicates are refused
    assert_error(c.post("/items", files={"image": ("again.png", photo, "image/png")},
                        headers=ADMIN), 409, "image")
    # update
    changed = c.patch("/items/new-1", json={"price": 9.99, "title": "Noise Jacket II"},
                      headers=ADMIN)
    assert changed.status_code == 200 and changed.json()["price"] == 9.99
    assert c.get("/items/new-1").json()["title"] == "Noise Jacket II"
    assert_error(c.patch("/items/new-1", json={"price": -3}, headers=ADMIN), 422, "price")
    assert_error(c.patch("/items/new-1", json={"colour_of_sky": "x"}, headers=ADMIN), 422)
    assert_error(c.patch("/items/ghost", json={"price": 3}, headers=ADMIN), 404, "ghost")
    # delete
    assert c.delete("/items/new-1", headers=ADMIN).status_code == 204
    assert_error(c.get("/items/new-1"), 404)
    assert_error(c.delete("/items/new-1", headers=ADMIN), 404)
    after = c.post("/search", files={"photo": ("q.png", photo, "image/png")}, data={"k": "3"})
    assert "new-1" not in {r["item"]["id"] for r in after.json()["results"]}


def test_add_item_rejects_bad_input(fresh_client: TestClient) -> None:
    c = fresh_client
    bad_meta = c.post("/items", files={"image": ("n.png", new_photo(), "image/png")},
                      data={"item": '{"price": "free"}'}, headers=ADMIN)
    assert_error(bad_meta, 422, "price")
    not_image = c.post("/items", files={"image": ("n.png", b"nope", "image/png")}, headers=ADMIN)
    assert_error(not_image, 415)
    assert c.get("/catalog").json()["items"] == 306
    uploads = Path(c.app.state.catalog.settings.catalog_dir) / "uploads"  # type: ignore[attr-defined]
    assert not uploads.exists() or not any(uploads.iterdir())


# -- users ---------------------------------------------------------------------------------------


def guest(client: TestClient) -> tuple[int, dict[str, str]]:
    response = client.post("/sessions/guest")
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['token']}"}


def test_reads_make_no_guest_and_the_first_swipe_makes_one_with_a_cookie(
    client: TestClient,
) -> None:
    item = sample_rows()[3]["id"]
    visitor = TestClient(client.app)
    first = visitor.get("/me")
    assert first.status_code == 200
    assert first.json() == {"id": None, "username": None, "is_guest": True, "created_at": None}
    assert "set-cookie" not in first.headers and "x-session-token" not in first.headers
    assert visitor.post("/me/swipes", json={"item_id": item, "liked": True}).status_code == 204
    token = visitor.cookies.get("lookalike_session")
    assert token
    me = visitor.get("/me").json()
    assert me["id"] is not None and me["is_guest"] is True
    again = visitor.get("/me")
    assert again.json()["id"] == me["id"]
    assert "x-session-token" not in again.headers  # no new session for a known cookie
    header = TestClient(client.app).get("/me", headers={"Authorization": f"Bearer {token}"})
    assert header.json()["id"] == me["id"]
    assert [s["item_id"] for s in visitor.get("/me/swipes").json()] == [item]


def test_unknown_token_is_401_but_stale_cookie_is_forgotten(client: TestClient) -> None:
    assert_error(client.get("/me", headers={"Authorization": "Bearer forged"}), 401, "token")
    assert_error(client.get("/me/swipes", headers={"X-Session-Token": "forged"}), 401)
    stale = TestClient(client.app, cookies={"lookalike_session": "expired"})
    response = stale.get("/me")
    assert response.status_code == 200 and response.json()["id"] is None
    assert 'lookalike_session=""' in response.headers["set-cookie"]  # deleted
    item = sample_rows()[4]["id"]
    written = TestClient(client.app, cookies={"lookalike_session": "expired"}).post(
        "/me/swipes", json={"item_id": item, "liked": False})
    assert written.status_code == 204
    assert written.headers["x-session-token"] not in ("", "expired")


def test_swipes_feed_and_likes(client: TestClient) -> None:
    _, me = guest(client)
    feed = client.get("/me/feed", params={"n": 5}, headers=me).json()["items"]
    assert len(feed) == 5
    first, second = feed[0]["item"]["id"], feed[1]["item"]["id"]
    assert client.post("/me/swipes", json={"item_id": first, "liked": True},
                       headers=me).status_code == 204
    client.post("/me/swipes", json={"item_id": second, "liked": False}, headers=me)
    swipes = client.get("/me/swipes", headers=me).json()
    assert [(s["item_id"], s["liked"]) for s in swipes] == [(first, True), (second, False)]
    assert [i["id"] for i in client.get("/me/likes", headers=me).json()] == [first]
    # never shown twice
    shown = {f["item"]["id"] for f in feed}
    more = client.get("/me/feed", params={"n": 20}, headers=me).json()["items"]
    assert not shown & {f["item"]["id"] for f in more}
    # a peek does not use items up
    peek1 = client.get("/me/feed", params={"n": 3, "peek": "true"}, headers=me).json()["items"]
    peek2 = client.get("/me/feed", params={"n": 3, "peek": "true"}, headers=me).json()["items"]
    assert [p["item"]["id"] for p in peek1] == [p["item"]["id"] for p in peek2]
    assert_error(client.post("/me/swipes", json={"item_id": "ghost", "liked": True}, headers=me),
                 404, "ghost")
    assert_error(client.post("/me/swipes", json={"item_id": first}, headers=me), 422, "liked")
    filtered = client.get("/me/feed", params={"n": 4, "category": "Hat"}, headers=me).json()
    assert {f["item"]["category"] for f in filtered["items"]} == {"Hat"}


def test_users_are_isolated(client: TestClient) -> None:
    alice_id, alice = guest(client)
    bob_id, bob = guest(client)
    item = sample_rows()[7]["id"]
    client.post("/me/swipes", json={"item_id": item, "liked": True}, headers=alice)
    assert client.get("/me/swipes", headers=bob).json() == []
    assert client.get("/me/likes", headers=bob).json() == []
    assert len(client.get("/users/" + str(alice_id) + "/swipes", headers=alice).json()) == 1
    assert_error(client.get(f"/users/{alice_id}/swipes", headers=bob), 403, "own")
    assert_error(client.get(f"/users/{alice_id}/likes", headers=bob), 403, "own")
    assert_error(client.get(f"/users/{bob_id + 1000}/likes", headers=bob), 403)
    # Bob's swipe on the same item changes nothing of Alice's
    client.post("/me/swipes", json={"item_id": item, "liked": False}, headers=bob)
    assert client.get("/me/swipes", headers=alice).json()[0]["liked"] is True
    assert [i["id"] for i in client.get("/me/likes", headers=alice).json()] == [item]
    # a fresh visitor (no token) sees nothing of either
    stranger = TestClient(client.app)
    assert stranger.get("/me/swipes").json() == []


def test_account_adopts_guest_swipes_and_logs_in_and_out(client: TestClient) -> None:
    _, me = guest(client)
    item = sample_rows()[9]["id"]
    client.post("/me/swipes", json={"item_id": item, "liked": True}, headers=me)
    creds = {"username": "ada_lovelace", "password": "analytical-engine"}
    made = client.post("/accounts", json=creds, headers=me)
    assert made.status_code == 201, made.text
    account = made.json()
    assert account["user"]["username"] == "ada_lovelace" and not account["user"]["is_guest"]
    new = {"Authorization": f"Bearer {account['token']}"}
    assert [i["id"] for i in client.get("/me/likes", headers=new).json()] == [item]
    assert_error(client.get("/me", headers=me), 401)  # the guest token was replaced
    assert_error(client.post("/accounts", json=creds), 409, "taken")
    assert_error(client.post("/accounts", json={"username": "bob", "password": "aaaaaaaa"}),
                 422, "password")
    assert_error(client.post("/sessions", json={**creds, "password": "wrong-password"}), 401)
    logged = client.post("/sessions", json=creds)
    assert logged.status_code == 200
    token = {"Authorization": f"Bearer {logged.json()['token']}"}
    assert [i["id"] for i in client.get("/me/likes", headers=token).json()] == [item]
    assert client.delete("/sessions/current", headers=token).status_code == 204
    assert_error(client.get("/me", headers=token), 401)


# -- docs and pages ------------------------------------------------------------------------------


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/search", "/search/profile", "/search/items", "/items", "/items/{item_id}",
                 "/items/{item_id}/similar", "/me/feed", "/me/swipes", "/me/likes", "/accounts"):
        assert path in spec["paths"], path
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("path", ["/", "/swipe", "/likes"])
def test_pages_render_without_any_cdn(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    html = response.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "external asset on the page"
    for asset in re.findall(r"""(?:src|href)="(/static/[^"?]+)""", html):
        assert client.get(asset).status_code == 200, asset


def test_search_page_offers_camera_and_filters(client: TestClient) -> None:
    html = client.get("/").text
    assert 'accept="image/*"' in html and 'capture="environment"' in html
    for control in ("f-category", "f-colour", "f-price-min", "f-price-max", "f-kids",
                    "f-second-hand", "f-sust", "steer-dir", "steer-amt", "diversity"):
        assert f'id="{control}"' in html
    assert re.search(r"<label[^>]*>Category", html)


# -- searches in separate processes (what `lookalike serve` does on 2+ cores) --------------------


def _die(catalog: Catalog) -> None:
    os._exit(3)  # a search process killed mid-request (OOM killer, a crash in native code)


@pytest.fixture(scope="module")
def process_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    catalog, _ = build_demo_catalog(
        settings_for(tmp_path_factory.mktemp("process-cat"), search_processes=2)
    )
    with TestClient(create_app(catalog.settings, catalog)) as c:  # `with`: runs the lifespan
        yield c
    catalog.close()


def test_search_processes_answer_like_threads(
    process_client: TestClient, client: TestClient
) -> None:
    assert process_client.app.state.cpu.processes == 2  # type: ignore[attr-defined]
    rows = sample_rows()
    for row in rows[:6]:
        form = {"k": "8", "category": ["Hat", "Shoes", row["category"]]}
        a = process_client.post("/search", files={"photo": ("q.jpg", photo_of(row))}, data=form)
        b = client.post("/search", files={"photo": ("q.jpg", photo_of(row))}, data=form)
        assert a.status_code == 200, a.text
        assert [r["item"]["id"] for r in a.json()["results"]] == \
            [r["item"]["id"] for r in b.json()["results"]]
    # errors raised in a search process reach the client as they would from a thread
    bad = process_client.post("/search", files={"photo": ("x.jpg", b"hello, I am text")})
    assert_error(bad, 415, "not an image")
    unknown = process_client.post("/search", files={"photo": ("q.jpg", photo_of(rows[1]))},
                                  data={"positive": "no-such-item"})
    assert_error(unknown, 404, "no-such-item")
    profile = process_client.post(
        "/search/profile", files=[("photos", ("a.jpg", photo_of(r))) for r in rows[:3]]
    )
    assert profile.status_code == 200 and len(profile.json()["results"]) == 12


def _pid_and_top(catalog: Catalog, photo: bytes, k: int) -> tuple[int, list[str]]:
    """Which search process answered, and its top `k` ids for `photo`. The pause keeps this
    process busy, so a second call made meanwhile is answered by the other process."""
    time.sleep(0.3)
    found = search_photo(catalog, photo, k, Filters(), Steering())
    return os.getpid(), [r.item.id for r in found]


def _in_every_process(client: TestClient, photo: bytes, k: int) -> dict[int, list[str]]:
    """`_pid_and_top` answered by each of the app's search processes (two calls at once, until
    both processes have answered; bounded)."""
    cpu = client.app.state.cpu  # type: ignore[attr-defined]

    async def both() -> list[tuple[int, list[str]]]:
        return list(await asyncio.gather(*(cpu.search(_pid_and_top, photo, k)
                                           for _ in range(cpu.processes))))

    answers: dict[int, list[str]] = {}
    for _ in range(10):
        answers.update(client.portal.call(both))  # type: ignore[union-attr]  # app's loop
        if len(answers) == cpu.processes:
            break
    assert len(answers) == cpu.processes == 2, answers
    return answers


def test_search_processes_see_items_the_server_adds_and_deletes(
    process_client: TestClient,
) -> None:
    photo = new_photo()
    added = process_client.post("/items", files={"image": ("p.png", photo, "image/png")},
                                data={"item": '{"id": "proc-1"}'}, headers=ADMIN)
    assert added.status_code == 201, added.text
    for pid, top in _in_every_process(process_client, photo, 1).items():
        assert top == ["proc-1"], f"search process {pid} does not see the new item: {top}"
    assert process_client.delete("/items/proc-1", headers=ADMIN).status_code == 204
    for pid, top in _in_every_process(process_client, photo, 3).items():
        assert "proc-1" not in top, f"search process {pid} still finds the deleted item"


def test_a_dead_search_process_is_replaced_and_the_server_keeps_answering(
    process_client: TestClient,
) -> None:
    cpu = process_client.app.state.cpu  # type: ignore[attr-defined]
    with pytest.raises(HTTPException) as err:
        process_client.portal.call(cpu.search, _die)  # type: ignore[union-attr]  # app's loop
    assert err.value.status_code == 503
    row = sample_rows()[42]
    for _ in range(3):
        again = process_client.post("/search", files={"photo": ("q.jpg", photo_of(row))})
        assert again.status_code == 200, again.text
        assert again.json()["results"][0]["item"]["id"] == row["id"]


def test_ctrl_c_while_a_search_process_starts_does_not_kill_it(tmp_path: Path) -> None:
    """Ctrl+C reaches the whole process group, also a search process still importing (it has
    not set SIGINT to ignored yet): it must survive that, not die with a traceback."""
    import signal
    import threading

    from lookalike.api.cpu import CpuRunner

    catalog, _ = build_demo_catalog(settings_for(tmp_path / "cat"))
    runner = CpuRunner(catalog, slots=1, processes=1)
    signalled: list[int] = []

    def interrupt_the_newborn() -> None:
        pool = runner._pool
        assert pool is not None
        while not pool._processes:  # spawned by start()'s first submit
            pass
        pid = next(iter(pool._processes))
        os.kill(pid, signal.SIGINT)  # well before its imports are done
        signalled.append(pid)

    killer = threading.Thread(target=interrupt_the_newborn)
    killer.start()
    try:
        runner.start(timeout=60)  # raises BrokenProcessPool if the process died
        killer.join()
        assert signalled and Path(f"/proc/{signalled[0]}").exists()
    finally:
        runner.close()
        catalog.close()
