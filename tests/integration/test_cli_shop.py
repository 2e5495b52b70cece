"""Shop commands end to end (in-process Typer runner, fake encoder): brand ratings, exchange
rates, an item's listing state, sorted and paged searches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_cli import assert_error
from typer.testing import CliRunner

from catalog_factory import make_rows, write_csv, write_images
from lookalike.cli import app
from lookalike.cli.catalog import SortChoice

runner = CliRunner()


def test_sort_choices_are_the_library_sorts() -> None:
    from lookalike.catalog.sorting import SORTS

    assert [c.value for c in SortChoice] == list(SORTS)


@pytest.fixture
def shop(tmp_path: Path) -> tuple[str, Path, list[dict[str, Any]]]:
    """A 30-item catalog: items 1 and 2 in USD and JPY, item 3 sold."""
    rows = make_rows(30)
    rows[1]["currency"], rows[2]["currency"] = "USD", "JPY"
    rows[3]["state"] = "sold"
    write_images(tmp_path / "images", rows)
    write_csv(tmp_path / "items.csv", rows)
    cat = str(tmp_path / "cat")
    res = runner.invoke(app, ["ingest", str(tmp_path / "images"), "--metadata",
                              str(tmp_path / "items.csv"), "-c", cat, "-m", "fake", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["added"] == 30, res.output
    return cat, tmp_path, rows


def invoke_json(*args: str) -> Any:
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_brand_ratings_import_and_list(shop: tuple[str, Path, list[dict[str, Any]]]) -> None:
    cat, tmp, rows = shop
    path = tmp / "brands.csv"
    path.write_text("# invented\nbrand,overall,people,planet,animals,source\n"
                    "ACME Inc,4,4,4,4,Test\nBorealis,8,1,1,1,Test\n")
    res = runner.invoke(app, ["brands", "import", str(path), "-c", cat])
    assert res.exit_code == 2  # a bad row: listed by line, the good one stored
    assert "stored 1 brand ratings; 10 of 30 items now have a rated brand" in res.stdout
    assert f"{path}: row 4: overall must be at most 5, got 8" in res.stderr
    listed = invoke_json("brands", "list", "-c", cat)
    assert [(b["brand"], b["overall"], b["items"]) for b in listed] == [("ACME Inc", 4.0, 10)]
    hits = invoke_json("similar", rows[0]["id"], "-c", cat, "-k", "29",
                       "-f", "min_brand_rating=3")
    assert hits and {h["brand"] for h in hits} == {"Acme"}
    assert hits[0]["brand_rating"]["source"] == "Test"
    table = runner.invoke(app, ["similar", rows[0]["id"], "-c", cat, "-k", "3"])
    assert "brand ratings (0–5): Test" in table.stdout


def test_rates_import_converts_prices(shop: tuple[str, Path, list[dict[str, Any]]]) -> None:
    cat, tmp, rows = shop
    bad = tmp / "bad.csv"
    bad.write_text("currency,rate\nUSD,lots\n")
    res = runner.invoke(app, ["rates", "import", str(bad), "-c", cat])
    assert res.exit_code == 2 and "row 2: rate must be a number, got 'lots'" in res.stderr
    assert "the rates are unchanged" in res.stderr
    good = tmp / "rates.csv"
    good.write_text("currency,rate,date\nEUR,0.5,2024-05-02\n")  # against USD: 1 USD = 0.5 EUR
    res = runner.invoke(app, ["rates", "import", str(good), "--base", "usd", "-c", cat])
    assert res.exit_code == 0, res.output
    assert "stored 2 rates against USD; prices compare in EUR" in res.stdout
    assert "1 item priced in JPY cannot be converted to EUR" in res.stderr
    listed = invoke_json("rates", "list", "-c", cat)
    assert listed["rates_base"] == "USD" and listed["base_currency"] == "EUR"
    item = invoke_json("item", rows[1]["id"], "-c", cat)
    assert item["currency"] == "USD" and item["base_price"] == pytest.approx(
        float(rows[1]["price"]) * 0.5)
    res = runner.invoke(app, ["similar", rows[0]["id"], "-c", cat, "-f", "price_max=1000",
                              "-k", "3"])
    assert "note: 1 item priced in JPY has no exchange rate to EUR" in res.stderr
    table = runner.invoke(app, ["similar", rows[0]["id"], "-c", cat, "-k", "29"])
    assert f"{float(rows[1]['price']):.2f} USD ≈ " in table.stdout


def test_sort_and_offset_page_through(shop: tuple[str, Path, list[dict[str, Any]]]) -> None:
    cat, _, rows = shop
    whole = invoke_json("similar", rows[0]["id"], "-c", cat, "-k", "28", "--sort", "price_desc")
    prices = [h["base_price"] for h in whole if h["base_price"] is not None]
    assert prices == sorted(prices, reverse=True)
    assert whole[-1]["currency"] == "JPY"  # no rate: last
    assert rows[3]["id"] not in [h["id"] for h in whole]  # sold
    paged = [h["id"] for offset in (0, 10, 20) for h in invoke_json(
        "similar", rows[0]["id"], "-c", cat, "-k", "10", "--offset", str(offset),
        "--sort", "price_desc")]
    assert paged == [h["id"] for h in whole]
    res = runner.invoke(app, ["similar", rows[0]["id"], "-c", cat, "-k", "5", "--offset", "5"])
    assert "ranks 6–10 of at most 1000; next page: --offset 10" in " ".join(res.stdout.split())
    res = runner.invoke(app, ["similar", rows[0]["id"], "-c", cat, "--sort", "rating",
                              "--offset", "200"])
    assert_error(res, "--offset 200 is past the 200 results this query ranks (sort_depth)")
    res = runner.invoke(app, ["similar", rows[0]["id"], "-c", cat, "--sort", "cheap"])
    assert res.exit_code == 2 and "cheap" in res.stderr


def test_item_state_rating_and_sold_items(shop: tuple[str, Path, list[dict[str, Any]]]) -> None:
    cat, _, rows = shop
    sold = rows[3]["id"]
    hits = invoke_json("similar", rows[0]["id"], "-c", cat, "-k", "29", "-f",
                       "include_sold=true")
    assert sold in [h["id"] for h in hits]
    changed = invoke_json("item", rows[5]["id"], "-c", cat, "--state", "reserved",
                          "--rating", "4.5", "--reviews", "12")
    assert (changed["state"], changed["rating"], changed["reviews"]) == ("reserved", 4.5, 12)
    invoke_json("item", rows[6]["id"], "-c", cat, "--state", "sold")
    hits = invoke_json("similar", rows[0]["id"], "-c", cat, "-k", "29")
    ids = [h["id"] for h in hits]
    assert sold not in ids and rows[6]["id"] not in ids and rows[5]["id"] in ids
    assert invoke_json("info", "-c", cat)["sold"] == 2
    res = runner.invoke(app, ["item", rows[5]["id"], "-c", cat, "--state", "gone"])
    assert res.exit_code == 2 and "gone" in res.stderr
    res = runner.invoke(app, ["item", "nope", "-c", cat, "--state", "sold"])
    assert_error(res, "no item with id 'nope'")
