"""Congruence of the metadata databases (qdrant-client's style): the same items on SQLite and on
a real PostgreSQL server give the same items, the same filter results (≈1 % filters, sizes,
unknown values, price ranges in the base currency, currencies, brand and shoppers' ratings,
listing states) — both equal to a plain Python reference — the same sorted pages and exact top k,
the same users, swipes and feed; writes and deletes made by another process are seen by both;
a PostgreSQL server restart loses nothing and a served catalog carries on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from catalog_factory import make_dataset
from databases import drop_schema, new_schema_url, settings_for
from imagefactory import png
from lookalike.api import create_app
from lookalike.attributes import default_taggers
from lookalike.attributes.directions import compute_directions
from lookalike.catalog import Catalog, Filters, ItemIn
from lookalike.catalog.brands import BrandRating, normalise_brand
from lookalike.catalog.catalog import open_store
from lookalike.catalog.rates import Rate
from lookalike.catalog.schema import ItemFields, ItemUpdate, Tag
from lookalike.catalog.sorting import SORTS
from lookalike.catalog.store import SCHEMA_VERSION, CatalogStore, NewItem
from lookalike.colour_names import canonical_colour, colour_variants
from lookalike.errors import CatalogNotFoundError, DatabaseUnavailableError, LookalikeError
from lookalike.recommend import Feed
from lookalike.recommend.words import search_text
from lookalike.servers import PostgresServer, free_port
from lookalike.users import Lifetimes, Users

N = 3000
DIM = 64
CATEGORIES = ("Dress", "Shoes", "T-Shirt", "Pants")
#: Brand ratings (Cobalt has none) and exchange rates (per EUR, the base; JPY has none).
RATINGS = [BrandRating(brand="ACME Ltd", overall=4.2, people=3.0, source="test"),
           BrandRating(brand="Borealis", overall=2.5, planet=4.0, source="test"),
           BrandRating(brand="Rare", overall=4.8, source="test")]
RATES = {"EUR": 1.0, "USD": 1.1, "GBP": 0.85}


def make_rows(n: int = N) -> list[dict[str, Any]]:
    """Items with every kind of field value: given or only predicted, missing, mixed case;
    brand "Rare", size "XXS", category "Coat", currency JPY (no rate) and state sold on 1 %
    of them each."""
    rows = []
    for i in range(n):
        brand = None if i % 11 == 0 else "Rare" if i % 100 == 7 else ("Acme", "Borealis",
                                                                       "Cobalt")[i % 3]
        if brand and i % 17 == 0:
            brand = brand.upper()
        sizes = [["S", "M"], ["L"], []][i % 3] + (["XXS"] if i % 100 == 42 else [])
        rows.append({
            "id": f"item-{i:05d}",
            "category": "Coat" if i % 100 == 13 else None if i % 5 == 0 else CATEGORIES[i % 4],
            "predicted_category": CATEGORIES[(i * 7) % 4],
            "brand": brand,
            "colour": ("red", "blue", "black", "white", "green")[i % 5] if i % 2 == 0 else None,
            "predicted_colour": ("Red", "navy", "black")[i % 3],
            "sizes": sizes,
            "price": None if i % 13 == 0 else round(5 + (i * 37 % 9500) / 100, 2),
            "kids": None if i % 7 == 0 else i % 4 == 0,
            "second_hand": None if i % 19 == 0 else i % 3 == 0,
            "sustainability": None if i % 6 == 0 else (i % 50) / 10,
            "extra": {"pattern": ("plain", "striped")[i % 2], "n": i},
            "currency": "JPY" if i % 100 == 55 else "USD" if i % 4 == 1 else "GBP" if i % 4 == 2
            else "EUR" if i % 8 == 3 else None,
            "state": "sold" if i % 100 == 21 else "reserved" if i % 10 == 3 else "available",
            "rating": None if i % 4 == 1 else (i % 51) / 10,
            "reviews": None if i % 4 == 1 else i % 200,
            # unsigned 64-bit perceptual hashes, half of them above 2**63 (stored signed)
            "phash": None if i % 9 == 0 else (i * 0x9E3779B97F4A7C15) % 2**64,
            "duplicate_of": f"item-{i - 1:05d}" if i % 250 == 1 else None,
        })
    return rows


def vectors(n: int = N, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float32]]:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    out: np.ndarray[Any, np.dtype[np.float32]] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def new_item(row: dict[str, Any]) -> NewItem:
    fields = ItemFields(
        title=f"title of {row['id']}", category=row["category"], brand=row["brand"],
        colour=row["colour"], sizes=row["sizes"], price=row["price"], kids=row["kids"],
        second_hand=row["second_hand"], sustainability=row["sustainability"], extra=row["extra"],
        currency=row["currency"], state=row["state"], rating=row["rating"],
        reviews=row["reviews"],
    )
    predicted = {"category": Tag(value=row["predicted_category"], confidence=0.8),
                 "colour": Tag(value=row["predicted_colour"], confidence=0.7)}
    return NewItem(row["id"], fields, f"/photos/{row['id']}.jpg", f"hash-{row['id']}", predicted,
                   phash=row["phash"], duplicate_of=row["duplicate_of"])


def fill(store: CatalogStore, rows: list[dict[str, Any]],
         vecs: np.ndarray[Any, np.dtype[np.float32]]) -> None:
    store.bind_model("fake", DIM)
    for start in range(0, len(rows), 500):
        store.add([new_item(r) for r in rows[start:start + 500]], vecs[start:start + 500])
    store.set_brand_ratings(RATINGS)
    store.set_rates([Rate(currency=c, rate=r, date="2031-01-02") for c, r in RATES.items()],
                    "EUR")


# -- the reference: what each filter keeps, in plain Python -------------------------------------


def price_base(row: dict[str, Any]) -> float | None:
    """The price in EUR: as given without a currency or in EUR, converted through the rates,
    None without a price or a rate."""
    currency = row["currency"] or "EUR"
    if row["price"] is None or currency not in RATES:
        return None
    return float(row["price"]) if currency == "EUR" else row["price"] * 1.0 / RATES[currency]


def brand_overall(row: dict[str, Any]) -> float | None:
    rated = {r.key: r.overall for r in RATINGS}
    return None if row["brand"] is None else rated.get(normalise_brand(row["brand"]))


def at_least(value: float | None, bound: float | None) -> bool:
    return bound is None or (value is not None and value >= bound)


def keeps(row: dict[str, Any], f: Filters) -> bool:
    def value(name: str) -> str | None:
        given = row[name]
        return given if given is not None else row.get(f"predicted_{name}")

    def any_of(have: str | None, wanted: list[str]) -> bool:
        return have is not None and have.lower() in {w.lower() for w in wanted}

    def colour(have: str | None) -> str | None:  # as `colour_sql` normalises
        return None if have is None else " ".join(
            have.lower().replace("-", " ").replace("_", " ").replace("/", " ").split())

    price = price_base(row)
    checks = [
        not f.category or any_of(value("category"), f.category),
        not f.brand or (row["brand"] is not None and normalise_brand(row["brand"])
                        in {normalise_brand(b) for b in f.brand}),
        not f.colour or colour(value("colour")) in {v for c in f.colour
                                                    for v in colour_variants(c)},
        not f.size or any(any_of(s, f.size) for s in row["sizes"]),
        f.price_min is None or (price is not None and price >= f.price_min),
        f.price_max is None or (price is not None and price <= f.price_max),
        f.kids is None or row["kids"] == f.kids,
        f.second_hand is None or row["second_hand"] == f.second_hand,
        at_least(row["sustainability"], f.min_sustainability),
        not f.currency or (row["currency"] or "EUR") in f.currency,
        at_least(brand_overall(row), f.min_brand_rating),
        at_least(row["rating"], f.min_rating),
        row["state"] in f.state if f.state else (f.include_sold or row["state"] != "sold"),
    ]
    return all(checks)


FILTERS = [
    Filters(),
    Filters(category=["dress"]),
    Filters(category=["SHOES", "coat"]),
    Filters(category=["Coat"]),  # 1 %, given only
    Filters(brand=["rare"]),  # 1 %
    Filters(brand=["acme"]),  # "Acme" and "ACME"
    Filters(size=["xxs"]),  # 1 %
    Filters(size=["m", "l"]),
    Filters(colour=["navy"]),  # predicted only
    Filters(colour=["red"]),  # given "red" and predicted "Red"
    Filters(category=["Spacesuit"]),  # unknown value: nothing
    Filters(size=["XXXL"]),  # unknown size
    Filters(price_min=20.0, price_max=21.0),  # ≈1 %
    Filters(price_max=10.0),
    Filters(price_min=99.0),
    Filters(kids=True),
    Filters(second_hand=False, min_sustainability=4.0),
    Filters(currency=["usd"]),
    Filters(currency=["EUR"]),  # given EUR, and no currency (the base)
    Filters(currency=["JPY"]),  # 1 %, no rate: in no price range
    Filters(currency=["JPY"], price_min=0.0),  # nothing
    Filters(min_brand_rating=4.5),  # Rare: 1 %
    Filters(min_brand_rating=4.0, min_rating=4.5),
    Filters(state=["reserved"]),
    Filters(state=["sold"]),  # 1 %
    Filters(state=["sold", "available"], brand=["ACME"]),
    Filters(include_sold=True),
    Filters(include_sold=True, price_min=50.0, currency=["GBP", "USD"]),
    Filters(category=["dress"], size=["m"], price_max=50.0, colour=["red", "blue"]),
]
FILTER_IDS = [f.model_dump_json(exclude_defaults=True) for f in FILTERS]


# -- one catalog on each database, the same data -------------------------------------------------


@pytest.fixture(scope="module")
def catalogs(postgres_server: PostgresServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Catalog]]:
    rows, vecs = make_rows(), vectors()
    url, schema = new_schema_url(postgres_server.url)
    out = {}
    for name, database_url in (("sqlite", None), ("postgresql", url)):
        settings = settings_for(tmp_path_factory.mktemp(name), database_url, auto_tag=False)
        store = open_store(settings)
        fill(store, rows, vecs)
        store.close()
        out[name] = Catalog.open(settings, taggers=default_taggers)
    yield out
    for catalog in out.values():
        catalog.close()
    drop_schema(postgres_server.url, schema)


@pytest.fixture(scope="module")
def reference() -> tuple[list[dict[str, Any]], np.ndarray[Any, np.dtype[np.float32]]]:
    return make_rows(), vectors()


def test_the_same_items_come_back_from_both(catalogs: dict[str, Catalog]) -> None:
    lite, pg = catalogs["sqlite"].store, catalogs["postgresql"].store
    a, b = lite.list(limit=N + 10), pg.list(limit=N + 10)
    assert len(a) == len(b) == N
    strip = {"created_at", "updated_at"}
    assert [i.model_dump(exclude=strip) for i in a] == [i.model_dump(exclude=strip) for i in b]
    rows = make_rows()
    assert [i.id for i in b] == [r["id"] for r in rows]
    assert b[42].sizes == ["S", "M", "XXS"] and b[42].extra == {"pattern": "plain", "n": 42}
    assert b[7].kids is None and b[8].kids is True and b[9].second_hand is True
    assert pg.get("item-00013").category == "Coat"
    ids_a, vec_a = lite.vectors()
    ids_b, vec_b = pg.vectors()
    assert np.array_equal(ids_a, ids_b) and vec_a.tobytes() == vec_b.tobytes()
    assert lite.dim == pg.dim == DIM and pg.model_name == "fake"
    assert lite.vectors_version() == pg.vectors_version() == N


@pytest.mark.parametrize("filters", FILTERS, ids=FILTER_IDS)
def test_a_filter_keeps_the_same_items_on_both_as_the_reference(
    catalogs: dict[str, Catalog], filters: Filters,
    reference: tuple[list[dict[str, Any]], np.ndarray[Any, np.dtype[np.float32]]],
) -> None:
    rows, _ = reference
    expected = [i + 1 for i, r in enumerate(rows) if keeps(r, filters)]  # rowids from 1
    for name, catalog in catalogs.items():
        assert catalog.store.filter_rowids(filters).tolist() == expected, name
        assert catalog.store.count(filters) == len(expected), name
        page = catalog.store.list(filters, offset=3, limit=5)
        assert [i.rowid for i in page] == expected[3:8], name


def test_the_one_percent_filters_are_one_percent(
    reference: tuple[list[dict[str, Any]], np.ndarray[Any, np.dtype[np.float32]]],
) -> None:
    rows, _ = reference
    for f in (Filters(brand=["rare"]), Filters(size=["xxs"]), Filters(category=["Coat"]),
              Filters(price_min=20.0, price_max=21.0), Filters(currency=["JPY"]),
              Filters(min_brand_rating=4.5), Filters(state=["sold"])):
        share = sum(keeps(r, f) for r in rows) / len(rows)
        assert 0.005 <= share <= 0.02, f


@pytest.mark.parametrize("field", ["category", "brand", "colour", "size", "currency"])
def test_filter_values_and_unknown_value_notes_agree(
    catalogs: dict[str, Catalog], field: str,
    reference: tuple[list[dict[str, Any]], np.ndarray[Any, np.dtype[np.float32]]],
) -> None:
    rows, _ = reference
    counts: Counter[str] = Counter()
    for r in rows:
        if field == "size":
            counts.update(r["sizes"])
        elif field == "currency":
            counts[r["currency"] or "EUR"] += 1
        elif field == "colour":
            counts[canonical_colour(r["colour"] or r["predicted_colour"])] += 1
        else:
            value = r[field] if r[field] is not None else r.get(f"predicted_{field}")
            if value:
                counts[value] += 1
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode()))
    for catalog in catalogs.values():
        assert catalog.store.values(field) == expected
        assert catalog.store.values(field, limit=2) == expected[:2]
    if field == "currency":
        return
    wanted = Filters(**{field: ["nothing-like-it", "Acme"]})
    notes = [c.unknown_filter_values(wanted) for c in catalogs.values()]
    assert notes[0] == notes[1] and any("nothing-like-it" in n for n in notes[0])


SEARCHED = [3, 4, 5, 6, 7, 12, 19, 21, 24, 27, -1]  # ≈1 % filters, shop filters, combined


@pytest.mark.parametrize("filters", [None, *(FILTERS[i] for i in SEARCHED)],
                         ids=["none", *(FILTER_IDS[i] for i in SEARCHED)])
def test_exact_search_gives_the_same_top_k_on_both_as_brute_force(
    catalogs: dict[str, Catalog], filters: Filters | None,
    reference: tuple[list[dict[str, Any]], np.ndarray[Any, np.dtype[np.float32]]],
) -> None:
    rows, vecs = reference
    queries = np.concatenate([vectors(8, seed=1), vecs[[5, 500, 2999]]])
    allowed = np.asarray([i for i, r in enumerate(rows) if keeps(r, filters or Filters())])
    k = 10
    answers = {}
    for name, catalog in catalogs.items():
        answers[name] = catalog.search_vectors(queries, k, filters)
        assert catalog.last_plan is not None and catalog.last_plan.method.startswith("exact")
    for q, a, b in zip(queries, answers["sqlite"], answers["postgresql"], strict=True):
        scores = vecs[allowed] @ q
        best = allowed[np.argsort(-scores, kind="stable")[:k]]
        assert [r for r, _ in a] == [r for r, _ in b] == [int(i) + 1 for i in best]
        assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-6)
        assert np.allclose([s for _, s in b], np.sort(scores)[::-1][:k], atol=1e-5)


def sort_reference(rows: list[dict[str, Any]], sort: str) -> list[int]:
    """Rowids of the items not sold in `sort`'s order: missing values last, then by rowid."""
    values = {"price_asc": lambda r: (price_base(r),), "price_desc": lambda r: (price_base(r),),
              "sustainability": lambda r: (r["sustainability"],),
              "brand_rating": lambda r: (brand_overall(r),),
              "rating": lambda r: (r["rating"], r["reviews"])}[sort]

    def key(i: int) -> tuple[Any, ...]:
        out: list[Any] = []
        for value, spec in zip(values(rows[i]), SORTS[sort], strict=True):
            out += [value is None, 0.0 if value is None else -value if spec.descending
                    else value]
        return (*out, i)

    kept = [i for i, r in enumerate(rows) if r["state"] != "sold"]
    return [i + 1 for i in sorted(kept, key=key)]


