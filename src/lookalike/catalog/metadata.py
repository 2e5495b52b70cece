"""Reading a metadata file (CSV or JSON Lines) into raw rows, whatever the file holds.

The reader is total: every record becomes a row or a rejection with its reason (a line too
long, malformed CSV, invalid JSON, text that is not valid in the file's encoding, values nested
too deeply...), and the ingest goes on. Only a problem with the file as a whole raises
`MetadataError`, naming the file: missing, a folder, unreadable, not text at all, an unknown
suffix, a CSV without an `image` column.

Encodings: a byte-order mark decides (UTF-8, UTF-16, UTF-32); without one the file is UTF-8,
unless it holds bytes that are not UTF-8 and no UTF-8 sequence at all, which is how a legacy
8-bit export looks (Excel's "CSV" on Western Windows): then it is read as Windows-1252. UTF-16
without a mark (every other byte zero) is recognised too. A CSV's delimiter is the first of
`, ; TAB |` that makes an `image` column in the header (Excel uses `;` where `,` is the decimal
separator).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lookalike.errors import MetadataError

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_LINE_CHARS",
    "METADATA_SUFFIXES",
    "MetadataRows",
    "RawRow",
    "detect_encoding",
    "json_depth",
    "loads_json",
    "read_metadata",
    "text_problem",
]

#: One physical line of a metadata file; a longer line is a rejected row (memory stays bounded).
MAX_LINE_CHARS = 1 << 20
#: Nesting of JSON values (objects and lists) in a row.
MAX_JSON_DEPTH = 8
#: Digits of a JSON integer (Python would parse 4,300, and convert them slowly).
MAX_JSON_INT_DIGITS = 40
#: Delimiters tried, in order, on a CSV header.
CSV_DELIMITERS = (",", ";", "\t", "|")
METADATA_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

_ENCODING_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "utf-32": "UTF-32",
    "cp1252": "Windows-1252",
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: Binary formats someone may pass as metadata by mistake, named in the error.
_BINARY_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook? save it as 'CSV UTF-8')"),
    (b"\xd0\xcf\x11\xe0", "an OLE file (an Excel .xls workbook? save it as 'CSV UTF-8')"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"SQLite format 3", "an SQLite database"),
)
#: Bytes of text (a few control characters in a text file are rejected rows, not binary data).
_TEXT_BYTES = bytes(range(32, 256)) + b"\t\n\x0c\r"
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes the codec could not decode (surrogateescape)
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class RawRow:
    """One record of a metadata file: its fields, or why it is not a row."""

    number: int
    fields: dict[str, Any] | None
    problem: str = ""
    field: str = "row"
    file: str = ""


def _open_binary(path: Path) -> IO[bytes]:
    """Open without blocking (a FIFO is refused, not waited on) and check it is a file."""
    where = str(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise MetadataError(where, "metadata file not found") from None
    except ValueError:
        raise MetadataError(where, "invalid file name (NUL byte)") from None
    except IsADirectoryError:
        raise MetadataError(where, "is a folder, not a metadata file") from None
    except OSError as exc:
        raise MetadataError(where, f"cannot read ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise MetadataError(where, "is a folder, not a metadata file")
        if not stat.S_ISREG(mode):
            raise MetadataError(where, "not a regular file (a device, FIFO or socket)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def detect_encoding(path: Path) -> str:
    """The text encoding of a metadata file (a Python codec name); see the module docstring.

    Raises `MetadataError` for a file that is not text at all."""
    try:
        with _open_binary(path) as f:
            head = f.read(1 << 16)
            for bom, name in _BOMS:
                if head.startswith(bom):
                    return name
            for magic, what in _BINARY_MAGIC:
                if head.startswith(magic):
                    raise MetadataError(str(path), f"not a text file: this is {what}")
            if b"\x00" in head and (utf16 := _utf16_without_bom(head)):
                return utf16
            if len(head.translate(None, _TEXT_BYTES)) > 0.05 * len(head):
                raise MetadataError(
                    str(path),
                    "not a text file (binary data); expected CSV or JSON Lines text in UTF-8, "
                    "UTF-16 or Windows-1252",
                )
            f.seek(0)
            return _utf8_or_cp1252(f)
    except OSError as exc:
        raise MetadataError(str(path), f"cannot read ({exc.strerror or exc})") from None


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text of mostly ASCII has a zero in every other byte."""
    even, odd = head[0::2].count(0), head[1::2].count(0)
    half = len(head) // 2
    if odd > 0.3 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.3 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


