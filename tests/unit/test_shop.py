"""Shop features of the catalog (issue 21): brand ratings joined by normalised brand name,
prices in one currency, sorting and paging, listing state, shoppers' ratings; and the
migration of a catalog made before them.

Real SQLite files in tmp_path; the fake encoder (a registered encoder, not a mock)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalog_factory import make_dataset, make_rows, write_csv, write_images
from lookalike import Catalog, Filters, ItemUpdate, Settings
from lookalike.attributes import default_taggers
from lookalike.catalog.brands import normalise_brand, read_brand_ratings
from lookalike.catalog.rates import read_rates
from lookalike.catalog.sorting import SORTS, Sort, sort_positions
from lookalike.catalog.store import SCHEMA_VERSION, CatalogStore
from lookalike.catalog.tablefile import TableFileError
from lookalike.demo import sample_images, sample_metadata
from lookalike.errors import FilterError, LookalikeError
from lookalike.recommend import (
    Feed,
    Query,
    profile_search,
    ranking_bound,
    recommend,
    search_image,
    similar,
)
from lookalike.users import Users


def open_catalog(folder: Path, **kw: Any) -> Catalog:
    return Catalog.open(Settings(catalog_dir=folder, model="fake", **kw), taggers=default_taggers)


# -- brand names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Kettle & Loom", "kettle and loom"),
        ("KETTLE+LOOM", "Kettle and Loom"),
        ("Élan", "elan"),
        ("Maison Ardént", "MAISON ARDENT"),
        ("Acme Inc.", "acme"),
        ("Acme, Ltd", "Acme"),
        ("Acme GmbH", "acme"),
        ("Acme Co., Ltd.", "Acme"),
        ("Smith & Co", "smith"),
        ("A.P.C.", "APC"),
        ("Levi's", "Levis"),
        ("Straße", "STRASSE"),
        ("  Tide-water  ", "tide water"),
    ],
)
def test_brand_names_that_are_the_same_brand_normalise_alike(a: str, b: str) -> None:
    assert normalise_brand(a) == normalise_brand(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Acme", "Acne"), ("Co", "Inc"), ("H&M", "HM"), ("Coast", "Coat")],
)
def test_different_brands_stay_apart(a: str, b: str) -> None:
    assert normalise_brand(a) != normalise_brand(b)


def test_a_name_that_is_only_a_suffix_keeps_it() -> None:
    assert normalise_brand("Co") == "co" and normalise_brand("GmbH") == "gmbh"


# -- brand ratings files -------------------------------------------------------------------------

RATINGS = """\
# invented for a test
brand,overall,people,planet,animals,source,url,rated_on
Acme Ltd,4.5,4,5,,Test Ratings,https://example.org/acme,2024-05-01
Borealis,1.5,2,1,1.5,Test Ratings,,
Cobalt,9,1,1,1,Test Ratings,,
Dune,3,,,,,,
Acme,4.0,4,4,4,Test Ratings,,2024-06-01
"""


def test_ratings_file_rows_are_read_and_bad_rows_named(tmp_path: Path) -> None:
    path = tmp_path / "brands.csv"
    path.write_text(RATINGS)
    parsed = read_brand_ratings(path)
    by_brand = {r.brand: r for r in parsed.ratings}
    assert set(by_brand) == {"Acme", "Borealis"}  # "Acme" replaced "Acme Ltd" (same brand)
    assert by_brand["Acme"].overall == 4.0 and by_brand["Acme"].rated_on == date(2024, 6, 1)
    assert by_brand["Borealis"].animals == 1.5 and by_brand["Borealis"].url is None
    assert [(e.row, e.field) for e in parsed.errors] == [(5, "overall"), (6, "source")]
    assert "overall must be at most 5, got 9" in str(parsed.errors[0])
    assert str(parsed.errors[1]).startswith("row 6: source")


def test_ratings_file_needs_its_columns_and_refuses_unknown_ones(tmp_path: Path) -> None:
    path = tmp_path / "brands.csv"
    path.write_text("brand,score,source\nAcme,4,x\n")
    with pytest.raises(TableFileError, match="overall"):
        read_brand_ratings(path)
    jsonl = tmp_path / "brands.jsonl"
    jsonl.write_text('{"brand": "Acme", "overall": 4, "source": "x", "overal": 3}\nnot json\n')
    errors = read_brand_ratings(jsonl).errors
    assert [(e.row, e.field) for e in errors] == [(1, "overal"), (2, "")]
    with pytest.raises(TableFileError, match=r"\.csv or \.jsonl"):
        read_brand_ratings(tmp_path / "brands.xlsx")


# -- exchange rates files ------------------------------------------------------------------------


def test_rates_file_base_dates_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("currency,rate,date\nusd,1.1,2024-05-02\nGBP,0.85,\nJPY,-3,\n")
    parsed = read_rates(path, base="EUR", today=date(2024, 5, 3))
    assert parsed.base == "EUR"
    assert {(r.currency, r.rate, r.date) for r in parsed.rates} == {
        ("EUR", 1.0, date(2024, 5, 3)), ("USD", 1.1, date(2024, 5, 2)),
        ("GBP", 0.85, date(2024, 5, 3)),
    }
    assert [(e.row, e.field) for e in parsed.errors] == [(4, "rate")]
    path.write_text("currency,rate,base\nEUR,0.9,USD\nUSD,2,USD\n")
    parsed = read_rates(path, base="EUR")
    assert parsed.base == "USD"
    assert [e.field for e in parsed.errors] == ["rate"]  # the base must be at 1
    path.write_text("currency,rate,base\nEUR,0.9,USD\nGBP,0.8,EUR\n")
    with pytest.raises(TableFileError, match="one base currency"):
        read_rates(path, base="EUR")


# -- prices in one currency ----------------------------------------------------------------------


@pytest.fixture
def priced(tmp_path: Path) -> Catalog:
    """Six items: prices in EUR, USD, JPY (no rate) and without a currency."""
    rows = make_rows(6)
    prices = [("10", "EUR"), ("5", "USD"), ("12", "USD"), ("1000", "JPY"), ("9", ""),
              ("20", "GBP")]
    for row, (price, currency) in zip(rows, prices, strict=True):
        row["price"], row["currency"] = price, currency
    write_images(tmp_path / "images", rows)
    write_csv(tmp_path / "items.csv", rows)
    cat = open_catalog(tmp_path / "cat")
    assert cat.ingest(tmp_path / "images", tmp_path / "items.csv").added == 6
    (tmp_path / "rates.csv").write_text("currency,rate,date\nUSD,1.25,2024-05-02\n"
                                        "GBP,0.8,2024-05-02\n")
    assert not cat.import_rates(tmp_path / "rates.csv").errors
    return cat


def ids(items: Any) -> list[str]:
    return [getattr(i, "item", i).id for i in items]


def test_price_filters_compare_in_the_base_currency(priced: Catalog) -> None:
    # 5 USD = 4 EUR passes price_max=10, 12 USD = 9.60 EUR too, 20 GBP = 25 EUR does not;
    # an item without a currency is in EUR; JPY has no rate and passes no price filter
    kept = ids(priced.items(Filters(price_max=10)))
    assert kept == ["item-0000", "item-0001", "item-0002", "item-0004"]
    assert ids(priced.items(Filters(price_min=9.7))) == ["item-0000", "item-0005"]
    item = priced.get("item-0001")
    assert (item.price, item.currency) == (5, "USD")
    assert item.base_price == pytest.approx(4.0) and item.base_currency == "EUR"
    assert priced.get("item-0003").base_price is None
    assert priced.get("item-0004").base_price == 9  # no currency: the base currency


def test_items_without_a_rate_are_named_in_a_note(priced: Catalog) -> None:
    notes = priced.price_notes(Filters(price_max=10))
    assert notes == ["1 item priced in JPY has no exchange rate to EUR: price filters leave "
                     "it out and price sorts put it last (lookalike rates import)"]
    assert priced.price_notes(Filters(category=["Dress"])) == []
    assert priced.price_notes(None, "price_desc") == notes


def test_price_sort_uses_converted_prices(priced: Catalog) -> None:
    cheapest = ids(priced.items(sort="price_asc"))
    # 4.00 EUR (5 USD), 9 EUR, 9.60 EUR (12 USD), 10 EUR, 25 EUR (20 GBP), JPY last
    assert cheapest == ["item-0001", "item-0004", "item-0002", "item-0000", "item-0005",
                        "item-0003"]
    dearest = ids(priced.items(sort="price_desc"))
    assert dearest == ["item-0005", "item-0000", "item-0002", "item-0004", "item-0001",
                       "item-0003"]


def test_currency_filter(priced: Catalog) -> None:
    assert ids(priced.items(Filters(currency=["usd"]))) == ["item-0001", "item-0002"]
    # an item without a currency is priced in the base currency
    assert ids(priced.items(Filters(currency=["EUR"]))) == ["item-0000", "item-0004"]
    with pytest.raises(FilterError, match="ISO 4217"):
        Filters.parse(["currency=dollars"])


def test_new_rates_and_changed_items_convert_again(priced: Catalog, tmp_path: Path) -> None:
    (tmp_path / "r2.csv").write_text("currency,rate\nUSD,2\nJPY,100\n")
    assert not priced.import_rates(tmp_path / "r2.csv").errors
    assert priced.get("item-0001").base_price == pytest.approx(2.5)
    assert priced.get("item-0003").base_price == pytest.approx(10)
    assert priced.get("item-0005").base_price is None  # the new table has no GBP
    changed = priced.update_item("item-0005", ItemUpdate(currency="USD"))
    assert changed.base_price == pytest.approx(10)


def test_a_rates_file_with_errors_changes_nothing(priced: Catalog, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("currency,rate\nUSD,2\nJPY,lots\n")
    parsed = priced.import_rates(tmp_path / "bad.csv")
    assert [(e.row, e.field) for e in parsed.errors] == [(3, "rate")]
    assert priced.get("item-0001").base_price == pytest.approx(4.0)  # the old rates hold


def test_rates_against_another_base_convert_through_it(priced: Catalog, tmp_path: Path) -> None:
    # rates against USD (EUR = 0.8 USD): 10 EUR = 12.5 USD, so 5 USD = 4 EUR as before
    (tmp_path / "usd.csv").write_text("currency,rate,base\nEUR,0.8,USD\nGBP,0.64,USD\n")
    assert not priced.import_rates(tmp_path / "usd.csv").errors
    assert priced.store.rates()[0] == "USD"
    assert priced.get("item-0001").base_price == pytest.approx(4.0)
    assert priced.get("item-0005").base_price == pytest.approx(25.0)


def test_another_base_currency_converts_the_catalog(priced: Catalog, tmp_path: Path) -> None:
    priced.close()
    with open_catalog(tmp_path / "cat", base_currency="USD") as cat:
        assert cat.get("item-0000").base_price == pytest.approx(12.5)
        assert cat.get("item-0000").base_currency == "USD"
        assert cat.get("item-0001").base_price == pytest.approx(5)
        assert ids(cat.items(Filters(price_max=6))) == ["item-0001"]
        assert ids(cat.items(Filters(currency=["USD"]))) == ["item-0001", "item-0002",
                                                             "item-0004"]


# -- brand ratings on items ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The bundled sample (306 items) with the fake encoder and the sample's brand ratings."""
    folder = tmp_path_factory.mktemp("sample")
    cat = open_catalog(folder)
    cat.ingest(sample_images(), sample_metadata())
    from lookalike.demo import sample_brand_ratings

    assert not cat.import_brand_ratings(sample_brand_ratings()).errors
    return cat