@pytest.mark.parametrize("sort", list(SORTS))
def test_sorted_pages_agree_with_each_other_and_the_reference(
    catalogs: dict[str, Catalog], sort: str,
    reference: tuple[list[dict[str, Any]], np.ndarray[Any, np.dtype[np.float32]]],
) -> None:
    rows, _ = reference
    pages = {name: [i.rowid for i in c.store.list(Filters(), limit=N, sort=sort)]
             for name, c in catalogs.items()}
    assert pages["sqlite"] == pages["postgresql"], sort
    if sort == "newest":  # six batches, the last added first, each in catalog order
        assert pages["sqlite"][0] == 2501 and pages["sqlite"][-1] == 500
    elif sort != "relevance":
        assert pages["sqlite"] == sort_reference(rows, sort)
    deep = [c.store.list(Filters(currency=["GBP"]), offset=200, limit=7, sort=sort)
            for c in catalogs.values()]
    assert [i.id for i in deep[0]] == [i.id for i in deep[1]] and len(deep[0]) == 7
    picked = pages["sqlite"][::97]
    values = [c.store.sort_values(picked, sort) for c in catalogs.values()]
    if sort == "newest":  # each catalog's own timestamps, as Julian days (to a millisecond)
        for catalog, got in zip(catalogs.values(), values, strict=True):
            stamps = [i.created_at.timestamp() / 86400 + 2440587.5
                      for i in catalog.store.get_many(picked)]
            assert np.allclose([v[0] for v in got], stamps, rtol=0, atol=2e-8)
        return
    assert np.allclose(np.asarray(values[0], dtype=float), np.asarray(values[1], dtype=float),
                       equal_nan=True, rtol=0, atol=1e-6)


