"""Values present in the catalog (categories, colours, brands, price range) for filter menus.

A read-only query over the catalog's SQLite; given values win over predicted ones, as in
`Filters` (`CatalogStore.values`, which the CLI's "no item has category ..." notes use too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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


class FacetCache:
    """`facets(catalog)` at most once per `max_age` seconds and catalog version: every view of
    the search page needs them, and each computation scans the items table three times. A
    metadata change shows in the menus within `max_age`; an added or deleted item at once."""

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
