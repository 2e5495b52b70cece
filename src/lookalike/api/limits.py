"""Request body cap, enforced while the body is read (Content-Length is checked too, but not
trusted: a chunked or lying client is stopped as soon as it sends one byte too many)."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Room for form fields and multipart headers beside the file bytes themselves.
FORM_OVERHEAD = 64 * 1024


class BodyTooLargeError(Exception):
    """The request body went past its cap while being read."""


def too_large_message(limit: int) -> str:
    return f"upload too large: the limit is {limit:,} bytes"


class BodyLimitMiddleware:
    """Answer 413 (JSON) when a request body exceeds `cap(path)` bytes."""

    Cap = Callable[[str], int]

    def __init__(self, app: ASGIApp, cap: Callable[[str], int], file_limit: int) -> None:
        self.app = app
        self.cap = cap
        self.file_limit = file_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.cap(scope["path"])
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._reject(send)
                    return
        seen = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                raise BodyTooLargeError
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # Whatever the app made of the broken body, the client gets a clear 413.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._reject(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLargeError:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": too_large_message(self.file_limit)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