def test_converted_prices_ratings_and_states_read_back_alike(
    catalogs: dict[str, Catalog],
    reference: tuple[list[dict[str, Any]], np.ndarray[Any, np.dtype[np.float32]]],
) -> None:
    rows, _ = reference
    lite, pg = catalogs["sqlite"].store, catalogs["postgresql"].store
    for store in (lite, pg):
        items = store.list(Filters(include_sold=True), limit=N)
        assert [i.base_price for i in items] == [price_base(r) for r in rows]
        assert [i.state for i in items] == [r["state"] for r in rows]
        assert [(i.rating, i.reviews) for i in items] == [(r["rating"], r["reviews"])
                                                          for r in rows]
        assert [None if i.brand_rating is None else i.brand_rating.overall
                for i in items] == [brand_overall(r) for r in rows]
        assert store.unconverted() == [("JPY", sum(r["currency"] == "JPY"
                                                   and r["price"] is not None for r in rows))]
        prices = [price_base(r) for r in rows if r["state"] != "sold"]
        known = [p for p in prices if p is not None]
        assert store.base_price_range() == (min(known), max(known))
        assert store.has_sold() and len(store.sold_rowids(1000)) == 30
        brands = Counter(normalise_brand(r["brand"]) for r in rows if r["brand"])
        assert [(b.brand, n) for b, n in store.brand_ratings()] == [
            ("ACME Ltd", brands["acme"]), ("Borealis", brands["borealis"]),
            ("Rare", brands["rare"])]
        assert store.rates()[0] == "EUR" and len(store.rates()[1]) == 3
        assert [(b.brand, n) for b, n in store.brand_ratings(["rare", "cobalt"])] == [
            ("Rare", brands["rare"])]
        patterns = Counter(r["extra"]["pattern"] for r in rows)
        assert store.values("pattern") == sorted(patterns.items(), key=lambda kv: (-kv[1], kv[0]))