def test_ratings_join_items_by_normalised_brand(tmp_path: Path) -> None:
    images, meta, _ = make_dataset(tmp_path, 6)  # brands Acme, Borealis, Cobalt
    with open_catalog(tmp_path / "cat") as cat:
        cat.ingest(images, meta)
        (tmp_path / "b.csv").write_text(RATINGS)
        cat.import_brand_ratings(tmp_path / "b.csv")
        acme = cat.get("item-0000")
        assert acme.brand == "Acme" and acme.brand_rating is not None
        assert (acme.brand_rating.overall, acme.brand_rating.source) == (4.0, "Test Ratings")
        assert cat.get("item-0002").brand_rating is None  # Cobalt's row was refused
        # an item whose brand is spelt otherwise gets the same rating, at once
        cat.update_item("item-0002", ItemUpdate(brand="ACME GmbH"))
        assert cat.get("item-0002").brand_rating == acme.brand_rating
        # filters: overall and per aspect; the brand filter matches normalised names too
        assert set(ids(cat.items(Filters(min_brand_rating=3)))) == {"item-0000", "item-0002",
                                                                    "item-0003"}
        assert ids(cat.items(Filters(min_brand_planet=4.5))) == []
        assert set(ids(cat.items(Filters(min_brand_people=2)))) == {
            "item-0000", "item-0001", "item-0002", "item-0003", "item-0004"}
        assert set(ids(cat.items(Filters(brand=["acme inc."])))) == {"item-0000", "item-0002",
                                                                     "item-0003"}
        assert cat.unknown_filter_values(Filters(brand=["ACME Ltd"])) == []
        # a new rating reaches the items already there; `replace` drops the others
        (tmp_path / "b2.csv").write_text("brand,overall,source\nAcme,2,Other\n")
        cat.import_brand_ratings(tmp_path / "b2.csv", replace=True)
        assert cat.get("item-0000").brand_rating.overall == 2  # type: ignore[union-attr]
        assert cat.get("item-0001").brand_rating is None
        assert [r.brand for r, _ in cat.store.brand_ratings()] == ["Acme"]


