"""`CatalogStore.add` writes each item's derived columns (price in the base currency, brand
ratings) as a full refresh of every item would: refreshing only the items with a price or a
brand (the others' are NULL as inserted) changes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from lookalike.catalog.brands import BrandRating
from lookalike.catalog.rates import Rate
from lookalike.catalog.schema import ItemIn
from lookalike.catalog.store import CatalogStore, NewItem

_DERIVED = ("SELECT id, price_base, brand_overall, brand_people, brand_planet, brand_animals, "
            "sizes, extra, predicted FROM items ORDER BY id")


def test_added_items_have_the_derived_columns_a_full_refresh_gives(tmp_path: Path) -> None:
    store = CatalogStore(tmp_path / "catalog.db")
    try:
        store.bind_model("fake", 4)
        day = dt.date(2024, 5, 2)
        store.set_rates([Rate(currency="EUR", rate=1, date=day),
                         Rate(currency="USD", rate=1.25, date=day)], "EUR")
        store.set_brand_ratings([BrandRating(brand="Acme", overall=4, people=3, source="T")])
        rows = [
            {"id": "plain", "image": "a.jpg"},
            {"id": "usd", "image": "b.jpg", "price": "5", "currency": "USD"},
            {"id": "eur", "image": "c.jpg", "price": "7"},
            {"id": "no-rate", "image": "d.jpg", "price": "7", "currency": "JPY"},
            {"id": "rated", "image": "e.jpg", "brand": "ACME GmbH"},
            {"id": "unrated", "image": "f.jpg", "brand": "Other", "sizes": "S;M",
             "usage": "casual"},
        ]
        items = [ItemIn.model_validate(row) for row in rows]
        new = [NewItem(str(i.id), i, i.image, f"{n:064x}") for n, i in enumerate(items)]
        store.add(new, np.eye(len(new), 4, dtype=np.float32))
        with store.connection() as conn:
            added = [tuple(r) for r in conn.execute(_DERIVED)]
        with store.transaction() as conn:
            store._refresh(conn)  # every item, as importing rates does
        with store.connection() as conn:
            refreshed = [tuple(r) for r in conn.execute(_DERIVED)]
    finally:
        store.close()
    assert added == refreshed
    by_id = {row[0]: row for row in added}
    assert by_id["usd"][1] == 4.0 and by_id["eur"][1] == 7.0 and by_id["no-rate"][1] is None
    assert by_id["rated"][2:4] == (4.0, 3.0) and by_id["unrated"][2] is None
    assert by_id["plain"][1:] == (None, None, None, None, None, "[]", "{}", "{}")
    assert by_id["unrated"][6:8] == ('["S", "M"]', '{"usage": "casual"}')
