"""Search filters and the SQL that selects the items they keep.

Filters are applied *before* ranking (pre-filtering), so a filter that keeps 1% of the catalog
still returns k results when k exist.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lookalike.errors import FilterError
from lookalike.validation import plain_errors

#: Filters that keep items having any of several values, compared case-insensitively.
LIST_FIELDS = ("category", "brand", "colour", "size")

#: SQL of the value the `category`, `brand` and `colour` filters compare with: the given value,
#: else the predicted tag. (`size` compares with each of an item's sizes, `json_each(sizes)`.)
VALUE_SQL = {
    "category": "coalesce(category, json_extract(predicted, '$.category.value'))",
    "brand": "brand",
    "colour": "coalesce(colour, json_extract(predicted, '$.colour.value'))",
}


class Filters(BaseModel):
    """Which items may be returned. Empty lists and None mean "no constraint"."""

    model_config = ConfigDict(extra="forbid")

    category: list[str] = Field(default_factory=list, description="any of these categories")
    brand: list[str] = Field(default_factory=list)
    colour: list[str] = Field(default_factory=list, description="given or predicted colour")
    size: list[str] = Field(default_factory=list, description="offered in any of these sizes")
    price_min: float | None = Field(None, ge=0)
    price_max: float | None = Field(None, ge=0)
    kids: bool | None = None
    second_hand: bool | None = None
    min_sustainability: float | None = Field(None, ge=0, le=5)

    @model_validator(mode="after")
    def _range(self) -> Filters:
        if (
            self.price_min is not None
            and self.price_max is not None
            and self.price_min > self.price_max
        ):
            raise ValueError(f"price_min {self.price_min:g} is above price_max {self.price_max:g}")
        return self

    def is_empty(self) -> bool:
        return self == Filters()

    @classmethod
    def parse(cls, expressions: list[str]) -> Filters:
        """Parse CLI-style `field=value` expressions (lists comma-separated).

        `category=Dress,Skirt`, `price_max=50`, `second_hand=true`...
        """
        data: dict[str, Any] = {}
        for expr in expressions:
            key, sep, value = expr.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not key:
                raise FilterError(f"filter {expr!r}: expected field=value")
            if key not in cls.model_fields:
                close = difflib.get_close_matches(key, list(cls.model_fields), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise FilterError(
                    f"filter {expr!r}: unknown field {key!r}; {hint}"
                    f"known: {', '.join(cls.model_fields)}"
                )
            if key in LIST_FIELDS:
                data.setdefault(key, []).extend(v.strip() for v in value.split(",") if v.strip())
            else:
                data[key] = value.strip()
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise FilterError(f"bad filter: {plain_errors(exc.errors())}") from None

    def to_sql(self) -> tuple[str, list[Any]]:
        """A WHERE clause (without the keyword) over the `items` table, and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []

        def any_of(column: str, values: list[str]) -> None:
            marks = ",".join("?" * len(values))
            clauses.append(f"lower({column}) IN ({marks})")
            params.extend(v.lower() for v in values)

        if self.category:
            any_of(VALUE_SQL["category"], self.category)
        if self.brand:
            any_of(VALUE_SQL["brand"], self.brand)
        if self.colour:
            any_of(VALUE_SQL["colour"], self.colour)
        if self.size:
            marks = ",".join("?" * len(self.size))
            clauses.append(
                f"EXISTS (SELECT 1 FROM json_each(items.sizes) s WHERE lower(s.value) IN ({marks}))"
            )
            params.extend(v.lower() for v in self.size)
        if self.price_min is not None:
            clauses.append("price >= ?")
            params.append(self.price_min)
        if self.price_max is not None:
            clauses.append("price <= ?")
            params.append(self.price_max)
        if self.kids is not None:
            clauses.append("kids = ?")
            params.append(int(self.kids))
        if self.second_hand is not None:
            clauses.append("second_hand = ?")
            params.append(int(self.second_hand))
        if self.min_sustainability is not None:
            clauses.append("sustainability >= ?")
            params.append(self.min_sustainability)
        return (" AND ".join(clauses) or "1"), params