def test_brand_rating_sort_puts_unrated_last(sample: Catalog) -> None:
    items = sample.items(limit=306, sort="brand_rating")
    overall = [i.brand_rating.overall if i.brand_rating else None for i in items]
    rated = [o for o in overall if o is not None]
    assert rated == sorted(rated, reverse=True) and len(rated) > 100
    assert overall[len(rated):] == [None] * (len(overall) - len(rated))


# -- sorting and paging --------------------------------------------------------------------------


def test_sort_positions_put_missing_values_last_and_keep_ties_in_relevance_order() -> None:
    values = [(3.0,), (None,), (1.0,), (3.0,), (2.0,)]
    assert sort_positions(values, "price_asc") == [2, 4, 0, 3, 1]
    assert sort_positions(values, "price_desc") == [0, 3, 4, 2, 1]
    assert sort_positions([(4.0, 2.0), (4.0, 9.0), (None, 5.0)], "rating") == [1, 0, 2]


def pages(fetch: Any, size: int, end: int) -> list[str]:
    out: list[str] = []
    for offset in range(0, end, size):
        out += ids(fetch(offset, min(size, end - offset)))
    return out


@pytest.mark.parametrize("sort", list(SORTS))
def test_sorted_look_alikes_page_stably(sample: Catalog, sort: Sort) -> None:
    item = sample.items(limit=1)[0]
    bound = ranking_bound(sample.settings, sort=sort)
    whole = similar(sample, item.id, bound, sort=sort)
    paged = pages(lambda o, k: similar(sample, item.id, k, offset=o, sort=sort), 37, bound)
    assert paged == ids(whole) and len(set(paged)) == len(paged)
    if sort != "relevance":
        # the sorted list is the best `sort_depth` look-alikes, in another order
        assert len(whole) == sample.settings.sort_depth
        closest = similar(sample, item.id, sample.settings.sort_depth)
        assert set(ids(whole)) == set(ids(closest))
        values = [v[0] for v in sample.store.sort_values([r.item.rowid for r in whole], sort)]
        known = [v for v in values if v is not None]
        descending = SORTS[sort][0].descending
        assert known == sorted(known, reverse=descending)


