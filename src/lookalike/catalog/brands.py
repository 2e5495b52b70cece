"""Brand sustainability ratings: a table of brands rated on people, planet and animals (as
Good On You rates them), joined to items by the brand's normalised name.

Every rating is on one scale, 0 (worst) to 5 (best), the scale of an item's own
`sustainability`. A ratings file (CSV or JSONL) has one row per brand:

    brand,overall,people,planet,animals,source,url,rated_on
    Kettle & Loom,4.5,4,5,4.5,Example Ratings,https://example.org/kettle,2024-05-01

`brand`, `overall` and `source` are required; the aspects, `url` and `rated_on` (YYYY-MM-DD)
may be left empty. Brand names are compared by `normalise_brand`, at import and wherever an
item's brand meets a rating or a brand filter: "Kettle and Loom Ltd." rates "KETTLE & LOOM".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lookalike.catalog.tablefile import RowError, read_table
from lookalike.validation import plain_error

__all__ = [
    "ASPECTS",
    "COMPANY_SUFFIXES",
    "BrandRating",
    "BrandRatingsFile",
    "normalise_brand",
    "read_brand_ratings",
]

#: The aspects a brand is rated on, besides its overall rating.
ASPECTS = ("people", "planet", "animals")

#: Words that end a company's name without being part of the brand ("Acme GmbH" is "Acme").
COMPANY_SUFFIXES = frozenset({
    "inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited", "llc",
    "llp", "plc", "gmbh", "ag", "kg", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "ab", "oy",
    "as", "aps", "pty", "pte", "kk",
})

_DROPPED = re.compile(r"[.'’`´]")  # "A.P.C." is "APC", "Levi's" is "Levis"
_SEPARATORS = re.compile(r"[^\w]+")


def normalise_brand(name: str) -> str:
    """The form brand names are compared in: accents and case folded, "&" and "+" read as
    "and", dots and apostrophes dropped, other punctuation as spaces, and trailing company
    suffixes (Inc, Ltd, GmbH, Co, ...) left out. "Kettle & Loom Ltd." → "kettle and loom";
    "Élan GmbH" → "elan". A name that is nothing but a suffix keeps it."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = text.replace("&", " and ").replace("+", " and ")
    text = _SEPARATORS.sub(" ", _DROPPED.sub("", text))
    words = text.split()
    while len(words) > 1 and words[-1] in COMPANY_SUFFIXES:
        words.pop()
        if len(words) > 1 and words[-1] == "and":  # "Smith & Co" is "Smith"
            words.pop()
    return " ".join(words)


class BrandRating(BaseModel):
    """One brand's ratings, 0 (worst) to 5 (best), and where they come from."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    brand: str = Field(..., min_length=1, max_length=200, description="The brand as rated.")
    overall: float = Field(..., ge=0, le=5, description="Overall rating, 0 (worst) to 5 (best).")
    people: float | None = Field(None, ge=0, le=5, description="Workers' rights, 0 to 5.")
    planet: float | None = Field(None, ge=0, le=5, description="Environmental impact, 0 to 5.")
    animals: float | None = Field(None, ge=0, le=5, description="Animal welfare, 0 to 5.")
    source: str = Field(..., min_length=1, max_length=200, description="Who rated the brand.")
    url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")
    rated_on: date | None = Field(None, description="When the rating was made (YYYY-MM-DD).")

    @field_validator("people", "planet", "animals", "url", "rated_on", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def key(self) -> str:
        return normalise_brand(self.brand)


@dataclass
class BrandRatingsFile:
    """What a ratings file holds: the valid rows (the last row of a brand wins) and why
    other rows were refused."""

    ratings: list[BrandRating] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


_COLUMNS = ("brand", "overall", *ASPECTS, "source", "url", "rated_on")


def read_brand_ratings(
    data: bytes | Path, name: str | None = None, max_rows: int = 100_000
) -> BrandRatingsFile:
    """Parse a brand ratings file (path, or an upload's bytes named `name`): see the module
    notes for its columns. Unknown columns are refused (a misspelt `overal` must not pass as
    no rating); a brand named twice keeps its last row."""
    out = BrandRatingsFile()
    by_key: dict[str, int] = {}
    for number, row, problem in read_table(data, name, required=("brand", "overall", "source"),
                                           max_rows=max_rows):
        if row is None:
            out.errors.append(RowError(number, "", problem))
            continue
        unknown = [k for k in row if k not in _COLUMNS]
        if unknown:
            out.errors.append(RowError(number, unknown[0], f"{unknown[0]!r} is not a column of "
                                       f"a ratings file (columns: {', '.join(_COLUMNS)})"))
            continue
        try:
            rating = BrandRating.model_validate(row)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error.get("loc", ()))
            out.errors.append(RowError(number, where, plain_error(error)))
            continue
        if not rating.key:
            out.errors.append(RowError(number, "brand", "brand has no letters or digits"))
            continue
        if rating.key in by_key:
            out.ratings[by_key[rating.key]] = rating
        else:
            by_key[rating.key] = len(out.ratings)
            out.ratings.append(rating)
    return out
