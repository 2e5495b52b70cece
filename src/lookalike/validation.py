"""Pydantic's validation errors in plain words, for people rather than developers:
`price_max must be a number, got 'cheap'` instead of "1 validation error for Filters ...
Input should be a valid number, unable to parse string as a number [type=float_parsing ...]
For further information visit https://errors.pydantic.dev/...".

Used wherever a user's input meets a pydantic model: CLI filters, API requests, settings.
Works on the error dicts of `ValidationError.errors()`, so it needs no pydantic import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["plain_error", "plain_errors"]

_NUMBER = "must be a number"
_WHOLE = "must be a whole number"
_BOOL = "must be true or false"

#: pydantic error type → what the value must be ({ctx keys} filled in from the error's ctx).
_PHRASES: dict[str, str] = {
    "float_parsing": _NUMBER,
    "float_type": _NUMBER,
    "decimal_parsing": _NUMBER,
    "int_parsing": _WHOLE,
    "int_type": _WHOLE,
    "int_from_float": _WHOLE,
    "finite_number": "must be a finite number",
    "bool_parsing": _BOOL,
    "bool_type": _BOOL,
    "greater_than": "must be above {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be below {lt}",
    "less_than_equal": "must be at most {le}",
    "string_type": "must be text",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "too_short": "must hold at least {min_length} values",
    "too_long": "must hold at most {max_length} values",
    "list_type": "must be a list",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "path_type": "must be a path",
    "url_parsing": "must be a URL",
}


def _shown(value: Any) -> str:
    """The offending value as the user typed it: text quoted, unless it reads as a number."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return repr(value)
        return value
    return repr(value)


def _number(value: Any) -> Any:
    """5.0 → 5: a bound as a person writes it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def plain_error(error: Mapping[str, Any], field: str | None = None) -> str:
    """One error of `ValidationError.errors()` as a sentence: `<field> <must be ...>, got <v>`.
    `field` names the input (default: the error's location); errors of a whole model (a
    validator's ValueError) keep their own message."""
    kind = str(error.get("type", ""))
    name = field if field is not None else _location(error.get("loc", ()))
    message = str(error.get("msg", "is not valid"))
    phrase = _PHRASES.get(kind)
    if phrase is None:
        if kind in ("value_error", "assertion_error"):
            message = message.split(", ", 1)[1] if message.startswith(
                ("Value error, ", "Assertion failed, ")
            ) else message
            return f"{name}: {message}" if name else message
        phrase = message[:1].lower() + message[1:]
    else:
        try:
            ctx = {k: _number(v) for k, v in (error.get("ctx") or {}).items()}
            phrase = phrase.format(**ctx)
        except (KeyError, IndexError):
            pass
    text = f"{name} {phrase}" if name else phrase[:1].upper() + phrase[1:]
    if kind not in ("missing", "extra_forbidden") and "input" in error and not isinstance(
        error["input"], dict
    ):
        text += f", got {_shown(error['input'])}"
    return text


def plain_errors(
    errors: Iterable[Mapping[str, Any]],
    field: Callable[[Sequence[Any]], str] | None = None,
    limit: int = 5,
) -> str:
    """Several errors, `; `-joined (the first `limit`). `field(loc)` names each input."""
    found = list(errors)
    parts = [
        plain_error(e, None if field is None else field(tuple(e.get("loc", ()))))
        for e in found[:limit]
    ]
    if len(found) > limit:
        parts.append(f"and {len(found) - limit} more")
    return "; ".join(parts)
