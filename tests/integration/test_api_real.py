"""API tests against the bundled sample catalog built with the real encoder
(`efficientnet-lite0`, ONNX), once per module: search quality through HTTP, filters on predicted
colours, steering, style profiles, the feed adapting to swipes, concurrent requests."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lookalike.api import create_app
from lookalike.catalog import Catalog
from lookalike.config import Settings
from lookalike.demo import build_demo_catalog, sample_images, sample_metadata

pytestmark = pytest.mark.slow


def sample_rows() -> list[dict[str, str]]:
    with sample_metadata().open(newline="") as f:
        return list(csv.DictReader(f))


def photo(row: dict[str, str]) -> tuple[str, bytes, str]:
    return (row["image"], (sample_images() / row["image"]).read_bytes(), "image/jpeg")


@pytest.fixture(scope="module")
def real_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    settings = Settings(catalog_dir=tmp_path_factory.mktemp("real-sample"),
                        model="efficientnet-lite0")
    catalog, report = build_demo_catalog(settings)
    assert report.added == 306 and not report.rejected
    yield catalog
    catalog.close()


@pytest.fixture(scope="module")
def client(real_catalog: Catalog) -> TestClient:
    return TestClient(create_app(real_catalog.settings, real_catalog))


def search(client: TestClient, row: dict[str, str], **data: Any) -> list[dict[str, Any]]:
    response = client.post("/search", files={"photo": photo(row)}, data=data)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def effective(item: dict[str, Any], name: str) -> str | None:
    if item.get(name):
        return str(item[name])
    tag = item["predicted"].get(name)
    return str(tag["value"]) if tag else None


def test_a_catalog_photo_finds_itself_first(client: TestClient) -> None:
    rows = sample_rows()
    for row in rows[::51]:
        sold = row["state"] == "sold"  # a sold item is found only when asked for
        results = search(client, row, k="10", **({"include_sold": "true"} if sold else {}))
        assert len(results) == 10
        assert results[0]["item"]["id"] == row["id"] and results[0]["score"] > 0.99
        if sold:
            assert row["id"] not in [r["item"]["id"] for r in search(client, row, k="10")]


def test_filters_hold_with_the_real_encoder(client: TestClient) -> None:
    row = next(r for r in sample_rows() if r["category"] == "Dress")
    results = search(client, row, k="12", category="Shoes", price_max="60")
    assert results and all(r["item"]["category"] == "Shoes" and r["item"]["price"] <= 60
                           for r in results)
    colours = client.get("/catalog/facets").json()["colour"]
    assert colours, "the colour tagger filled predicted colours at ingest"
    black = search(client, row, k="10", colour="black")
    assert black and all(effective(r["item"], "colour") == "black" for r in black)


def test_steering_towards_red_raises_red(client: TestClient) -> None:
    assert "colour:red" in client.get("/search/directions").json()["directions"]
    row = next(r for r in sample_rows() if r["category"] == "T-Shirt")
    plain = search(client, row, k="10")
    red = search(client, row, k="10", steer="colour:red=1")
    count = Counter(effective(r["item"], "colour") for r in red)["red"]
    before = Counter(effective(r["item"], "colour") for r in plain)["red"]
    assert count > before, (before, count)


def test_profile_of_shoes_and_hats_returns_both(client: TestClient) -> None:
    rows = sample_rows()
    shoes = [r for r in rows if r["category"] == "Shoes"][:3]
    hats = [r for r in rows if r["category"] == "Hat"][:3]
    files = [("photos", photo(r)) for r in shoes + hats]
    results = client.post("/search/profile", files=files, data={"k": "10"}).json()["results"]
    kinds = Counter(r["item"]["category"] for r in results)
    assert kinds["Shoes"] >= 2 and kinds["Hat"] >= 2, kinds


def test_more_like_these_less_like_those(client: TestClient) -> None:
    rows = sample_rows()
    shoes = [r["id"] for r in rows if r["category"] == "Shoes"][:2]
    hat = next(r["id"] for r in rows if r["category"] == "Hat")
    results = client.post("/search/items",
                          json={"positive": shoes, "negative": [hat], "k": 10}).json()["results"]
    kinds = Counter(r["item"]["category"] for r in results)
    assert kinds["Shoes"] >= 6 and not kinds["Hat"], kinds


def test_the_feed_adapts_to_swipes(client: TestClient) -> None:
    """A shopper who likes only shoes: after 15 swipes the feed is mostly shoes."""
    me = {"Authorization": f"Bearer {client.post('/sessions/guest').json()['token']}"}
    first = client.get("/me/feed", params={"n": 10, "peek": "true"}, headers=me).json()["items"]
    cold = Counter(f["item"]["category"] for f in first)["Shoes"]
    for _ in range(15):
        (item,) = client.get("/me/feed", params={"n": 1}, headers=me).json()["items"]
        liked = item["item"]["category"] == "Shoes"
        client.post("/me/swipes", json={"item_id": item["item"]["id"], "liked": liked},
                    headers=me)
    after = client.get("/me/feed", params={"n": 10}, headers=me).json()["items"]
    shoes = Counter(f["item"]["category"] for f in after)["Shoes"]
    assert shoes >= 5 and shoes > cold, (cold, shoes)


def test_concurrent_searches_all_answer(client: TestClient) -> None:
    rows = sample_rows()[::20]

    def one(row: dict[str, str]) -> tuple[int, str]:
        response = client.post("/search", files={"photo": photo(row)},
                               data={"k": "5", "include_sold": "true"})
        return response.status_code, response.json()["results"][0]["item"]["id"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, rows))
    assert answers == [(200, r["id"]) for r in rows]