@pytest.mark.parametrize("text", ["red dress", "acme shoes under 30", "striped navy"])
def test_words_searches_agree(catalogs: dict[str, Catalog], text: str) -> None:
    answers = [search_text(c, text, k=12) for c in catalogs.values()]
    a, b = ([(r.item.id, round(r.score, 5)) for r in t.results] for t in answers)
    assert a == b and len(a) == 12
    assert answers[0].understood() == answers[1].understood()


def test_perceptual_hashes_and_reposts_read_back_alike(
    catalogs: dict[str, Catalog],
    reference: tuple[list[dict[str, Any]], np.ndarray[Any, np.dtype[np.float32]]],
) -> None:
    rows, _ = reference
    hashed = [(i + 1, r["phash"]) for i, r in enumerate(rows) if r["phash"] is not None]
    for catalog in catalogs.values():
        rowids, hashes = catalog.store.phashes_after(0)
        assert list(zip(rowids.tolist(), hashes.tolist(), strict=True)) == hashed
        assert [r for r, _ in catalog.store.unhashed(0, 20)] == [
            i + 1 for i, r in enumerate(rows) if r["phash"] is None][:20]
        assert catalog.store.ids_of([1, 2, 10**9]) == {1: "item-00000", 2: "item-00001"}
        assert [i.duplicate_of for i in catalog.store.list(Filters(include_sold=True),
                                                           limit=N)] == [
            r["duplicate_of"] for r in rows]