def test_relevance_pages_go_past_100_with_colour_and_stay_one_ranking(sample: Catalog) -> None:
    item = sample.items(limit=1)[0]
    others = sample.store.count(Filters()) - 1  # every other item for sale
    query = Query(colour_weight=0.5, diversity=0.0).add_item(sample, item.id)
    whole = recommend(sample, query, others)
    assert len(whole) == others > 250  # past the old cap of 100
    scores = [r.score for r in whole]
    assert scores == sorted(scores, reverse=True)
    paged = pages(lambda o, k: recommend(sample, query, k, offset=o), 24, others)
    assert paged == ids(whole)


@pytest.mark.parametrize(("weight", "n"), [(0.1, 5), (0.6, 5), (0.6, 40), (0.9, 150)])
def test_best_matches_are_the_exact_top_of_a_brute_force_ranking(
    sample: Catalog, weight: float, n: int
) -> None:
    """The widening pool against scoring every item of the catalog (sold ones left out)."""
    from lookalike.attributes.palettes import palettes_of
    from lookalike.recommend.query import _best_matches, _Colour

    item = sample.items(limit=1, offset=7)[0]
    q = sample.vector_of(item.id)
    target = palettes_of(sample, [item.rowid])[0]
    colour = _Colour(target / target.sum(), [], weight)
    rowids, match, _ = _best_matches(sample, q, n, Filters(), [], colour)
    allowed = sample.allowed_rowids(Filters())
    assert allowed is not None
    vectors = sample.index.vectors(allowed)
    everything = (1 - weight) * (vectors @ q) + weight * colour.similarity(
        palettes_of(sample, allowed.tolist()))
    top = np.lexsort((allowed, -everything))[:n]
    assert rowids.tolist() == allowed[top].tolist()
    np.testing.assert_allclose(match, everything[top], rtol=1e-5, atol=1e-6)


