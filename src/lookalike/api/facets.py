"""Values present in the catalog (categories, colours, brands, price range) for filter menus.

A read-only query over the catalog's SQLite; given values win over predicted ones, as in
`Filters` (`CatalogStore.values`, which the CLI's "no item has category ..." notes use too).
"""

from __future__ import annotations

from lookalike.api.schemas import Facet, Facets
from lookalike.catalog import Catalog


def facets(catalog: Catalog, limit: int = 60) -> Facets:
    values: dict[str, list[Facet]] = {}
    for name in ("category", "colour", "brand"):
        values[name] = sorted(
            (Facet(value=v, count=n) for v, n in catalog.store.values(name, limit)),
            key=lambda f: f.value.lower(),
        )
    with catalog.store.connection() as conn:
        lo, hi = conn.execute("SELECT min(price), max(price) FROM items").fetchone()
    return Facets(
        category=values["category"],
        colour=values["colour"],
        brand=values["brand"],
        price_min=lo,
        price_max=hi,
    )