def test_attribute_values_and_steering_directions_agree(catalogs: dict[str, Catalog]) -> None:
    lite, pg = catalogs["sqlite"], catalogs["postgresql"]
    for name in ("category", "colour"):
        assert lite.store.attribute_values(name) == pg.store.attribute_values(name)
    a, b = compute_directions(lite), compute_directions(pg)
    assert a.names() == b.names() and a.counts == b.counts and "category:Coat" in a.names()
    for name in a.names():
        assert np.allclose(a.directions[name], b.directions[name], atol=1e-6)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2031, 5, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def users_transcript(catalog: Catalog) -> list[Any]:
    """One scenario of accounts, guests, swipes, the feed and expiry; what each step shows."""
    clock = Clock()
    users = Users(catalog.store, lifetimes=Lifetimes(guest_ttl=timedelta(days=1)), clock=clock)
    feed = Feed(catalog, users)
    out: list[Any] = []
    guest, guest_token = users.create_guest()
    cards = [r.item.id for r in feed.next(guest, 6)]
    out.append(("cold start", cards))
    for i, item_id in enumerate(cards):
        feed.swipe(guest, item_id, liked=i % 3 != 1)
    out.append(("after likes", [r.item.id for r in feed.next(guest, 6)]))
    account, _ = users.register("Zoë_fan".replace("ë", "e"), "a long password", guest_token)
    out.append(("became", account.id == guest.id, account.username, account.is_guest))
    out.append(("swipes", [(s.item_id, s.liked) for s in users.swipes(account)]))
    out.append(("likes", [i.id for i in feed.likes(account)]))
    out.append(("shown", sorted(users.shown(account))))
    pref = users.preference(account)
    out.append(("preference", None if pref is None else np.round(pref, 5).tolist()))
    out.append(("login other case", users.login("ZOE_FAN", "a long password") is not None))
    idle, _ = users.create_guest()
    feed.swipe(idle, "item-00001", liked=True)
    clock.now += timedelta(days=2)
    out.append(("expired", users.expire(), users.get(idle.id), users.counts()))
    return out


def test_users_swipes_and_the_feed_behave_the_same(catalogs: dict[str, Catalog]) -> None:
    a, b = (users_transcript(c) for c in catalogs.values())
    assert a == b
    assert a[2] == ("became", True, "Zoe_fan", False)
    assert len(a[0][1]) == 6 and not set(a[0][1]) & set(a[1][1])  # never shown twice
    assert a[4][1] == [item for item, liked in reversed(a[3][1]) if liked]


# -- writes by another process, on either database ------------------------------------------------

CHILD = r"""
import json, os, sys
from pathlib import Path
from lookalike import Catalog, ItemIn, Settings
from PIL import Image
from imagefactory import png

spec = json.loads(sys.argv[1])
settings = Settings(catalog_dir=spec["folder"], database_url=spec["url"], model="fake",
                    auto_tag=False)
catalog = Catalog.open(settings, create=False)
if spec["action"] == "write":
    for i, item_id in enumerate(spec["add"]):
        path = Path(spec["folder"]) / f"{item_id}.png"
        catalog.add_item(ItemIn(id=item_id, image=path.name, category="Hat"),
                         png(Image.new("RGB", (48, 64), (40 + 150 * i, 230, 10))), path)
    for item_id in spec["delete"]:
        catalog.delete_item(item_id)
elif spec["action"] == "die-mid-write":
    with catalog.store.transaction() as conn:
        conn.execute("UPDATE items SET title = 'half-written' WHERE id = ?", (spec["id"],))
        conn.execute("DELETE FROM embeddings")
        os._exit(7)  # killed before the commit
"""


