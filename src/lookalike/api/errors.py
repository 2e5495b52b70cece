"""Exception handlers: every error leaves the API as JSON `{"detail": "<clear message>"}`
with the status code that says what went wrong."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.catalog import DuplicateItemError
from lookalike.catalog.tablefile import TableFileError
from lookalike.errors import (
    CatalogCorruptError,
    DatabaseUnavailableError,
    FilterError,
    ImageLoadError,
    ImageTooLargeError,
    ItemNotFoundError,
    LookalikeError,
)
from lookalike.recommend import EmptyQueryError, UnknownDirectionError
from lookalike.recommend.words import TextTooLongError
from lookalike.users import UserError, UsernameTakenError
from lookalike.validation import plain_error

log = logging.getLogger("lookalike.api")

#: ImageLoadError reasons that mean "this is not an image we read" (415), not "broken image".
_NOT_AN_IMAGE = ("not an image", "unsupported image format")


def image_error_status(exc: ImageLoadError) -> int:
    if isinstance(exc, ImageTooLargeError) and "byte cap" in exc.reason:
        return 413
    if exc.reason.startswith(_NOT_AN_IMAGE):
        return 415
    return 422


def _json(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "request"


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation and pydantic's own errors: the same 422, field by field."""
    assert isinstance(exc, RequestValidationError | ValidationError)
    errors = [
        {"field": field, "message": plain_error(e, field)}
        for e in exc.errors()
        for field in [_location(tuple(e.get("loc", ())))]
    ]
    summary = "; ".join(e["message"] for e in errors[:5])
    return _json(422, f"invalid request: {summary}", errors=errors)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    response = _json(exc.status_code, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return _json(404, str(exc))


async def _unprocessable(_: Request, exc: Exception) -> JSONResponse:
    return _json(422, str(exc))


async def _image(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImageLoadError)
    return _json(image_error_status(exc), f"cannot use this image: {exc.reason}")


async def _duplicate(_: Request, exc: Exception) -> JSONResponse:
    original = getattr(exc, "original_id", None)
    return _json(409, str(exc), **({"original_id": original} if original else {}))


async def _corrupt(_: Request, exc: Exception) -> JSONResponse:
    log.error("%s", exc)  # names the file: for the operator's log, not for the client
    return _json(503, "the catalog is damaged; the server's log says where")


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.error("%s", exc)  # names the server (never its password): for the operator's log
    response = _json(503, "the catalog's database is unavailable; try again shortly")
    response.headers["Retry-After"] = "5"
    return response


async def _lookalike(_: Request, exc: Exception) -> JSONResponse:
    return _json(400, str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, "internal error: the server could not answer this request")


def install(app: FastAPI) -> None:
    """Register every handler on `app`."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(ItemNotFoundError, _not_found)
    app.add_exception_handler(FilterError, _unprocessable)
    app.add_exception_handler(TableFileError, _unprocessable)
    app.add_exception_handler(ImageLoadError, _image)
    app.add_exception_handler(DuplicateItemError, _duplicate)
    app.add_exception_handler(UsernameTakenError, _duplicate)
    app.add_exception_handler(UserError, _unprocessable)
    app.add_exception_handler(EmptyQueryError, _unprocessable)
    app.add_exception_handler(UnknownDirectionError, _unprocessable)
    app.add_exception_handler(CatalogCorruptError, _corrupt)
    app.add_exception_handler(DatabaseUnavailableError, _unavailable)
    app.add_exception_handler(TextTooLongError, _unprocessable)
    app.add_exception_handler(LookalikeError, _lookalike)
    app.add_exception_handler(Exception, _unexpected)
