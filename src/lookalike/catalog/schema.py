"""Item schema: what a catalog row may hold, validated with pydantic.

`ItemIn` is one row of a metadata file (CSV or JSONL) or an API request; `Item` is a stored item.
Unknown columns are kept in `extra`, never dropped.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lookalike.catalog.brands import BrandRating
from lookalike.catalog.metadata import MAX_JSON_DEPTH, json_depth, loads_json, text_problem

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
    "state",
    "rating",
    "reviews",
)
_KNOWN_OR_EXTRA = frozenset((*KNOWN_FIELDS, "extra"))
#: Where a listing stands: sold items leave every search, browse and feed unless asked for.
ItemState = Literal["available", "reserved", "sold"]
STATES: tuple[str, ...] = get_args(ItemState)
#: Fields a tagger may fill when the catalog leaves them empty.
TAGGABLE_FIELDS = ("category", "colour", "pattern")
#: Characters of an item's `extra` fields, as JSON.
MAX_EXTRA_CHARS = 64 * 1024
OUTSIDE = "outside the images folder"
_DRIVE = re.compile(r"[A-Za-z]:/")  # C:/ (matched at the start)


def _short(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters (a reason must stay one readable line)."""
    text = repr(value) if not isinstance(value, list | dict) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def image_path_problem(name: str) -> str | None:
    """Why an ingested row's `image` cannot name a file inside the images folder, from the
    text alone (links are resolved when the file is read): a NUL byte, an absolute path, `..`.
    (`ItemIn.image` itself may be any name: `Catalog.add_item` is given the file apart.)"""
    if "\x00" in name:
        return "contains a NUL character"
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        return f"{OUTSIDE} (an absolute path)"
    # the parts of a POSIX path are its '/'-separated pieces, empty and '.' ones left out:
    # '..' is one of them exactly when it is one of the pieces (no pathlib object per row)
    if ".." in unified and ".." in unified.split("/"):
        return f"{OUTSIDE} ('..' in the path)"
    return None


_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d{1,2}")  # 12,5 12,50 (not 1,250: thousands)
_DOT_THOUSANDS = re.compile(r"[+-]?\d{1,3}(\.\d{3})+(,\d+)?")  # 1.234,50
_COMMA_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")  # 1,234.50


def _plain_number(text: str) -> str:
    """A number as spreadsheets write it (a decimal comma, thousands separators) in the form
    `float` reads; anything else unchanged."""
    text = text.strip()
    if _DECIMAL_COMMA.fullmatch(text):
        return text.replace(",", ".")
    if _DOT_THOUSANDS.fullmatch(text) and ("," in text or text.count(".") > 1):
        return text.replace(".", "").replace(",", ".")
    if _COMMA_THOUSANDS.fullmatch(text):
        return text.replace(",", "")
    return text


def parse_state(value: Any) -> Any:
    """"Sold", " RESERVED " → "sold", "reserved"; an empty cell → None (the default)."""
    if isinstance(value, str):
        value = value.strip().lower()
        return value or None
    return value


def parse_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if not isinstance(value, str | int | float):
        raise ValueError(f"expected true/false, got a {_short(value)}")
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true/false, got {_short(value)}")


def _small_flat_text(value: dict[str, Any]) -> bool:
    """Whether `value` maps text to text (depth 1) and its JSON text is surely at most
    `MAX_EXTRA_CHARS` long: JSON writes a character as at most 6 (`\\u001f`) and adds 8 per
    pair (quotes, `: `, `, `), so no need to write it to know. (Text with a NUL or a lone
    surrogate is refused before.)"""
    size = 2
    for key, text in value.items():
        if type(key) is not str or type(text) is not str:
            return False
        size += 6 * (len(key) + len(text)) + 8
    return size <= MAX_EXTRA_CHARS


class ItemFields(BaseModel):
    """Descriptive fields shared by new, updated and stored items."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    #: refuse text SQLite cannot store faithfully (NUL, lone surrogates); stored items skip it
    _check_text: ClassVar[bool] = True

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
    state: ItemState = Field("available", description="available, reserved or sold")
    rating: float | None = Field(None, ge=0, le=5, description="Shoppers' rating, 0 to 5")
    reviews: int | None = Field(None, ge=0, le=1_000_000_000, description="Number of reviews")
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        if cls._check_text and isinstance(data, dict):
            for key, value in data.items():
                problem = text_problem(key) or text_problem(value)
                if problem is not None:
                    raise ValueError(f"{_short(str(key), 40)}: {problem}")
        return data

    @field_validator("extra")
    @classmethod
    def _bounded_extra(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = text_problem(value)  # also what JSON text in a CSV cell decoded to
        if problem is not None:
            raise ValueError(problem)
        if _small_flat_text(value):  # a CSV row's extra columns: nothing more to check
            return value
        if json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
        try:
            text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not storable as JSON ({exc})") from None
        if len(text) > MAX_EXTRA_CHARS:
            raise ValueError(f"{len(text):,} characters as JSON, above {MAX_EXTRA_CHARS:,}")
        return value

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

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, value: Any) -> Any:
        value = parse_state(value)
        return "available" if value is None else value

    @field_validator("reviews", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return None if value == "" else value
        return value

    @field_validator("price", "sustainability", "rating", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                return None
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected a number, got {_short(value)}")
        try:
            number = float(_plain_number(value) if isinstance(value, str) else value)
        except (ValueError, OverflowError):
            raise ValueError(f"expected a number, got {_short(value)}") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number

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
        known: dict[str, Any] = {}
        unknown: list[tuple[Any, Any]] = []
        for key, value in data.items():
            if key in _KNOWN_OR_EXTRA:
                known[key] = value
            else:
                unknown.append((key, value))
        given = known.pop("extra", None)
        if given is None or given == "":
            extra: dict[str, Any] = {}
        elif isinstance(given, str):
            try:
                parsed = loads_json(given)
            except ValueError as exc:
                raise ValueError(f"extra: not JSON ({exc})") from None
            if not isinstance(parsed, dict):
                raise ValueError("extra: expected a JSON object")
            extra = parsed
        elif isinstance(given, dict):
            extra = dict(given)
        else:
            raise ValueError(f"extra: expected an object, got {_short(given)}")
        for key, value in unknown:  # compared only once `extra` is read, as always
            if value not in (None, ""):
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
    state: ItemState | None = None
    rating: float | None = Field(None, ge=0, le=5)
    reviews: int | None = Field(None, ge=0, le=1_000_000_000)
    extra: dict[str, Any] | None = None

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, value: Any) -> Any:
        return parse_state(value)


class Tag(BaseModel):
    """A predicted attribute value with the tagger's confidence."""

    value: str
    confidence: float = Field(ge=0, le=1)


class Item(ItemFields):
    """A stored catalog item."""

    model_config = ConfigDict(extra="forbid")
    _check_text: ClassVar[bool] = False  # checked on the way in

    id: str
    rowid: int
    image_path: str
    image_hash: str
    created_at: datetime
    updated_at: datetime
    predicted: dict[str, Tag] = Field(
        default_factory=dict, description="Attributes filled by taggers, with confidence."
    )
    base_price: float | None = Field(
        None, description="The price converted to `base_currency` (None: no price, or no "
        "exchange rate for its currency)."
    )
    base_currency: str | None = Field(None, description="The currency of `base_price`.")
    brand_rating: BrandRating | None = Field(
        None, description="The brand's sustainability ratings, where the catalog has them."
    )
    duplicate_of: str | None = Field(
        None, description="The id of the item this one reposts (same photo resized, "
        "recompressed, cropped or mirrored), when duplicates are flagged rather than refused."
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