def test_diversified_pages_are_cut_from_one_list(sample: Catalog) -> None:
    item = sample.items(limit=1)[0]
    query = Query(colour_weight=0.2, diversity=0.4).add_item(sample, item.id)
    bound = ranking_bound(sample.settings, 0.4)
    assert bound == sample.settings.sort_depth
    whole = recommend(sample, query, bound)
    assert pages(lambda o, k: recommend(sample, query, k, offset=o), 50, bound) == ids(whole)


def test_a_style_profile_sorts_its_look_alikes(sample: Catalog) -> None:
    vectors = np.stack([sample.vector_of(i.id) for i in sample.items(limit=3)])
    plain = profile_search(sample, vectors, 200)
    cheapest = profile_search(sample, vectors, 10, sort="price_asc")
    prices = [r.item.base_price for r in cheapest]
    assert prices == sorted(prices)  # type: ignore[type-var]
    # the cheapest of the profile's look-alikes, not of the whole catalog
    assert {r.item.id for r in cheapest} <= {r.item.id for r in plain}
    assert prices[0] == min(r.item.base_price for r in plain)  # type: ignore[type-var]


def test_an_unknown_sort_is_a_plain_error(sample: Catalog) -> None:
    with pytest.raises(LookalikeError, match="unknown sort 'cheap'"):
        sample.items(sort="cheap")


# -- listing state, ratings ----------------------------------------------------------------------


def test_many_sold_items_are_left_out_by_a_filtered_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lookalike.catalog.catalog as module

    monkeypatch.setattr(module, "SOLD_EXCLUDED_MAX", 0)  # "many": more than none
    images, meta, rows = make_dataset(tmp_path, 8)
    rows[1]["state"] = "sold"
    write_csv(meta, rows)
    with open_catalog(tmp_path / "cat") as cat:
        cat.ingest(images, meta)
        assert "item-0001" not in ids(search_image(cat, images / rows[1]["image"], 7))
        assert cat.last_plan is not None and cat.last_plan.method == "exact-subset"


