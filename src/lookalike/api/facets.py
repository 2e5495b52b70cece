"""Values present in the catalog (categories, colours, brands with their ratings, sizes,
currencies, price range in the base currency) for filter menus.

A read-only query over the catalog's SQLite; given values win over predicted ones, as in
`Filters` (`CatalogStore.values`, which the CLI's "no item has category ..." notes use too).
"""

from __future__ import annotations

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
