"""Headers every answer gets, added in one place whatever made the response (a route's JSON, a
template, a static file, an error handler, the body-size cap):

* security headers: a Content-Security-Policy allowing only the server's own scripts, styles
  and connections (no inline script or style, no framing), `X-Content-Type-Options: nosniff`,
  `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`, and HSTS when the cookie is
  HTTPS-only (`cookie_secure`);
* `Cache-Control: no-store` on anything personal (the pages, /me, sessions, accounts) and on
  every answer that sets a cookie;
* the session cookie. A dependency that starts or renews a session records it with
  `remember_session` / `forget_session` on the request, and this middleware writes the cookie
  on whatever response leaves. (Setting it on an injected `Response` was lost whenever a route
  returned its own response object, as the template pages do.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.config import Settings

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "ResponseHeadersMiddleware",
    "SessionCookie",
    "forget_session",
    "remember_session",
]

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",  # data: the page's icon; blob: the preview of a chosen photo
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "geolocation=(), microphone=(), payment=(), usb=()",
}

#: Paths whose answers depend on who asks: never stored by a cache.
PERSONAL_PREFIXES = ("/me", "/users/", "/sessions", "/accounts")
PERSONAL_PAGES = frozenset({"/", "/swipe", "/likes"})

#: Where `remember_session` leaves its note: an attribute of `request.state`, i.e. a key of
#: the scope's "state" dict.
_STATE_KEY = "lookalike_session_cookie"


@dataclass(frozen=True)
class SessionCookie:
    """What to do with the session cookie on this request's response: set `token` for
    `max_age` (None: delete the cookie); `header`: also send the token as X-Session-Token
    (a new session, which an API client needs to see)."""

    token: str | None
    max_age: timedelta = timedelta(0)
    header: bool = False


def remember_session(request: Request, token: str, ttl: timedelta, header: bool) -> None:
    request.state.lookalike_session_cookie = SessionCookie(token, ttl, header)


def forget_session(request: Request) -> None:
    request.state.lookalike_session_cookie = SessionCookie(None)


def _cookie_headers(settings: Settings, change: SessionCookie) -> list[tuple[bytes, bytes]]:
    scratch = Response()
    if change.token is None:
        scratch.delete_cookie(settings.session_cookie, httponly=True, samesite="lax",
                              secure=settings.cookie_secure)
    else:
        scratch.set_cookie(settings.session_cookie, change.token,
                           max_age=int(change.max_age.total_seconds()), httponly=True,
                           samesite="lax", secure=settings.cookie_secure)
        if change.header:
            scratch.headers["x-session-token"] = change.token
    return [(k, v) for k, v in scratch.raw_headers
            if k in (b"set-cookie", b"x-session-token")]


def _personal(path: str) -> bool:
    return path in PERSONAL_PAGES or path.startswith(PERSONAL_PREFIXES)


class ResponseHeadersMiddleware:
    """Security headers, no-store where personal, and the session cookie (see the module)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.security = dict(SECURITY_HEADERS)
        if settings.cookie_secure:
            self.security["strict-transport-security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # the dict every Request of this scope shares

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.security.items():
                    if name not in headers:
                        headers[name] = value
                change = state.get(_STATE_KEY)
                if isinstance(change, SessionCookie):
                    for name_b, value_b in _cookie_headers(self.settings, change):
                        headers.append(name_b.decode("latin-1"), value_b.decode("latin-1"))
                if (change is not None or _personal(scope["path"])) \
                        and "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