def test_sold_items_leave_search_browse_and_feed(tmp_path: Path) -> None:
    images, meta, rows = make_dataset(tmp_path, 16)
    rows[1]["state"], rows[2]["state"], rows[3]["state"] = "sold", "Reserved", ""
    write_csv(meta, rows)
    with open_catalog(tmp_path / "cat") as cat:
        report = cat.ingest(images, meta)
        assert report.added == 16, report.rejected
        assert cat.get("item-0001").state == "sold" and cat.get("item-0002").state == "reserved"
        assert cat.get("item-0003").state == "available"
        assert "item-0001" not in ids(cat.items(limit=100))
        assert "item-0001" in ids(cat.items(Filters(include_sold=True), limit=100))
        assert ids(cat.items(Filters(state=["sold"]))) == ["item-0001"]
        assert "item-0001" not in ids(similar(cat, "item-0005", 15))
        assert "item-0001" in ids(similar(cat, "item-0005", 15, Filters(include_sold=True)))
        photo = images / rows[1]["image"]
        assert ids(search_image(cat, photo, 1))[0] != "item-0001"
        # one sold item: the whole index is searched and the sold one dropped from the hits
        assert cat.last_plan is not None and cat.last_plan.method == "exact"
        assert ids(search_image(cat, photo, 1, Filters(include_sold=True))) == ["item-0001"]
        feed = Feed(cat, Users(cat.store))
        user, _ = feed.users.create_guest()
        assert "item-0001" not in ids(feed.next(user, 15))
        assert cat.store.count() == 16 and cat.store.count(Filters()) == 15
        assert cat.info()["sold"] == 1
        # back on sale: found again
        cat.update_item("item-0001", ItemUpdate(state="available"))
        assert ids(search_image(cat, photo, 1)) == ["item-0001"]


def test_bad_state_is_a_rejected_row(tmp_path: Path) -> None:
    images, meta, rows = make_dataset(tmp_path, 3)
    rows[1]["state"] = "gone"
    write_csv(meta, rows)
    with open_catalog(tmp_path / "cat") as cat:
        report = cat.ingest(images, meta)
        assert [(r.row, r.field) for r in report.rejected] == [(3, "state")]


def test_rating_and_reviews_filter_and_sort(tmp_path: Path) -> None:
    images, meta, rows = make_dataset(tmp_path, 5)
    for row, (rating, reviews) in zip(rows, [("4.5", "2"), ("", ""), ("4.5", "30"),
                                             ("3", "100"), ("5", "1")], strict=True):
        row["rating"], row["reviews"] = rating, reviews
    write_csv(meta, rows)
    with open_catalog(tmp_path / "cat") as cat:
        assert cat.ingest(images, meta).added == 5
        assert (cat.get("item-0002").rating, cat.get("item-0002").reviews) == (4.5, 30)
        assert ids(cat.items(sort="rating")) == ["item-0004", "item-0002", "item-0000",
                                                 "item-0003", "item-0001"]
        assert ids(cat.items(Filters(min_rating=4.5))) == ["item-0000", "item-0002",
                                                           "item-0004"]


# -- a catalog made before issue 21 --------------------------------------------------------------

#: The items table as the code before issue 21 made it (main at 9572932).
OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL DEFAULT '',
    category TEXT, department TEXT, kids INTEGER, price REAL, currency TEXT, brand TEXT,
    sizes TEXT NOT NULL DEFAULT '[]', colour TEXT, url TEXT, sustainability REAL,
    second_hand INTEGER, source TEXT, extra TEXT NOT NULL DEFAULT '{}',
    predicted TEXT NOT NULL DEFAULT '{}', image_path TEXT NOT NULL,
    image_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX items_category ON items(category);
