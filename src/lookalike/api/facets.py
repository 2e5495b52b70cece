"""Values present in the catalog (categories, colours, brands, price range) for filter menus.

A read-only query over the catalog's SQLite; given values win over predicted ones, as in
`Filters`. (Candidate to move into `lookalike.catalog` once another caller needs it.)
"""

from __future__ import annotations

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
