"""Shop features over HTTP (issue 21): sorting and paging with a stated bound, listing state,
brand ratings and exchange rates (imports need the admin key), facets. TestClient against a
real SQLite catalog of the bundled sample built with the fake encoder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_api import ADMIN, assert_error, photo_of, sample_rows, settings_for

from lookalike.api import create_app
from lookalike.catalog import Catalog
from lookalike.demo import build_demo_catalog


@pytest.fixture(scope="module")
def shared_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    catalog, _ = build_demo_catalog(settings_for(tmp_path_factory.mktemp("shop-sample")))
    yield catalog
    catalog.close()


@pytest.fixture
def client(shared_catalog: Catalog) -> TestClient:
    return TestClient(create_app(shared_catalog.settings, shared_catalog))


@pytest.fixture
def fresh_client(tmp_path: Path) -> Iterator[TestClient]:
    catalog, _ = build_demo_catalog(settings_for(tmp_path / "cat"))
    yield TestClient(create_app(catalog.settings, catalog))
    catalog.close()


def item_ids(body: dict[str, Any]) -> list[str]:
    key = "results" if "results" in body else "items"
    return [(r["item"] if key == "results" else r)["id"] for r in body[key]]


def test_browse_sorted_by_price_both_ways(client: TestClient) -> None:
    up = client.get("/items", params={"sort": "price_asc", "limit": 200}).json()
    prices = [i["base_price"] for i in up["items"]]
    assert prices == sorted(prices) and up["sort"] == "price_asc"
    down = client.get("/items", params={"sort": "price_desc", "limit": 200}).json()
    dearest = [i["base_price"] for i in down["items"]]
    assert dearest == sorted(dearest, reverse=True)
    assert down["items"][0]["base_price"] >= up["items"][-1]["base_price"]
    assert_error(client.get("/items", params={"sort": "cheapest"}), 422, "sort", "price_asc")


def test_search_sorted_by_price_orders_the_best_look_alikes(
    client: TestClient, shared_catalog: Catalog
) -> None:
    row = sample_rows()[5]
    photo = {"photo": ("q.jpg", photo_of(row), "image/jpeg")}

    def page(offset: int, sort: str, k: int = 50) -> dict[str, Any]:
        response = client.post("/search", files=photo,
                               data={"k": str(k), "offset": str(offset), "sort": sort})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    first = page(0, "price_asc")
    depth = shared_catalog.settings.sort_depth
    assert first["bound"] == depth and first["sort"] == "price_asc"
    pages = [first]
    while pages[-1]["next_offset"] is not None:
        pages.append(page(pages[-1]["next_offset"], "price_asc"))
    results = [r for p in pages for r in p["results"]]
    assert len(results) == depth
    prices = [r["item"]["base_price"] for r in results]
    assert prices == sorted(prices)
    # the same items as the `sort_depth` closest look-alikes, in another order
    closest = [r for off in range(0, depth, 100) for r in page(off, "relevance", 100)["results"]]
    assert {r["item"]["id"] for r in results} == {r["item"]["id"] for r in closest[:depth]}
    assert_error(client.post("/search", files=photo, data={"offset": str(depth),
                                                           "sort": "price_asc"}),
                 422, "offset", str(depth))


def test_relevance_pages_go_past_100_to_the_end(client: TestClient) -> None:
    row = sample_rows()[40]
    for_sale = sum(r["state"] != "sold" for r in sample_rows())
    total = for_sale - (row["state"] != "sold")  # every item for sale but the query item
    k = next(n for n in range(20, 150) if total % n == 0)  # the last page is a full one
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        body = client.get(f"/items/{row['id']}/similar",
                          params={"k": k, "offset": offset}).json()
        assert body["bound"] == 1000
        assert item_ids(body)  # never an empty last page
        seen += item_ids(body)
        offset = body["next_offset"]
    # none twice, none left out: the old cap was 100
    assert len(seen) == len(set(seen)) == total


def test_sold_items_leave_results_unless_asked_for(fresh_client: TestClient) -> None:
    row = next(r for r in sample_rows() if r["state"] == "available")
    first = fresh_client.get(f"/items/{row['id']}/similar", params={"k": 3}).json()
    target = first["results"][0]["item"]["id"]
    assert_error(fresh_client.patch(f"/items/{target}", json={"state": "sold"}), 401)
    changed = fresh_client.patch(f"/items/{target}", json={"state": "SOLD"}, headers=ADMIN)
    assert changed.status_code == 200 and changed.json()["state"] == "sold"
    after = fresh_client.get(f"/items/{row['id']}/similar", params={"k": 3}).json()
    assert target not in item_ids(after)
    shown = fresh_client.get(f"/items/{row['id']}/similar",
                             params={"k": 3, "include_sold": "true"}).json()
    assert item_ids(shown)[0] == target
    sold = fresh_client.get("/items", params={"state": "sold", "limit": 200}).json()
    assert target in item_ids(sold) and {i["state"] for i in sold["items"]} == {"sold"}
    feed = fresh_client.get("/me/feed", params={"n": 100}).json()["items"]
    assert all(r["item"]["state"] != "sold" for r in feed)
    assert_error(fresh_client.patch(f"/items/{target}", json={"state": "gone"}, headers=ADMIN),
                 422, "state")


def test_results_carry_brand_ratings_with_their_source(client: TestClient) -> None:
    brands = client.get("/catalog/brands").json()
    assert len(brands) == 6 and all(b["source"] == "Demo ratings (invented)" for b in brands)
    kettle = next(b for b in brands if b["brand"] == "Kettle and Loom Ltd")
    assert kettle["items"] == sum(r["brand"] == "Kettle & Loom" for r in sample_rows())
    row = next(r for r in sample_rows() if r["brand"] == "Kettle & Loom")
    item = client.get(f"/items/{row['id']}").json()
    assert item["brand_rating"]["overall"] == 4.5
    assert item["brand_rating"]["url"].startswith("https://example.org/")
    good = client.get("/items", params={"min_brand_rating": 4, "limit": 200}).json()
    assert good["total"] > 0
    assert {i["brand"] for i in good["items"]} == {"Kettle & Loom", "Fennmark"}
    planet = client.get("/items", params={"min_brand_planet": 4.6, "limit": 200}).json()
    assert {i["brand"] for i in planet["items"]} == {"Kettle & Loom"}
    by_brand = client.get("/items", params={"brand": "kettle and loom", "limit": 200}).json()
    assert by_brand["total"] == good["total"] - sum(
        r["brand"] == "Fennmark" and r["state"] != "sold" for r in sample_rows())


def test_importing_brand_ratings_needs_the_key_and_names_bad_rows(
    fresh_client: TestClient,
) -> None:
    data = (b"brand,overall,source\nTidewater,4.9,New source\nBluefin,7,New source\n"
            b"Soleil Studio,3,\n")
    files = {"file": ("brands.csv", data, "text/csv")}
    menus = {f["value"]: f["rating"] for f in fresh_client.get("/catalog/facets").json()["brand"]}
    assert menus["Tidewater"]["overall"] != 4.9  # the facets are now cached
    assert_error(fresh_client.post("/catalog/brands", files=files), 401)
    report = fresh_client.post("/catalog/brands", files=files, headers=ADMIN).json()
    assert report["stored"] == 1
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(3, "overall"), (4, "source")]
    assert "row 3: overall must be at most 5" in report["errors"][0]["message"]
    row = next(r for r in sample_rows() if r["brand"] == "Tidewater")
    rating = fresh_client.get(f"/items/{row['id']}").json()["brand_rating"]
    assert (rating["overall"], rating["source"]) == (4.9, "New source")
    # the filter menus show the new rating at once, not when the facet cache expires
    menus = {f["value"]: f["rating"] for f in fresh_client.get("/catalog/facets").json()["brand"]}
    assert (menus["Tidewater"]["overall"], menus["Tidewater"]["source"]) == (4.9, "New source")
    bad = fresh_client.post("/catalog/brands", headers=ADMIN,
                            files={"file": ("brands.xlsx", b"x", "application/octet-stream")})
    assert_error(bad, 422, "brands.xlsx", ".csv or .jsonl")


def test_rates_convert_prices_for_filters_and_sorting(fresh_client: TestClient) -> None:
    rows = [r for r in sample_rows() if r["state"] == "available"][:3]
    # one item in USD, one in JPY (no rate yet)
    for row, currency in zip(rows[:2], ("USD", "JPY"), strict=True):
        response = fresh_client.patch(f"/items/{row['id']}", headers=ADMIN,
                                      json={"price": 11, "currency": currency})
        assert response.status_code == 200, response.text
    usd, jpy = rows[0]["id"], rows[1]["id"]
    before = fresh_client.get("/items", params={"price_max": 10.5, "limit": 200}).json()
    assert usd not in item_ids(before) and jpy not in item_ids(before)
    assert any("priced in JPY" in n for n in before["notes"])
    rates = b"currency,rate,date\nUSD,1.1,2024-05-02\nGBP,0.85,2024-05-02\n"
    report = fresh_client.post("/catalog/rates", headers=ADMIN,
                               files={"file": ("rates.csv", rates, "text/csv")}).json()
    assert report == {"stored": 3, "errors": [], "items_rated": None}
    item = fresh_client.get(f"/items/{usd}").json()
    assert (item["price"], item["currency"]) == (11, "USD")
    assert item["base_price"] == pytest.approx(10) and item["base_currency"] == "EUR"
    after = fresh_client.get("/items", params={"price_max": 10.5, "limit": 200}).json()
    assert usd in item_ids(after) and jpy not in item_ids(after)
    assert fresh_client.get("/items", params={"currency": "usd"}).json()["total"] == 1
    table = fresh_client.get("/catalog/rates").json()
    assert table["rates_base"] == "EUR" and [r["currency"] for r in table["rates"]] == [
        "EUR", "GBP", "USD"]
    bad = fresh_client.post("/catalog/rates", headers=ADMIN,
                            files={"file": ("rates.csv", b"currency,rate\nUSD,0\n", "text/csv")})
    assert bad.json()["stored"] == 0 and bad.json()["errors"][0]["field"] == "rate"
    assert fresh_client.get(f"/items/{usd}").json()["base_price"] == pytest.approx(10)


def test_facets_for_the_filter_menus(client: TestClient) -> None:
    facets = client.get("/catalog/facets").json()
    sizes = [f["value"] for f in facets["size"]]
    assert sizes.index("XS") < sizes.index("S") < sizes.index("M") < sizes.index("XL")
    assert facets["currency"] == [{"value": "EUR", "count": 306}]
    assert facets["base_currency"] == "EUR"
    rated = {f["value"]: f["rating"] for f in facets["brand"]}
    assert rated["Kettle & Loom"]["overall"] == 4.5 and rated["Bluefin"] is None
    info = client.get("/catalog").json()
    assert info["sold"] == sum(r["state"] == "sold" for r in sample_rows())
    assert info["brand_ratings"] == 6


def test_new_filters_are_checked_in_plain_words(client: TestClient) -> None:
    assert_error(client.get("/items", params={"min_brand_rating": 6}), 422, "min_brand_rating")
    assert_error(client.get("/items", params={"state": "gone"}), 422, "state")
    assert_error(client.get("/items", params={"currency": "euros"}), 422, "ISO 4217")
    body = client.post("/search/items", json={"positive": [sample_rows()[0]["id"]],
                                              "sort": "rating", "k": 5}).json()
    assert body["sort"] == "rating" and len(body["results"]) == 5
    ratings = [r["item"]["rating"] for r in body["results"]]
    known = [r for r in ratings if r is not None]
    assert known == sorted(known, reverse=True)