CREATE INDEX items_price ON items(price);
CREATE TABLE embeddings (
    item_rowid INTEGER PRIMARY KEY REFERENCES items(rowid) ON DELETE CASCADE,
    vector BLOB NOT NULL
);
"""


def make_old_catalog(folder: Path, dim: int = 64) -> None:
    folder.mkdir(parents=True)
    conn = sqlite3.connect(folder / "catalog.sqlite")
    conn.executescript(OLD_SCHEMA)
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("model", "fake"), ("dim", str(dim))])
    rng = np.random.default_rng(0)
    for i, (brand, price, currency) in enumerate(
        [("Kettle & Loom Ltd", 10.0, "EUR"), ("Tidewater", 11.0, "USD"), (None, None, None)]
    ):
        conn.execute(
            "INSERT INTO items (id, title, brand, price, currency, image_path, image_hash,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (f"old-{i}", f"Old item {i}", brand, price, currency, f"/nowhere/{i}.jpg", f"h{i}",
             "2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00+00:00"),
        )
        vec = rng.standard_normal(dim).astype(np.float32)
        conn.execute("INSERT INTO embeddings VALUES (?, ?)",
                     (i + 1, (vec / np.linalg.norm(vec)).tobytes()))
    conn.commit()
    conn.close()


def test_an_old_catalog_opens_and_gains_the_new_columns(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    make_old_catalog(folder)
    with open_catalog(folder) as cat:
        item = cat.get("old-0")
        assert (item.state, item.rating, item.reviews) == ("available", None, None)
        assert item.base_price == 10 and item.base_currency == "EUR"
        assert cat.get("old-1").base_price is None  # USD: no rates yet
        (tmp_path / "b.csv").write_text("brand,overall,source\nkettle and loom,4,Demo\n")
        cat.import_brand_ratings(tmp_path / "b.csv")
        assert cat.get("old-0").brand_rating is not None  # its brand was normalised
        assert len(similar(cat, "old-0", 5)) == 2
        cat.update_item("old-2", ItemUpdate(state="sold"))
        assert len(similar(cat, "old-0", 5)) == 1
    conn = sqlite3.connect(folder / "catalog.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {r[1] for r in conn.execute("PRAGMA table_info(items)")}
    assert {"state", "rating", "reviews", "brand_key", "price_base"} <= columns
    assert conn.execute("SELECT brand_key FROM items WHERE id = 'old-0'").fetchone() == (
        "kettle and loom",)
    conn.close()
    # opening it again migrates nothing more and loses nothing
    store = CatalogStore(folder / "catalog.sqlite")
    assert store.count() == 3 and store.get("old-2").state == "sold"
    store.close()


def test_check_reads_an_old_catalog_it_has_not_migrated(tmp_path: Path) -> None:
    # `lookalike check` only reads: the rows of a catalog made before the shop columns are
    # items (available, unrated), not damaged rows or a crash
    from lookalike.catalog.maintenance import check

    folder = tmp_path / "old"
    make_old_catalog(folder)
    report = check(Settings(catalog_dir=folder, model="fake"))
    assert report.items == 3 and "item" not in report.by_kind()
    assert {p.item_id for p in report.of("image")} == {"old-0", "old-1", "old-2"}
    conn = sqlite3.connect(folder / "catalog.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0  # still unmigrated
    conn.close()


def test_two_stores_opening_an_old_catalog_migrate_it_once(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    make_old_catalog(folder)
    first = CatalogStore(folder / "catalog.sqlite")
    second = CatalogStore(folder / "catalog.sqlite")
    assert first.get("old-0").state == second.get("old-0").state == "available"
    first.close()
    second.close()


def test_item_json_shows_original_and_converted_price(priced: Catalog) -> None:
    data = json.loads(priced.get("item-0001").model_dump_json())
    assert (data["price"], data["currency"]) == (5.0, "USD")
    assert data["base_price"] == pytest.approx(4.0) and data["base_currency"] == "EUR"