def run_child(spec: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tests.parent / "src"), str(tests), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def small(tmp_path: Path, database_url: str | None) -> Iterator[Catalog]:
    """40 generated photos ingested with the fake encoder, on the test's database."""
    images, meta, _ = make_dataset(tmp_path / "data")
    settings = settings_for(tmp_path / "cat", database_url, model="fake", auto_tag=False)
    with Catalog.open(settings, taggers=default_taggers) as catalog:
        catalog.ingest(images, meta)
        yield catalog


def test_adds_and_deletes_by_another_process_are_seen(small: Catalog) -> None:
    settings = small.settings
    before = small.search_vector(small.vector_of("item-0003"), k=3)
    assert before[0].item.id == "item-0003"
    spec = {"folder": str(settings.catalog_dir), "url": settings.database_url, "action": "write",
            "add": ["new-1", "new-2"], "delete": ["item-0003", "item-0004"]}
    done = run_child(spec)
    assert done.returncode == 0, done.stderr
    assert small.refresh()
    assert len(small) == 40
    for item_id in ("new-1", "new-2"):
        hit = small.search_vector(small.vector_of(item_id), k=1)
        assert hit[0].item.id == item_id and hit[0].item.category == "Hat"
    ids = {r.item.id for r in small.search_vector(small.vector_of("item-0007"), k=40)}
    assert "item-0003" not in ids and "item-0004" not in ids and "new-1" in ids
    assert [i.id for i in small.items(Filters(category=["hat"]))] == ["new-1", "new-2"]


def test_a_writer_killed_mid_transaction_changes_nothing(small: Catalog) -> None:
    settings = small.settings
    version = small.store.vectors_version()
    spec = {"folder": str(settings.catalog_dir), "url": settings.database_url,
            "action": "die-mid-write", "id": "item-0001"}
    assert run_child(spec).returncode == 7
    assert small.store.vectors_version() == version and not small.refresh()
    assert small.get("item-0001").title != "half-written"
    assert len(small.store.vector_rowids()) == 40
    small.delete_item("item-0002")  # the write lock was released with the dead process
    assert small.store.count() == 39


def test_a_field_written_to_the_database_reaches_the_vector_store(small: Catalog) -> None:
    """A filterable field written straight to the database (a tagger, another tool) reaches
    the vector store through the change log's fields trigger, numbered on from the last
    change; writing the same value again logs nothing."""
    hats = Filters(category=["hat"])
    query = small.vector_of("item-0005")
    assert "item-0005" not in {r.item.id for r in small.search_vector(query, 5, hats)}
    seq = small.store.change_seq()
    assert seq > 0
    small.store.update("item-0005", ItemUpdate(category="Hat"))
    assert small.store.change_seq() == seq + 1
    assert small.refresh()
    assert [r.item.id for r in small.search_vector(query, 5, hats)] == ["item-0005"]
    small.store.update("item-0005", ItemUpdate(category="Hat", title="same fields"))
    assert small.store.change_seq() == seq + 1


def test_two_catalogs_on_one_database_see_each_others_writes(small: Catalog,
                                                             tmp_path: Path) -> None:
    other = Catalog.open(small.settings, create=False, taggers=default_taggers)
    try:
        added = other.add_item(ItemIn(id="from-other", image="o.png", brand="Zeta"),
                               png(Image.new("RGB", (48, 64), (250, 120, 250))),
                               tmp_path / "o.png")
        assert small.get("from-other").rowid == added.rowid
        assert small.search_vector(other.vector_of("from-other"), k=1)[0].item.id == "from-other"
        users_a, users_b = Users(small.store), Users(other.store)
        user, token = users_a.create_guest()
        users_a.record_swipe(user, "item-0005", True)
        assert users_b.by_token(token) == user
        assert [s.item_id for s in users_b.swipes(user)] == ["item-0005"]
        small.delete_item("from-other")
        other.refresh()
        assert "from-other" not in {r.item.id for r in other.search_vector(
            small.vector_of("item-0001"), k=41)}
    finally:
        other.close()


# -- PostgreSQL only: server restarts, unreachable servers, schemas --------------------------------


def test_a_server_restart_keeps_the_catalog_and_a_served_catalog_carries_on(
    tmp_path: Path,
) -> None:
    server = PostgresServer()
    try:
        server.start()
    except Exception as exc:  # the same rule as the postgres_server fixture
        if os.environ.get("LOOKALIKE_REQUIRE_SERVERS") == "1":
            raise
        pytest.skip(f"server not available: {exc}")
    try:
        images, meta, _ = make_dataset(tmp_path / "data", n=20)
        settings = settings_for(tmp_path / "cat", server.url, model="fake", auto_tag=False)
        catalog = Catalog.open(settings, taggers=default_taggers)
        catalog.ingest(images, meta)
        users = Users(catalog.store)
        user, token = users.register("restart", "a long password")
        users.record_swipe(user, "item-0002", True)
        top = [r.item.id for r in catalog.search_vector(catalog.vector_of("item-0009"), k=5)]
        client = TestClient(create_app(settings, catalog))
        assert client.get("/items").status_code == 200
        server.stop(keep_data=True)
        down = client.get("/items")  # the server is away: 503, and the log says why
        assert down.status_code == 503 and down.headers["retry-after"] == "5"
        assert "database is unavailable" in down.json()["detail"]
        server.start()
        assert client.get("/items").status_code == 200
        server.restart()
        # the same objects carry on: the lost connection is opened again
        assert [r.item.id for r in catalog.search_vector(catalog.vector_of("item-0009"),
                                                         k=5)] == top
        assert users.by_token(token) == user
        catalog.delete_item("item-0019")
        catalog.close()
        with Catalog.open(settings, create=False, taggers=default_taggers) as again:
            assert again.store.count() == 19 and len(again) == 19
            assert [s.item_id for s in Users(again.store).swipes(user)] == ["item-0002"]
            assert [r.item.id for r in again.search_vector(again.vector_of("item-0009"),
                                                           k=5)] == top
    finally:
        server.stop()


