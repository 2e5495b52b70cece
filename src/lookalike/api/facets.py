"""Values present in the catalog (categories, colours, brands, price range) for filter menus.

A read-only query over the catalog's SQLite; given values win over predicted ones, as in
`Filters`. (Candidate to move into `lookalike.catalog` once another caller needs it.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lookalike.api.schemas import Facet, Facets
from lookalike.catalog import Catalog

_EFFECTIVE = {
    "category": "coalesce(category, json_extract(predicted, '$.category.value'))",
    "colour": "coalesce(colour, json_extract(predicted, '$.colour.value'))",
    "brand": "brand",
}


def facets(catalog: Catalog, limit: int = 60) -> Facets:
    values: dict[str, list[Facet]] = {}
    with catalog.store.connection() as conn:
        for name, expr in _EFFECTIVE.items():
            rows = conn.execute(
                f"SELECT {expr} AS v, count(*) AS n FROM items WHERE v IS NOT NULL AND v != '' "
                "GROUP BY v ORDER BY n DESC, v LIMIT ?",
                (limit,),
            ).fetchall()
            values[name] = sorted((Facet(value=str(v), count=int(n)) for v, n in rows),
                                  key=lambda f: f.value.lower())
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
