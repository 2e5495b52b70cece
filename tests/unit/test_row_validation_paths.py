"""The cheap paths of row validation (issue 19: the ingest writer validates every metadata row)
against the plain implementations they replaced: on generated rows, valid and hostile, both
accept the same values, refuse with the same reasons and find the same problems.

The reference implementations below are the code as it was before the cheap paths; the
reference model is `ItemIn` with those validators put back (a subclass's validator of the same
name replaces its parent's)."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError, field_validator, model_validator

from lookalike.catalog import schema
from lookalike.catalog.metadata import (
    MAX_JSON_DEPTH,
    encoding_name,
    json_depth,
    loads_json,
    text_problem,
)
from lookalike.catalog.schema import (
    KNOWN_FIELDS,
    MAX_EXTRA_CHARS,
    OUTSIDE,
    ItemIn,
    _short,
    image_path_problem,
)

_SURROGATE = re.compile("[\ud800-\udfff]")


def reference_text_problem(value: Any, codec: str = "utf-8") -> str | None:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return "contains a NUL character"
            bad = _SURROGATE.search(v)
            if bad is not None:
                ch = bad.group()
                if "\udc80" <= ch <= "\udcff":
                    return (f"not valid {encoding_name(codec)} text "
                            f"(byte 0x{ord(ch) - 0xDC00:02X})")
                return "invalid Unicode text (a lone surrogate)"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def reference_image_path_problem(name: str) -> str | None:
    if "\x00" in name:
        return "contains a NUL character"
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:/", unified):
        return f"{OUTSIDE} (an absolute path)"
    if ".." in PurePosixPath(unified).parts:
        return f"{OUTSIDE} ('..' in the path)"
    return None


class ReferenceItemIn(ItemIn):
    """`ItemIn` validated as before the cheap paths."""

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        if cls._check_text and isinstance(data, dict):
            for key, value in data.items():
                problem = reference_text_problem(key) or reference_text_problem(value)
                if problem is not None:
                    raise ValueError(f"{_short(str(key), 40)}: {problem}")
        return data

    @field_validator("extra")
    @classmethod
    def _bounded_extra(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = reference_text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        if json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
        try:
            text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not storable as JSON ({exc})") from None
        if len(text) > MAX_EXTRA_CHARS:
            raise ValueError(f"{len(text):,} characters as JSON, above {MAX_EXTRA_CHARS:,}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _collect_extra(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = {k: v for k, v in data.items() if k in KNOWN_FIELDS or k == "extra"}
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
        for key, value in data.items():
            if key not in KNOWN_FIELDS and key != "extra" and value not in (None, ""):
                extra[str(key)] = value
        known["extra"] = extra
        return known


# -- generated rows ---------------------------------------------------------------------------

#: text with what validation looks at: NUL, undecodable bytes (surrogate escapes), lone
#: surrogates, control characters JSON escapes, spaces, non-ASCII letters, path pieces
_CHARS = st.sampled_from(
    ["a", "Z", "7", " ", "\t", "\x00", "\x1f", "\x85", "\u3000", "é", "€", "\udc80", "\udcff",
     "\ud800", '"', "\\", "/", ".", "..", ":", "C:", ",", ";", "-", "_", "http://", "$"]
)
_TEXT = st.lists(_CHARS, max_size=12).map("".join) | st.text(max_size=12)
_SCALAR = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats()
           | _TEXT | st.sampled_from(["", "12,50", "1.249,90", "true", "no", "EUR", "sold",
                                       " 3 ", "9" * 50, "inf", "nan", "S;M, L"]))
_JSON = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=10)
_FIELD_NAMES = st.sampled_from([*KNOWN_FIELDS, "extra", "sender_id", "x", "", "a\x00b",
                                "\udc80", "usage"])
#: a CSV row: text cells (None for a missing cell) plus an image
_CSV_ROW = st.fixed_dictionaries(
    {"image": _TEXT | st.just("img0.jpg")},
    optional={name: st.none() | _TEXT | st.sampled_from(["", "12,50", "4.5", "true", "EUR"])
              for name in [*KNOWN_FIELDS, "extra", "sender_id", "usage"] if name != "image"},
)
_ROW = _CSV_ROW | st.dictionaries(_FIELD_NAMES, _JSON, max_size=8)
_BIG_EXTRA = st.dictionaries(
    st.text(max_size=3),
    st.sampled_from(["x", "\x01", '"']).flatmap(
        lambda ch: st.integers(0, MAX_EXTRA_CHARS // 2).map(lambda n: ch * n)),
    max_size=3,
)

_PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(model: type[ItemIn], row: dict[str, Any]) -> Any:
    """What validation makes of `row`: the item's values and the fields it was given, or the
    errors (type, location, message)."""
    try:
        item = model.model_validate(row)
    except ValidationError as exc:
        return [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]
    except (TypeError, OverflowError, RecursionError) as exc:
        return ("raised", type(exc).__name__, str(exc))
    return item.model_dump(), item.model_fields_set


@_PROPERTY
@given(_ROW)
def test_rows_validate_as_the_reference_does(row: dict[str, Any]) -> None:
    assert outcome(ItemIn, row) == outcome(ReferenceItemIn, row)


@_PROPERTY
@given(st.fixed_dictionaries({"id": st.just("a"), "image": st.just("a.jpg"),
                              "extra": _BIG_EXTRA | _JSON}, optional={"note": _TEXT}))
def test_extra_fields_are_bounded_as_the_reference_does(row: dict[str, Any]) -> None:
    assert outcome(ItemIn, row) == outcome(ReferenceItemIn, row)


@_PROPERTY
@given(_JSON | _TEXT, st.sampled_from(["utf-8", "cp1252", "utf-16"]))
def test_text_problems_are_found_as_the_reference_finds_them(value: Any, codec: str) -> None:
    assert text_problem(value, codec) == reference_text_problem(value, codec)


_PATH = st.lists(st.sampled_from(["a", "..", ".", "/", "\\", "C:", "c:/", "x..y", "...",
                                  "\x00", "é", "//", " "]), max_size=8).map("".join)


@_PROPERTY
@given(_PATH | st.text(max_size=20))
def test_image_paths_are_checked_as_the_reference_checks_them(name: str) -> None:
    assert image_path_problem(name) == reference_image_path_problem(name)


@pytest.mark.parametrize("name", ["../a.jpg", "a/../b.jpg", "a/..", "..\\x.jpg", "a/.../b.jpg",
                                  "a..b/c.jpg", "C:/x.jpg", "c:\\x.jpg", "/x.jpg", "a/./b.jpg"])
def test_image_path_examples(name: str) -> None:
    assert image_path_problem(name) == reference_image_path_problem(name)


def test_the_reference_model_is_the_one_compared() -> None:
    """The comparison can fail: the reference's own validators run (a row the cheap bound
    passes through must still be refused by the reference when its JSON is too long)."""
    long_row = {"id": "a", "image": "a.jpg", "extra": {"k": "\x01" * (MAX_EXTRA_CHARS // 5)}}
    assert isinstance(outcome(ReferenceItemIn, long_row), list)
    assert outcome(ItemIn, long_row) == outcome(ReferenceItemIn, long_row)
    assert not schema._small_flat_text(long_row["extra"])  # the bound sent it the long way
    short = {"k": "x" * 100}
    assert schema._small_flat_text(short)


class _Incomparable:
    """A value (from a Python caller) that refuses to be compared, as a numpy array does."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("cannot compare")

    __hash__ = object.__hash__


@pytest.mark.parametrize("extra", ["{not json", "", '{"a": 1}'])
def test_unknown_values_are_compared_after_extra_is_read(extra: str) -> None:
    """The reason a row is refused does not depend on which check looks first."""
    row = {"id": "a", "image": "a.jpg", "extra": extra, "w": _Incomparable()}
    assert outcome(ItemIn, row) == outcome(ReferenceItemIn, row)