def test_an_unreachable_server_is_one_line_naming_it_without_the_password(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"postgresql://shop:s3cret-pw@127.0.0.1:{port}/shop"
    with pytest.raises(DatabaseUnavailableError) as caught:
        Catalog.open(settings_for(tmp_path, url, model="fake"), taggers=default_taggers)
    message = str(caught.value)
    assert "\n" not in message and "s3cret-pw" not in message
    assert f"postgresql://shop:***@127.0.0.1:{port}/shop" in message
    assert "unreachable or refused" in message


def test_a_refusing_server_and_a_missing_catalog_are_clear(
    postgres_server: PostgresServer, tmp_path: Path,
) -> None:
    wrong_db = postgres_server.url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(DatabaseUnavailableError, match=r"no_such_database.*does not exist"):
        Catalog.open(settings_for(tmp_path, wrong_db, model="fake"), taggers=default_taggers)
    url, schema = new_schema_url(postgres_server.url)
    with pytest.raises(CatalogNotFoundError, match=f"schema {schema}"):
        Catalog.open(settings_for(tmp_path / "none", url), create=False, taggers=default_taggers)


def test_catalogs_are_schemas_named_after_their_folder(
    postgres_server: PostgresServer, tmp_path: Path,
) -> None:
    import psycopg

    shops = []
    for name in ("Shop-A", "shop b"):
        settings = settings_for(tmp_path / name, postgres_server.url, model="fake")
        with Catalog.open(settings, taggers=default_taggers) as catalog:
            catalog.store.set_meta("shop", name)
            shops.append(catalog.store.location)
    try:
        assert shops[0].endswith("(schema lookalike_shop_a)")
        assert shops[1].endswith("(schema lookalike_shop_b)")
        for name in ("Shop-A", "shop b"):  # the same folder name elsewhere: the same catalog
            settings = settings_for(tmp_path / "elsewhere" / name, postgres_server.url)
            with Catalog.open(settings, create=False, taggers=default_taggers) as catalog:
                assert catalog.store.get_meta("shop") == name
        with psycopg.connect(postgres_server.url) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "'lookalike_shop_a' ORDER BY 1").fetchall()
        assert ("items",) in tables and ("embeddings",) in tables and ("meta",) in tables
    finally:
        for schema in ("lookalike_shop_a", "lookalike_shop_b"):
            drop_schema(postgres_server.url, schema)


def test_a_user_without_create_rights_uses_a_schema_made_for_it(
    postgres_server: PostgresServer, tmp_path: Path,
) -> None:
    import psycopg

    role, schema = f"shop_{os.getpid()}", f"made_for_{os.getpid()}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
    base = postgres_server.url.replace(f"{PostgresServer.user}@", f"{role}@")
    try:
        with Catalog.open(settings_for(tmp_path / "a", f"{base}?schema={schema}",
                                       model="fake"), taggers=default_taggers) as catalog:
            assert catalog.store.count() == 0
            Users(catalog.store).create_guest()
        with pytest.raises(LookalikeError, match=r"cannot open the catalog: permission denied"):
            Catalog.open(settings_for(tmp_path / "b", f"{base}?schema=not_made_yet",
                                      model="fake"), taggers=default_taggers)
    finally:
        drop_schema(postgres_server.url, schema)
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_a_catalog_made_before_the_shop_columns_is_migrated_on_opening(
    tmp_path: Path, database_url: str | None,
) -> None:
    """An older catalog (its shop columns, indexes and version dropped, as code before issue 21
    made it) gains them when opened, brands normalised and prices converted, on either
    database; a second store opening it finds it migrated and changes nothing."""
    folder = tmp_path / "old"
    store = open_store(settings_for(folder, database_url))
    store.bind_model("fake", DIM)
    rows = make_rows(12)
    store.add([new_item(r) for r in rows], vectors(12))
    with store.transaction() as conn:
        # (the vector change log's fields trigger names those columns; older code had none)
        on = " ON items" if store.dialect.name == "postgresql" else ""
        conn.execute(f"DROP TRIGGER log_fields_changed{on}")
        for index in ("items_state", "items_brand_key", "items_price_base", "items_unhashed"):
            conn.execute(f"DROP INDEX {index}")
        for column in ("state", "rating", "reviews", "brand_key", "price_base", "brand_overall",
                       "brand_people", "brand_planet", "brand_animals", "phash", "duplicate_of"):
            conn.execute(f"ALTER TABLE items DROP COLUMN {column}")
        conn.execute("DELETE FROM meta WHERE key = 'price_base_currency'")
        store.dialect.set_schema_version(conn, 0)
    with store.connection() as conn:
        assert "brand_key" not in store.dialect.columns(conn, "items")
    store.close()
    first, second = (open_store(settings_for(folder, database_url)) for _ in range(2))
    for s in (first, second):
        with s.connection() as conn:
            assert s.dialect.schema_version(conn) == SCHEMA_VERSION
            assert {"state", "brand_key", "price_base", "phash", "duplicate_of"} <= \
                s.dialect.columns(conn, "items")
        items = s.list(limit=20)
        assert [i.state for i in items] == ["available"] * 12
        assert [i.base_price for i in items] == [
            r["price"] if (r["currency"] or "EUR") == "EUR" else None for r in rows]
    assert first.set_brand_ratings(RATINGS) == sum(brand_overall(r) is not None for r in rows)
    assert second.count(Filters(brand=["acme ltd."])) == sum(
        normalise_brand(r["brand"] or "") == "acme" for r in rows)
    first.close()
    second.close()