def _utf8_or_cp1252(f: IO[bytes]) -> str:
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    invalid = False
    while True:
        chunk = f.read(1 << 20)
        text = decoder.decode(chunk, final=not chunk)
        if not text.isascii():
            non_ascii = len(text) - len(text.encode("ascii", "ignore"))
            bad = len(_ESCAPED.findall(text))
            if non_ascii > bad:  # a valid UTF-8 sequence: UTF-8 it is (bad rows are rejected)
                return "utf-8"
            invalid = invalid or bad > 0
        if not chunk:
            return "cp1252" if invalid else "utf-8"


def encoding_name(codec: str) -> str:
    return _ENCODING_NAMES.get(codec, codec)


def loads_json(text: str) -> Any:
    """`json.loads` with limits: no NaN/Infinity, integers of at most `MAX_JSON_INT_DIGITS`
    digits, nesting checked after parsing (`ValueError` for each; `RecursionError` becomes
    one)."""

    def bad_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    def bounded_int(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_JSON_INT_DIGITS:
            raise ValueError(f"an integer of {len(digits):,} digits")
        return int(digits)

    try:
        value = json.loads(text, parse_constant=bad_constant, parse_int=bounded_int)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ValueError(f"values nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def json_depth(value: Any, stop: int) -> int:
    """Nesting depth of lists and dicts in `value` (a scalar is 0), counted up to `stop` + 1."""
    depth = 0
    level = [value]
    while level and depth <= stop:
        nested = [v for v in level if isinstance(v, dict | list)]
        if not nested:
            break
        depth += 1
        level = [
            child for v in nested for child in (v.values() if isinstance(v, dict) else v)
        ]
    return depth


def text_problem(value: Any, codec: str = "utf-8") -> str | None:
    """Why a string (or any string inside a list or dict) is not text we can store: a NUL
    character, a byte the file's encoding could not decode, a lone surrogate."""
    if isinstance(value, str):  # most values: one cell's text, no walk
        return _str_problem(value, codec)
    if not isinstance(value, dict | list):
        return None
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            problem = _str_problem(v, codec)
            if problem is not None:
                return problem
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def _str_problem(text: str, codec: str) -> str | None:
    """`text_problem` of one string (ASCII text holds no surrogate: no search)."""
    if "\x00" in text:
        return "contains a NUL character"
    if text.isascii():
        return None
    bad = _SURROGATE.search(text)
    if bad is None:
        return None
    ch = bad.group()
    if "\udc80" <= ch <= "\udcff":
        return f"not valid {encoding_name(codec)} text (byte 0x{ord(ch) - 0xDC00:02X})"
    return "invalid Unicode text (a lone surrogate)"


class _OverlongLineError(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(f"line {line} is longer than {MAX_LINE_CHARS:,} characters")
        self.line = line


class _Lines:
    """Physical lines of a text file, each at most `MAX_LINE_CHARS` characters. A longer line
    is read through to its end in bounded pieces and reported by raising `_OverlongLineError`; the
    iterator stays usable (the csv module resumes with the next line)."""

    def __init__(self, f: IO[str]) -> None:
        self.f = f
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.f.readline(MAX_LINE_CHARS + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            while (rest := self.f.readline(MAX_LINE_CHARS)) and not rest.endswith(("\n", "\r")):
                pass
            raise _OverlongLineError(self.number)
        return line


class MetadataRows:
    """The rows of one metadata file: iterate for `RawRow`s. Opening it checks the file as a
    whole (and raises `MetadataError`); iterating never raises for a bad row."""

    def __init__(self, path: Path, columns: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self.columns = dict(columns or {})
        suffix = self.path.suffix.lower()
        kind = METADATA_SUFFIXES.get(suffix)
        if kind is None:
            raise MetadataError(
                str(self.path),
                f"metadata must be .csv or .jsonl, not {suffix or 'a file without suffix'}",
            )
        self.kind = kind
        self.encoding = detect_encoding(self.path)
        self.delimiter = ","
        if kind == "csv":
            try:
                with self._open() as f:
                    self.delimiter = self._csv_delimiter(next(_Lines(f), ""))
            except _OverlongLineError as exc:
                raise MetadataError(str(self.path), f"the CSV header: {exc}") from None
            except OSError as exc:
                reason = f"cannot read ({exc.strerror or exc})"
                raise MetadataError(str(self.path), reason) from None

    @property
    def encoding_name(self) -> str:
        return encoding_name(self.encoding)

    def _open(self) -> IO[str]:
        binary = _open_binary(self.path)
        # undecodable bytes become lone surrogates (a rejected row), never an exception; UTF-16
        # and UTF-32 cannot escape them byte by byte, so they become U+FFFD
        errors = "replace" if self.encoding.startswith(("utf-16", "utf-32")) else "surrogateescape"
        return io.TextIOWrapper(binary, encoding=self.encoding, errors=errors, newline="")

    def _rename(self, name: str) -> str:
        return self.columns.get(name, name)

    def _csv_delimiter(self, header_line: str) -> str:
        if not header_line.strip():
            raise MetadataError(
                str(self.path), "CSV is empty: it needs a header row with an 'image' column"
            )
        for delimiter in CSV_DELIMITERS:
            names = next(csv.reader([header_line], delimiter=delimiter), [])
            if "image" in {self._rename(n.strip()) for n in names}:
                return delimiter
        found = next(csv.reader([header_line]), [])
        shown = ", ".join(repr(n.strip()[:40]) for n in found[:8])
        raise MetadataError(
            str(self.path),
            f"CSV needs a header row with an 'image' column (found {shown}"
            f"{', ...' if len(found) > 8 else ''})",
        )

    def __iter__(self) -> Iterator[RawRow]:
        try:
            with self._open() as f:
                yield from (self._csv(f) if self.kind == "csv" else self._jsonl(f))
        except OSError as exc:  # the disk failed mid-file: nothing was stored yet
            raise MetadataError(str(self.path), f"cannot read ({exc.strerror or exc})") from None

    def _csv(self, f: IO[str]) -> Iterator[RawRow]:
        lines = _Lines(f)
        reader = csv.reader(lines, delimiter=self.delimiter)
        try:
            header = [self._rename(name.strip()) for name in next(reader)]
        except (StopIteration, csv.Error, _OverlongLineError) as exc:
            raise MetadataError(str(self.path), f"cannot read the CSV header ({exc})") from None
        for position, name in enumerate(header, start=1):
            problem = text_problem(name, self.encoding)
            if problem is not None:
                raise MetadataError(str(self.path), f"CSV header, column {position}: {problem}")
        repeated = sorted({n for n in header if header.count(n) > 1})
        if repeated:
            raise MetadataError(
                str(self.path), f"the CSV header repeats column {', '.join(map(repr, repeated))}"
            )
        number = 1  # rows numbered like a spreadsheet's: the header is row 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except _OverlongLineError as exc:
                number += 1
                yield RawRow(number, None, str(exc))
                continue
            except csv.Error as exc:
                number += 1
                yield RawRow(number, None, f"malformed CSV ({exc})")
                continue
            if not cells:  # a blank line is no row
                continue
            number += 1
            if len(cells) > len(header):
                yield RawRow(
                    number, None, f"{len(cells)} cells, more than the {len(header)} columns"
                )
                continue
            yield self._checked(number, dict(itertools.zip_longest(header, cells)), names=False)

    def _jsonl(self, f: IO[str]) -> Iterator[RawRow]:
        lines = _Lines(f)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except _OverlongLineError as exc:
                yield RawRow(exc.line, None, str(exc))
                continue
            if not line.strip():
                continue
            number = lines.number
            try:
                obj = loads_json(line)
            except ValueError as exc:
                yield RawRow(number, None, f"invalid JSON ({_json_message(exc)})")
                continue
            if not isinstance(obj, dict):
                yield RawRow(number, None, f"expected a JSON object, got {_json_kind(obj)}")
                continue
            yield self._checked(number, {self._rename(k): v for k, v in obj.items()})

    def _checked(self, number: int, fields: dict[str, Any], names: bool = True) -> RawRow:
        """The row, or why its text cannot be stored. `names=False`: the names are the CSV
        header's, checked once for the file."""
        codec = self.encoding
        for name, value in fields.items():
            problem = text_problem(name, codec) if names else None
            problem = problem or text_problem(value, codec)
            if problem is not None:
                return RawRow(number, None, problem, field=_short(name) or "row")
        return RawRow(number, fields)


def read_metadata(path: Path, columns: Mapping[str, str] | None = None) -> MetadataRows:
    """The rows of a CSV or JSONL metadata file (`columns` renames columns, e.g. label=category).

    CSV rows are numbered like a spreadsheet (header = row 1); JSONL rows by line."""
    return MetadataRows(path, columns)


def _json_message(exc: ValueError) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _short(text: str, limit: int = 80) -> str:
    text = text.replace("\x00", "\\0")
    return text if len(text) <= limit else text[: limit - 1] + "…"
