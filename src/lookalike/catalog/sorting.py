"""Orders of results besides relevance: price (either way), sustainability, brand rating,
shoppers' rating, newest. One table says what each sorts by, for the store's SQL (browsing)
and for sorting a search's look-alikes in Python alike.

* `price_asc` / `price_desc`: the price in the base currency (`price_base`);
* `sustainability`: the item's own sustainability (0–5), highest first — not its brand's;
* `brand_rating`: the brand's overall rating (0–5), highest first;
* `rating`: shoppers' rating, highest first, then more reviews first;
* `newest`: latest added to the catalog first.

Items without the value (no price, no exchange rate, an unrated brand...) come last, in their
relevance order (search) or catalog order (browsing). `relevance` is the default: a search's
ranking, the catalog's order when browsing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["SORTS", "Sort", "SortKey", "order_by", "sort_positions"]

Sort = Literal[
    "relevance", "price_asc", "price_desc", "sustainability", "brand_rating", "rating", "newest"
]


@dataclass(frozen=True)
class SortKey:
    """One SQL expression over the `items` table (a number) and its direction."""

    sql: str
    descending: bool


SORTS: dict[str, tuple[SortKey, ...]] = {
    "relevance": (),
    "price_asc": (SortKey("price_base", False),),
    "price_desc": (SortKey("price_base", True),),
    "sustainability": (SortKey("sustainability", True),),
    "brand_rating": (SortKey("brand_overall", True),),
    "rating": (SortKey("rating", True), SortKey("reviews", True)),
    "newest": (SortKey("julianday(created_at)", True),),
}


def order_by(sort: str) -> str:
    """The ORDER BY clause (without the keywords) of a sort when browsing: missing values
    last, then catalog order."""
    parts = []
    for key in SORTS[sort]:
        parts.append(f"({key.sql}) IS NULL")
        parts.append(f"{key.sql} {'DESC' if key.descending else 'ASC'}")
    return ", ".join([*parts, "items.rowid"])


def sort_positions(values: Sequence[tuple[float | None, ...]], sort: str) -> list[int]:
    """Positions of `values` (one tuple per item, a value per `SortKey`, in relevance order)
    in `sort`'s order: missing values last, ties kept in relevance order."""
    keys = SORTS[sort]

    def key(position: int) -> tuple[object, ...]:
        out: list[object] = []
        for value, spec in zip(values[position], keys, strict=True):
            missing = value is None
            number = 0.0 if value is None else float(value)
            out.extend((missing, -number if spec.descending else number))
        out.append(position)
        return tuple(out)

    return sorted(range(len(values)), key=key)