def test_numbered_rows_follow_the_commits_without_gaps(
    tmp_path: Path, database_url: str | None,
) -> None:
    """A change log's numbering (`Dialect.numbered`): as SQLite's AUTOINCREMENT on both —
    never reused after a trim, none used by a rollback — and, with two writers, given in
    commit order (a reader that saw number n never misses a row committed later)."""
    settings = settings_for(tmp_path / "cat", database_url)
    first, second = open_store(settings), open_store(settings)
    with first.connection() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                     "what TEXT NOT NULL)")
        first.dialect.numbered(conn, "log", "seq")

    def rows(store: CatalogStore) -> list[tuple[int, str]]:
        with store.connection() as conn:
            return [(int(r[0]), str(r[1]))
                    for r in conn.execute("SELECT seq, what FROM log ORDER BY seq")]

    def last(store: CatalogStore) -> int:
        with store.connection() as conn:
            return store.dialect.last_number(conn, "log")

    with first.transaction() as conn:
        conn.executemany("INSERT INTO log (what) VALUES (?)", [("a",), ("b",), ("c",)])
    with pytest.raises(RuntimeError), first.transaction() as conn:
        conn.execute("INSERT INTO log (what) VALUES ('rolled back')")
        raise RuntimeError
    assert rows(second) == [(1, "a"), (2, "b"), (3, "c")] and last(second) == 3
    with first.connection() as conn:
        conn.execute("DELETE FROM log WHERE seq <= ?", (3,))
    with second.connection() as conn:
        conn.execute("INSERT INTO log (what) VALUES ('d')")
    assert rows(first) == [(4, "d")] and last(first) == 4

    done = threading.Event()

    def autocommit_insert() -> None:
        with first.connection() as conn:
            conn.execute("INSERT INTO log (what) VALUES ('later')")
        done.set()

    with second.transaction() as conn:
        conn.execute("INSERT INTO log (what) VALUES ('earlier')")
        writer = threading.Thread(target=autocommit_insert)
        writer.start()
        assert not done.wait(0.5)  # waits for the open transaction
    writer.join(30)
    assert done.is_set()
    assert rows(first) == [(4, "d"), (5, "earlier"), (6, "later")] and last(second) == 6
    first.close()
    second.close()


def test_added_items_carry_their_derived_columns(tmp_path: Path, database_url: str | None
                                                  ) -> None:
    """Items added once brand ratings and rates exist get their converted price and brand
    ratings in the insert itself (`CatalogStore._derived`): exactly what recomputing every
    item's derived columns (`_refresh`) gives, and the reference's."""
    store = open_store(settings_for(tmp_path / "cat", database_url))
    store.bind_model("fake", DIM)
    store.set_brand_ratings(RATINGS)
    store.set_rates([Rate(currency=c, rate=r, date="2031-01-02") for c, r in RATES.items()],
                    "EUR")
    rows, vecs = make_rows(600), vectors(600)
    for start in range(0, len(rows), 64):
        store.add([new_item(r) for r in rows[start:start + 64]], vecs[start:start + 64])

    def derived() -> list[tuple[Any, ...]]:
        with store.connection() as conn:
            return [tuple(r) for r in conn.execute(
                "SELECT price_base, brand_overall, brand_people, brand_planet, brand_animals "
                "FROM items ORDER BY rowid")]

    added = derived()
    assert [a[0] for a in added] == [price_base(r) for r in rows]
    assert [a[1] for a in added] == [brand_overall(r) for r in rows]
    assert any(a[2] is not None for a in added) and any(a[3] is not None for a in added)
    with store.transaction() as conn:
        store._refresh(conn)
    assert derived() == added
    store.close()
