"""Searching with words over HTTP (TestClient, real SQLite catalog of the bundled sample, fake
encoder): GET /search/text, the `text` field of POST /search, what was understood, bad input."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from lookalike.api import create_app
from lookalike.catalog import Catalog
from lookalike.config import Settings
from lookalike.demo import build_demo_catalog, sample_images, sample_metadata


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    catalog: Catalog
    catalog, _ = build_demo_catalog(Settings(catalog_dir=tmp_path_factory.mktemp("words-api"),
                                             model="fake"))
    yield TestClient(create_app(catalog.settings, catalog))
    catalog.close()


def photo() -> bytes:
    with sample_metadata().open(newline="") as f:
        row = next(csv.DictReader(f))
    return (sample_images() / row["image"]).read_bytes()


def test_text_search_filters_and_says_what_it_understood(client: TestClient) -> None:
    response = client.get("/search/text", params={"q": "second hand Dresses under 90 sparkly",
                                                  "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] and all(
        r["item"]["category"] == "Dress" and r["item"]["second_hand"]
        and r["item"]["price"] <= 90 for r in body["results"])
    understood = body["understood"]
    assert understood["filters"] == {"category": ["Dress"], "price_max": 90.0,
                                     "second_hand": True}
    assert understood["ignored"] == ["sparkly"]
    hows = {m["phrase"]: m["how"] for m in understood["matches"]}
    assert hows["dresses"] == "plural" and hows["second hand"] == "phrase"


def test_text_search_with_query_filters_and_colour_steering(client: TestClient) -> None:
    body = client.get("/search/text", params={"q": "red", "category": "Dress", "k": 5}).json()
    assert body["understood"]["filters"] == {"category": ["Dress"], "colour": ["red"]}
    assert "colour:red" in body["understood"]["steer"]
    for r in body["results"]:
        colour = r["item"]["colour"] or r["item"]["predicted"]["colour"]["value"]
        assert r["item"]["category"] == "Dress" and colour == "red"


def test_nothing_understood_is_an_empty_answer_that_says_why(client: TestClient) -> None:
    body = client.get("/search/text", params={"q": "sparkly unicorn"}).json()
    assert body["results"] == [] and body["understood"]["ignored"] == ["sparkly", "unicorn"]
    assert "none of the words matched" in body["understood"]["notes"][-1]


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"q": "x" * 201}, 422, "at most 200 characters"),
        ({"q": "x" * 2001}, 422, "q"),
        ({"q": ""}, 422, "q"),
        ({}, 422, "q"),
        ({"q": "dress", "k": 0}, 422, "k"),
        ({"q": "dress", "colr": "red"}, 422, "colr"),
    ],
)
def test_bad_text_requests(client: TestClient, params: dict[str, object], status: int,
                           words: str) -> None:
    response = client.get("/search/text", params=params)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


def test_photo_search_with_words_steers_and_reports(client: TestClient) -> None:
    files = {"photo": ("q.jpg", photo(), "image/jpeg")}
    plain = client.post("/search", files=files, data={"k": "10"}).json()
    assert plain.get("understood") is None
    steered = client.post("/search", files=files,
                          data={"k": "10", "text": "this, but in red, under 80"})
    assert steered.status_code == 200, steered.text
    body = steered.json()
    assert body["understood"]["filters"] == {"price_max": 80.0}  # colour steers, not filters
    assert body["understood"]["steer"] == {"colour:red": 0.8}
    assert all(r["item"]["price"] <= 80 for r in body["results"]) and len(body["results"]) == 10

    def red(results: list[dict[str, object]]) -> int:
        return sum((r["item"]["colour"] or r["item"]["predicted"]["colour"]["value"]) == "red"
                   for r in results)  # type: ignore[index]
    assert red(body["results"]) > red(plain["results"])
    too_long = client.post("/search", files=files, data={"text": "y" * 201})
    assert too_long.status_code == 422 and "200 characters" in too_long.json()["detail"]


def test_openapi_lists_the_text_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/search/text" in spec["paths"]
    props = spec["components"]["schemas"]["SearchResponse"]["properties"]
    assert "understood" in props


def test_words_search_sorts_pages_and_leaves_sold_items_out(client: TestClient) -> None:
    # issue 21 shop features meet the words: sort, the bound of sorted pages, sold items
    asked = {"q": "hoodies", "sort": "price_asc", "k": 4}
    first = client.get("/search/text", params=asked).json()
    assert first["sort"] == "price_asc" and first["bound"] == 200 and first["next_offset"] == 4
    second = client.get("/search/text", params={**asked, "offset": 4}).json()
    items = [r["item"] for r in first["results"] + second["results"]]
    prices = [i["base_price"] for i in items]
    assert len(items) == 8 and len({i["id"] for i in items}) == 8
    assert prices == sorted(prices) and all(i["category"] == "Hoodie" for i in items)
    every = client.get("/search/text", params={"q": "hoodies", "k": 50}).json()["results"]
    assert every and all(r["item"]["state"] != "sold" for r in every)
    with_sold = client.get("/search/text", params={"q": "hoodies", "k": 50,
                                                   "include_sold": "true"}).json()
    assert {r["item"]["state"] for r in with_sold["results"]} >= {"sold", "available"}
    assert with_sold["understood"]["filters"]["include_sold"] is True
    past = client.get("/search/text", params={**asked, "offset": 200})
    assert past.status_code == 422 and "sort_depth" in past.json()["detail"]


def test_photo_and_words_take_a_sort(client: TestClient) -> None:
    response = client.post("/search", files={"photo": ("q.jpg", photo(), "image/jpeg")},
                           data={"text": "hoodies", "sort": "price_desc", "k": "6"})
    assert response.status_code == 200, response.text
    body = response.json()
    prices = [r["item"]["base_price"] for r in body["results"]]
    assert body["sort"] == "price_desc" and body["bound"] == 200
    assert prices == sorted(prices, reverse=True) and len(prices) == 6
    assert body["understood"]["filters"] == {"category": ["Hoodie"]}
