"""Small tables a shop imports beside its items (brand ratings, exchange rates): CSV with a
header row, or JSONL (one JSON object per line). Lines starting with `#` before the header (and
JSONL lines starting with `#`) are comments, so a file can say where its numbers come from.

Rows are numbered as a person finds them in an editor: the line number, counting comments and
the header. Files and row counts are bounded, so an upload cannot exhaust the server.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.errors import LookalikeError

__all__ = ["RowError", "TableFileError", "read_table"]


class TableFileError(LookalikeError):
    """A table file that cannot be read at all (format, header, size)."""


@dataclass(frozen=True)
class RowError:
    """Why one row of a table file was refused."""

    row: int
    field: str  # the column at fault ("" for the row as a whole)
    reason: str  # a sentence naming the column, e.g. "overall must be at most 5, got 7"

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


def _kind(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise TableFileError(f"{name}: must be .csv or .jsonl, not {suffix or 'a file without suffix'}")


def read_table(
    data: bytes | Path,
    name: str | None = None,
    *,
    required: tuple[str, ...] = (),
    max_rows: int = 100_000,
    max_bytes: int = 20 * 1024 * 1024,
) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(line number, row or None, why it cannot be read) for every row of a CSV or JSONL file
    given as a path or as bytes named `name` (an upload). Empty CSV cells are left out of the
    row. Raises TableFileError naming the file for a wrong suffix, a missing `required` column
    (CSV), more than `max_rows` rows or `max_bytes` bytes."""
    label = name or str(data)
    kind = _kind(label)
    if isinstance(data, Path):
        if not data.is_file():
            raise TableFileError(f"{label}: no such file")
        if data.stat().st_size > max_bytes:
            raise TableFileError(f"{label}: larger than {max_bytes:,} bytes")
        raw = data.read_bytes()
    else:
        raw = data
        if len(raw) > max_bytes:
            raise TableFileError(f"{label}: larger than {max_bytes:,} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TableFileError(f"{label}: not UTF-8 text (byte {exc.start})") from None
    lines = text.splitlines(keepends=True)
    count = 0

    def counted() -> None:
        nonlocal count
        count += 1
        if count > max_rows:
            raise TableFileError(f"{label}: more than {max_rows:,} rows")

    if kind == "jsonl":
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            counted()
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"invalid JSON ({exc.msg})"
                continue
            if not isinstance(obj, dict):
                yield number, None, "expected a JSON object"
                continue
            yield number, obj, ""
        return
    skipped = 0
    while skipped < len(lines) and (not lines[skipped].strip()
                                    or lines[skipped].lstrip().startswith("#")):
        skipped += 1
    reader = csv.DictReader(io.StringIO("".join(lines[skipped:]), newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in required if c not in header]
    if not header or missing:
        raise TableFileError(
            f"{label}: the header row needs the column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing or required)}" + (f"; found {', '.join(header)}" if header else "")
        )
    reader.fieldnames = header
    for row in reader:
        number = skipped + reader.line_num
        if not any((v or "").strip() for k, v in row.items() if k is not None):
            continue
        counted()
        if None in row:
            yield number, None, "more cells than header columns"
            continue
        yield number, {k: v.strip() for k, v in row.items() if v is not None and v.strip()}, ""
