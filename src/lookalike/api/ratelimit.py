"""Bounds on what a client without credentials can make the server do.

* `RequestLimitMiddleware`: every client's requests through one token bucket, refused (429)
  before any routing or database work, the refusal paused a moment.
* `RateLimiter`: a token bucket per client (its IP address; an IPv6 client by its /64, which
  one subscriber usually owns whole), remembering at most `max_clients` clients (the least
  recently seen are forgotten first), so its memory is bounded whatever the traffic.
* `HashGate`: argon2 (password and admin key checks) costs ~64 MiB and ~0.2 s of CPU per
  call (spread over 4 threads). The gate runs at most `concurrency` of them at once on threads
  of its own (never the threads that serve other requests), at most `per_minute` a minute
  for all clients together (bursts of `HASH_BURST`), lets at most `queue` more wait, and
  answers 503 with Retry-After beyond that: the server's memory and the CPU share of password
  checks stay bounded however many clients send wrong passwords at once. (A lower CPU priority
  for the hashing threads was tried: a low-priority thread that needs the interpreter lock
  back stalled the event loop for seconds on a busy machine.)

Both answer with `TooManyRequests` / `Busy` (HTTP errors carrying Retry-After).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from lookalike.config import Settings

__all__ = [
    "Busy",
    "Guards",
    "HashGate",
    "RateLimiter",
    "RequestLimitMiddleware",
    "TooManyRequests",
    "client_key",
]

T = TypeVar("T")

#: Password checks the whole server may run back to back before `hashes_per_minute` paces them.
HASH_BURST = 5


class TooManyRequests(HTTPException):
    """429 with Retry-After (whole seconds, at least 1)."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(429, detail, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class Busy(HTTPException):
    """503 with Retry-After: the server is at its bound for this kind of work."""

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(503, detail, headers={"Retry-After": str(retry_after)})


def client_key(request: Request) -> str:
    """Who a request comes from, for rate limiting: the peer's IP address, an IPv6 one by its
    /64 network. (Behind a reverse proxy, run uvicorn with --forwarded-allow-ips so that the
    peer is the real client.)"""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimiter:
    """Token buckets by client: `burst` tokens at most, refilled at `per_minute` a minute.

    `take(key)` spends a token or raises `TooManyRequests`; `refund(key)` gives one back (a
    check that succeeded, when only failures should count). Thread-safe."""

    def __init__(
        self,
        what: str,
        per_minute: float,
        burst: int,
        max_clients: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("a rate limiter needs per_minute > 0, burst >= 1, max_clients >= 1")
        self.what = what
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → tokens, t
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)

    def retry_after(self, key: str) -> float:
        """Seconds until `key` has a token again (0: it has one now)."""
        with self._lock:
            tokens = self._tokens(key, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            tokens = self._tokens(key, now)
            if tokens < 1:
                self._store(key, tokens, now)
                wait = (1 - tokens) / self.rate
                raise TooManyRequests(f"too many {self.what} from your address: try again in "
                                      f"{max(1, math.ceil(wait))} s", wait)
            self._store(key, tokens - 1, now)

    def refund(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            self._store(key, min(self.burst, self._tokens(key, now) + 1), now)


class HashGate:
    """At most `concurrency` slow hashes at once on the gate's own threads, at most `queue`
    more waiting; `await gate.run(fn, *args)` runs one or raises `Busy`. Use from the event
    loop (one loop per gate)."""

    def __init__(self, concurrency: int, queue: int, per_minute: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if concurrency < 1 or queue < 0:
            raise ValueError("a hash gate needs concurrency >= 1 and queue >= 0")
        self.concurrency = concurrency
        self.budget = RateLimiter("password checks", per_minute, HASH_BURST, 1, clock)
        self.limit = concurrency + queue
        self.inflight = 0  # running or waiting now
        self.peak = 0  # most ever running or waiting at once
        self.calls = 0  # hashes started (for tests and monitoring)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="argon2")
            return self._pool

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self.inflight >= self.limit:
            raise Busy("too many password checks at once: try again in a moment")
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            while (wait := self.budget.retry_after("all")) > 0:  # the global budget
                await asyncio.sleep(wait)
            self.budget.take("all")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor(), partial(self._call, fn, *args))
        finally:
            self.inflight -= 1

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        with self._pool_lock:  # on the gate's threads: counts hashes that actually ran
            self.calls += 1
        return fn(*args)

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


@dataclass(frozen=True)
class Guards:
    """The app's limiters and hashing gate, built from its settings."""

    requests: RateLimiter
    auth_failures: RateLimiter
    new_guests: RateLimiter
    new_accounts: RateLimiter
    hashing: HashGate

    @classmethod
    def of(cls, settings: Settings) -> Guards:
        clients = settings.rate_limit_clients
        return cls(
            requests=RateLimiter("requests", settings.requests_per_minute,
                                 settings.requests_burst, clients),
            auth_failures=RateLimiter("failed logins or admin keys",
                                      settings.auth_failures_per_minute,
                                      settings.auth_failures_burst, clients),
            new_guests=RateLimiter("new guest sessions", settings.new_guests_per_minute,
                                   settings.new_guests_burst, clients),
            new_accounts=RateLimiter("new accounts", settings.new_accounts_per_minute,
                                     settings.new_accounts_burst, clients),
            hashing=HashGate(settings.hash_concurrency, settings.hash_queue,
                             settings.hashes_per_minute),
        )


#: A refused request (429) is answered after this pause: a client that retries at once then
#: costs the server a couple of cheap answers a second, not thousands.
REFUSAL_PAUSE = 0.5
#: At most this many refusals wait out their pause at once; beyond, they are answered at once
#: (so pausing never holds an unbounded number of connections).
MAX_PAUSED = 256
#: Paths no request limit applies to when read (GET, HEAD): the page's and the docs' own files,
#: and item photos (a file each, cached by browsers for a day; one page of results shows
#: dozens). Writes to them (replacing a photo) are limited like every other request.
UNLIMITED_PREFIXES = ("/static/", "/docs-assets/")


def _unlimited(path: str) -> bool:
    return path.startswith(UNLIMITED_PREFIXES) or (
        path.startswith("/items/") and path.endswith("/image") and path.count("/") == 3
    )


class RequestLimitMiddleware:
    """Every client's requests, whatever they are, through one token bucket (`limiter`):
    beyond it the answer is 429 with Retry-After, given before any routing, parsing or
    database work."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter
        self.paused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            scope.get("method") in ("GET", "HEAD") and _unlimited(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        try:
            self.limiter.take(client_key(Request(scope)))
        except TooManyRequests as refused:
            if self.paused < MAX_PAUSED:
                self.paused += 1
                try:
                    await asyncio.sleep(REFUSAL_PAUSE)
                finally:
                    self.paused -= 1
            response = JSONResponse({"detail": refused.detail}, status_code=429,
                                    headers=refused.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
