"""Item schema: what a catalog row may hold, validated with pydantic.

`ItemIn` is one row of a metadata file (CSV or JSONL) or an API request; `Item` is a stored item.
Unknown columns are kept in `extra`, never dropped.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}

#: Columns with a meaning of their own; every other column goes to `extra`.
KNOWN_FIELDS = (
    "id",
    "image",
    "title",
    "category",
    "department",
    "kids",
    "price",
    "currency",
    "brand",
    "sizes",
    "colour",
    "url",
    "sustainability",
    "second_hand",
    "source",
)


def parse_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


class ItemFields(BaseModel):
    """Descriptive fields shared by new, updated and stored items."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field("", max_length=500)
    category: str | None = Field(None, max_length=100)
    department: str | None = Field(None, max_length=100, description="e.g. women, men, unisex")
    kids: bool | None = None
    price: float | None = Field(None, ge=0, le=1e9)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    brand: str | None = Field(None, max_length=200)
    sizes: list[str] = Field(default_factory=list, max_length=100)
    colour: str | None = Field(None, max_length=50)
    url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")
    sustainability: float | None = Field(None, ge=0, le=5, description="0 (worst) to 5 (best)")
    second_hand: bool | None = None
    source: str | None = Field(None, max_length=200)
    extra: dict[str, Any] = Field(default_factory=dict)

    def gives(self, name: str) -> bool:
        """Whether the item gives attribute `name` itself (a field, or an extra field): a
        tagger's prediction never replaces a given value."""
        value = getattr(self, name, None) if name in ItemFields.model_fields else None
        if value is None or value == "" or value == []:
            value = self.extra.get(name)
        return value is not None and str(value).strip() != ""

    @field_validator("kids", "second_hand", mode="before")
    @classmethod
    def _bool(cls, value: Any) -> bool | None:
        return parse_bool(value)

    @field_validator("price", "sustainability", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                return None
        if value is not None:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("must be a finite number")
            return number
        return value

    @field_validator("sizes", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [s.strip() for s in value.replace(",", ";").split(";") if s.strip()]
        return value

    @field_validator("category", "department", "brand", "colour", "url", "source", "currency",
                     mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() == "":
            return None
        return value

    @field_validator("currency", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


class ItemIn(ItemFields):
    """One item to add: metadata plus the image file it shows."""

    id: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[\w.\-:]+$")
    image: str = Field(..., min_length=1, max_length=4096, description="image path")

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str) and value.strip() == "":
            return None
        return value

    @model_validator(mode="before")
    @classmethod
    def _collect_extra(cls, data: Any) -> Any:
        """Unknown columns go to `extra` (JSON text in a CSV cell stays text)."""
        if not isinstance(data, dict):
            return data
        known = {k: v for k, v in data.items() if k in KNOWN_FIELDS or k == "extra"}
        extra = dict(known.pop("extra", None) or {})
        if isinstance(extra, str):
            extra = json.loads(extra)
        for key, value in data.items():
            if key not in KNOWN_FIELDS and key != "extra" and value not in (None, ""):
                extra[str(key)] = value
        known["extra"] = extra
        return known


class ItemUpdate(BaseModel):
    """A partial change to an item's metadata; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=500)
    category: str | None = Field(None, max_length=100)
    department: str | None = None
    kids: bool | None = None
    price: float | None = Field(None, ge=0, le=1e9)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    brand: str | None = None
    sizes: list[str] | None = None
    colour: str | None = None
    url: str | None = Field(None, pattern=r"^https?://\S+$")
    sustainability: float | None = Field(None, ge=0, le=5)
    second_hand: bool | None = None
    source: str | None = None
    extra: dict[str, Any] | None = None


class Tag(BaseModel):
    """A predicted attribute value with the tagger's confidence."""

    value: str
    confidence: float = Field(ge=0, le=1)


class Item(ItemFields):
    """A stored catalog item."""

    model_config = ConfigDict(extra="forbid")

    id: str
    rowid: int
    image_path: str
    image_hash: str
    created_at: datetime
    updated_at: datetime
    predicted: dict[str, Tag] = Field(
        default_factory=dict, description="Attributes filled by taggers, with confidence."
    )

    def attribute(self, name: str) -> str | None:
        """A given value (a field, or an extra field such as `usage`), or else the predicted
        one."""
        given = getattr(self, name, None) if name in type(self).model_fields else None
        if given:
            return str(given)
        extra = self.extra.get(name)
        if extra is not None and str(extra).strip():
            return str(extra)
        tag = self.predicted.get(name)
        return tag.value if tag else None
