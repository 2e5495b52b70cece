"""Exchange rates, so that prices in several currencies compare as one.

A rates file (CSV or JSONL) has one row per currency: how many units of it one unit of the
file's base currency buys, as central banks publish them (the ECB's EUR table: `USD,1.0842`):

    currency,rate,date
    USD,1.0842,2024-05-02
    GBP,0.8551,2024-05-02

The base is a `base` column (the same on every row) or given on import (by default
`Settings.base_currency`). `date` (YYYY-MM-DD) says when the rate held; rows without one are
dated the day of import. An import replaces the catalog's whole table: the latest file is the
one in force. Prices convert to any currency the table holds through the file's base:
price in X = price in C × rate(X) / rate(C).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lookalike.catalog.tablefile import RowError, TableFileError, read_table
from lookalike.validation import plain_error

__all__ = ["CURRENCY_PATTERN", "Rate", "RatesFile", "read_rates"]

CURRENCY_PATTERN = r"^[A-Z]{3}$"


class Rate(BaseModel):
    """Units of `currency` that one unit of the table's base buys, and when."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    currency: str = Field(..., pattern=CURRENCY_PATTERN, description="ISO 4217 code")
    rate: float = Field(..., gt=0, le=1e9)
    date: dt.date

    @field_validator("currency", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("rate", mode="before")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return value  # pydantic says "must be a number"
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number


@dataclass
class RatesFile:
    """A parsed rates file: its base, its valid rows (base included at 1; a currency named
    twice keeps its last row) and why other rows were refused."""

    base: str
    rates: list[Rate] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


_COLUMNS = ("currency", "rate", "date", "base")


def read_rates(
    data: bytes | Path,
    name: str | None = None,
    *,
    base: str,
    today: dt.date | None = None,
    max_rows: int = 1000,
) -> RatesFile:
    """Parse a rates file (path, or an upload's bytes named `name`). `base` is the currency
    the rates are against unless the file has a `base` column; rows without a date get
    `today`. The base itself is added at rate 1 (a row for it must say 1)."""
    label = name or str(data)
    today = today or dt.date.today()
    rows = list(read_table(data, name, required=("currency", "rate"), max_rows=max_rows))
    bases = {str(r["base"]).strip().upper() for _, r, _ in rows if r and r.get("base")}
    if len(bases) > 1:
        found = ", ".join(sorted(bases))
        raise TableFileError(f"{label}: one base currency per file, found {found}")
    file_base = bases.pop() if bases else base.strip().upper()
    try:
        Rate(currency=file_base, rate=1, date=today)
    except ValidationError:
        raise TableFileError(f"{label}: base currency {file_base!r} is not an ISO 4217 "
                             "code like EUR") from None
    out = RatesFile(base=file_base)
    by_currency: dict[str, Rate] = {}
    base_date = today
    for number, row, problem in rows:
        if row is None:
            out.errors.append(RowError(number, "", problem))
            continue
        unknown = [k for k in row if k not in _COLUMNS]
        if unknown:
            out.errors.append(RowError(number, unknown[0], f"{unknown[0]!r} is not a column of "
                                       f"a rates file (columns: {', '.join(_COLUMNS)})"))
            continue
        values = {k: v for k, v in row.items() if k != "base"}
        values.setdefault("date", today)
        try:
            rate = Rate.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error.get("loc", ()))
            out.errors.append(RowError(number, where, plain_error(error)))
            continue
        if rate.currency == file_base:
            if rate.rate != 1:
                out.errors.append(RowError(number, "rate", f"the base currency {file_base} "
                                           f"must have rate 1, got {rate.rate:g}"))
                continue
            base_date = rate.date
        by_currency[rate.currency] = rate
    by_currency[file_base] = Rate(currency=file_base, rate=1, date=base_date)
    out.rates = sorted(by_currency.values(), key=lambda r: r.currency)
    return out
