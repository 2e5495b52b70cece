"""Values present in the catalog (categories, colours, brands with their ratings, sizes,
currencies, price range in the base currency) for filter menus.

A read-only query over the catalog's SQLite; given values win over predicted ones, as in
`Filters` (`CatalogStore.values`, which the CLI's "no item has category ..." notes use too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lookalike.api.schemas import BrandFacet, Facet, Facets
from lookalike.catalog import Catalog
from lookalike.catalog.brands import normalise_brand

_LETTER_SIZES = ("XXXS", "XXS", "XS", "S", "M", "L", "XL", "XXL", "XXXL")


def _by_value(facets: list[Facet]) -> list[Facet]:
    return sorted(facets, key=lambda f: f.value.lower())


def _size_order(size: str) -> tuple[int, float, str]:
    """Letter sizes small to large, then numbers, then the rest alphabetically."""
    upper = size.upper()
    if upper in _LETTER_SIZES:
        return 0, _LETTER_SIZES.index(upper), ""
    try:
        return 1, float(size.replace(",", ".")), ""
    except ValueError:
        return 2, 0.0, size.lower()


def facets(catalog: Catalog, limit: int = 60) -> Facets:
    store = catalog.store
    values = {
        name: _by_value([Facet(value=v, count=n) for v, n in store.values(name, limit)])
        for name in ("category", "colour", "currency")
    }
    present = store.values("brand", limit)
    ratings = {r.key: r for r, _ in store.brand_ratings([normalise_brand(v) for v, _ in present])}
    brands = [
        BrandFacet(value=v, count=n, rating=ratings.get(normalise_brand(v))) for v, n in present
    ]
    sizes = sorted((Facet(value=v, count=n) for v, n in store.values("size", limit)),
                   key=lambda f: _size_order(f.value))
    lo, hi = store.base_price_range()
    return Facets(
        category=values["category"],
        colour=values["colour"],
        brand=sorted(brands, key=lambda f: f.value.lower()),
        size=sizes,
        currency=values["currency"],
        base_currency=store.base_currency,
        price_min=lo,
        price_max=hi,
    )


class FacetCache:
    """`facets(catalog)` at most once per `max_age` seconds and catalog version: every view of
    the search page needs them, and each computation scans the items table three times. A
    metadata change shows in the menus within `max_age`; an added or deleted item at once, and
    so do brand ratings and exchange rates imported through the API (`forget`)."""

    def __init__(self, max_age: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._cached: tuple[int, float, Facets] | None = None
        self._lock = threading.Lock()

    def get(self, catalog: Catalog) -> Facets:
        version = catalog.store.vectors_version()
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] == version \
                    and self.clock() - cached[1] < self.max_age:
                return cached[2]
            fresh = facets(catalog)
            self._cached = (version, self.clock(), fresh)
            return fresh

    def forget(self) -> None:
        """Compute the facets afresh at the next `get` (after an import changed them)."""
        with self._lock:
            self._cached = None
