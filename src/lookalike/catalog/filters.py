"""Search filters and the SQL that selects the items they keep.

Filters are applied *before* ranking (pre-filtering), so a filter that keeps 1% of the catalog
still returns k results when k exist.

Sold items are left out unless a filter asks for them (`include_sold`, or `state` naming
"sold"). Prices compare in the base currency (`price_base`, kept by the store from the rates
table): an item whose currency has no exchange rate passes no price filter. Brands compare by
their normalised name (`lookalike.catalog.brands.normalise_brand`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lookalike.catalog.brands import ASPECTS, normalise_brand
from lookalike.catalog.schema import ItemState
from lookalike.colour_names import colour_sql, colour_variants
from lookalike.errors import FilterError
from lookalike.validation import plain_errors

#: Filters that keep items having any of several values, compared case-insensitively.
LIST_FIELDS = ("category", "brand", "colour", "size")
#: Every filter given as a list (CLI `field=a,b` expressions are split).
_LISTS = (*LIST_FIELDS, "currency", "state")

#: SQL of the value the `category`, `brand` and `colour` filters compare with: the given value,
#: else the predicted tag. (`size` compares with each of an item's sizes, `json_each(sizes)`.)
VALUE_SQL = {
    "category": "coalesce(category, json_extract(predicted, '$.category.value'))",
    "brand": "brand",
    "colour": "coalesce(colour, json_extract(predicted, '$.colour.value'))",
}

#: What an attribute name may look like (it is written into SQL JSON paths, so no quotes).
ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
#: Attributes that are item columns; every other attribute lives in the item's `extra`.
_COLUMN_ATTRIBUTES = frozenset({"category", "department", "colour", "brand", "source"})
MAX_ATTRIBUTES = 20
MAX_VALUES = 100


def given_sql(name: str) -> str:
    """SQL of the value an item gives for attribute `name`: its column (category, department,
    colour, brand, source) or its `extra` field of that name (pattern, usage, gender...)."""
    if not ATTRIBUTE_NAME.fullmatch(name):
        raise FilterError(f"attribute {name!r}: a name is a letter then letters, digits or _")
    return name if name in _COLUMN_ATTRIBUTES else f"json_extract(extra, '$.{name}')"


def attribute_sql(name: str) -> str:
    """SQL of an item's attribute `name` as filters, facets and directions see it: the given
    value (`given_sql`), else the predicted tag."""
    return f"coalesce({given_sql(name)}, json_extract(predicted, '$.{name}.value'))"


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
    min_sustainability: float | None = Field(None, ge=0, le=5,
                                             description="the item's own rating, 0 to 5")
    currency: list[str] = Field(default_factory=list,
                                description="priced in any of these currencies (ISO codes)")
    min_brand_rating: float | None = Field(None, ge=0, le=5,
                                           description="the brand's overall rating, 0 to 5")
    min_brand_people: float | None = Field(None, ge=0, le=5)
    min_brand_planet: float | None = Field(None, ge=0, le=5)
    min_brand_animals: float | None = Field(None, ge=0, le=5)
    min_rating: float | None = Field(None, ge=0, le=5, description="shoppers' rating, 0 to 5")
    state: list[ItemState] = Field(default_factory=list,
                                   description="any of these states (available, reserved, sold)")
    include_sold: bool = Field(False, description="keep sold items (left out by default)")
    attributes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Any other labelled attribute (given in `extra`, else predicted by a "
        'tagger): {"usage": ["Formal"], "pattern": ["striped", "checked"]}.',
    )

    @field_validator("currency", mode="after")
    @classmethod
    def _currencies(cls, value: list[str]) -> list[str]:
        out = [v.strip().upper() for v in value]
        bad = [v for v in out if len(v) != 3 or not v.isalpha()]
        if bad:
            raise ValueError(f"currency {bad[0]!r} is not an ISO 4217 code like EUR")
        return out

    @field_validator("state", mode="before")
    @classmethod
    def _states(cls, value: Any) -> Any:
        return [v.strip().lower() if isinstance(v, str) else v for v in value] if isinstance(
            value, list) else value

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
        out = {}
        for name, values in value.items():
            if not ATTRIBUTE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an attribute name (a letter, then letters, "
                                 "digits or _)")
            if name in cls.model_fields:
                raise ValueError(f"{name!r} is a filter of its own: use it, not attributes")
            if len(values) > MAX_VALUES:
                raise ValueError(f"{name}: at most {MAX_VALUES} values")
            kept = [v.strip() for v in values if v.strip()]
            if kept:
                out[name] = kept
        return out

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
        """No filter was asked for (sold items are still left out unless `include_sold`)."""
        empty = Filters().model_dump(exclude={"include_sold"})
        return self.model_dump(exclude={"include_sold"}) == empty

    def hides_sold(self) -> bool:
        return not self.include_sold and "sold" not in self.state

    @classmethod
    def parse(cls, expressions: list[str], attributes: Collection[str] = ()) -> Filters:
        """Parse CLI-style `field=value` expressions (lists comma-separated).

        `category=Dress,Skirt`, `price_max=50`, `second_hand=true`...; a name in `attributes`
        (e.g. `Settings.tag_attributes`) filters on that attribute: `usage=Formal`.
        """
        data: dict[str, Any] = {}
        fields = [f for f in cls.model_fields if f != "attributes"]
        for expr in expressions:
            key, sep, value = expr.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not key:
                raise FilterError(f"filter {expr!r}: expected field=value")
            if key not in fields and key in attributes:
                data.setdefault("attributes", {}).setdefault(key, []).extend(
                    v.strip() for v in value.split(",") if v.strip()
                )
                continue
            if key not in fields:
                known = [*fields, *(a for a in attributes if a not in fields)]
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise FilterError(
                    f"filter {expr!r}: unknown field {key!r}; {hint}"
                    f"known: {', '.join(known)}"
                )
            if key in _LISTS:
                data.setdefault(key, []).extend(v.strip() for v in value.split(",") if v.strip())
            else:
                data[key] = value.strip()
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise FilterError(f"bad filter: {plain_errors(exc.errors())}") from None

    def to_sql(self, base_currency: str = "EUR") -> tuple[str, list[Any]]:
        """A WHERE clause (without the keyword) over the `items` table, and its parameters.
        `base_currency` is the currency an item without one is priced in."""
        clauses: list[str] = []
        params: list[Any] = []

        def any_of(column: str, values: list[str]) -> None:
            marks = ",".join("?" * len(values))
            clauses.append(f"lower({column}) IN ({marks})")
            params.extend(v.lower() for v in values)

        if self.category:
            any_of(VALUE_SQL["category"], self.category)
        if self.brand:
            marks = ",".join("?" * len(self.brand))
            clauses.append(f"brand_key IN ({marks})")
            params.extend(normalise_brand(v) for v in self.brand)
        if self.colour:  # by canonical colour name: `navy blue` finds `navy` items
            wanted = list(dict.fromkeys(v for c in self.colour for v in colour_variants(c)))
            any_of(colour_sql(VALUE_SQL["colour"]), wanted)
        if self.size:
            marks = ",".join("?" * len(self.size))
            clauses.append(
                f"EXISTS (SELECT 1 FROM json_each(items.sizes) s WHERE lower(s.value) IN ({marks}))"
            )
            params.extend(v.lower() for v in self.size)
        if self.price_min is not None:
            clauses.append("price_base >= ?")
            params.append(self.price_min)
        if self.price_max is not None:
            clauses.append("price_base <= ?")
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
        if self.currency:
            marks = ",".join("?" * len(self.currency))
            clauses.append(f"coalesce(currency, ?) IN ({marks})")
            params.extend([base_currency.upper(), *self.currency])
        for aspect in ("overall", *ASPECTS):
            name = "min_brand_rating" if aspect == "overall" else f"min_brand_{aspect}"
            bound = getattr(self, name)
            if bound is not None:
                clauses.append(f"brand_{aspect} >= ?")
                params.append(bound)
        if self.min_rating is not None:
            clauses.append("rating >= ?")
            params.append(self.min_rating)
        if self.state:
            marks = ",".join("?" * len(self.state))
            clauses.append(f"state IN ({marks})")
            params.extend(self.state)
        elif self.hides_sold():
            clauses.append("state != 'sold'")
        for name, values in self.attributes.items():
            any_of(attribute_sql(name), values)
        return (" AND ".join(clauses) or "1"), params
