"""Rate limits and the hashing gate (lookalike.api.ratelimit), with a clock moved by hand."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from starlette.requests import Request

from lookalike.api.ratelimit import Busy, HashGate, RateLimiter, TooManyRequests, client_key

T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread of its own: a session-wide Playwright browser (tests/e2e)
    keeps an event loop running in the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_429_with_retry_after_then_refills() -> None:
    clock = Clock()
    limiter = RateLimiter("failed logins", per_minute=6, burst=3, max_clients=10, clock=clock)
    for _ in range(3):
        limiter.take("1.2.3.4")
    with pytest.raises(TooManyRequests) as refused:
        limiter.take("1.2.3.4")
    assert refused.value.status_code == 429
    assert refused.value.headers == {"Retry-After": "10"}  # 6 a minute: one token per 10 s
    assert "failed logins" in refused.value.detail
    limiter.take("5.6.7.8")  # another client is not affected
    clock.now += 9.0
    assert limiter.retry_after("1.2.3.4") == pytest.approx(1.0)
    with pytest.raises(TooManyRequests):
        limiter.take("1.2.3.4")
    clock.now += 1.0
    limiter.take("1.2.3.4")
    clock.now += 3600
    for _ in range(3):  # refilled up to the burst, not beyond
        limiter.take("1.2.3.4")
    with pytest.raises(TooManyRequests):
        limiter.take("1.2.3.4")


def test_refund_gives_back_what_a_success_took() -> None:
    limiter = RateLimiter("x", per_minute=1, burst=2, max_clients=10, clock=Clock())
    for _ in range(10):
        limiter.take("a")
        limiter.refund("a")
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(TooManyRequests):
        limiter.take("a")


def test_the_limiter_remembers_at_most_max_clients() -> None:
    clock = Clock()
    limiter = RateLimiter("x", per_minute=1, burst=1, max_clients=100, clock=clock)
    for i in range(10_000):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100
    with pytest.raises(TooManyRequests):  # the most recent clients are still remembered
        limiter.take("10.0.39.15")


def _request(host: str) -> Request:
    return Request({"type": "http", "client": (host, 1234), "headers": []})


def test_client_key_groups_an_ipv6_subscriber_by_its_64() -> None:
    assert client_key(_request("203.0.113.7")) == "203.0.113.7"
    assert client_key(_request("2001:db8:1:2:aaaa::1")) == client_key(
        _request("2001:db8:1:2:ffff:ffff:ffff:ffff")) == "2001:db8:1:2::/64"
    assert client_key(_request("2001:db8:1:3::1")) != client_key(_request("2001:db8:1:2::1"))
    assert client_key(_request("::ffff:198.51.100.2")) == "198.51.100.2"
    assert client_key(_request("testclient")) == "testclient"


def test_the_hash_gate_runs_at_most_concurrency_at_once_and_refuses_past_its_queue() -> None:
    gate = HashGate(concurrency=2, queue=3, per_minute=6000)
    running = 0
    most = 0
    lock = threading.Lock()
    paired = threading.Event()  # two hashes ran at once

    def slow_hash(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            if running == 2:
                paired.set()
        # the first waits for the second however late a busy machine starts its thread (a
        # gate that ran one at a time would leave it waiting: `most` stays 1 and this fails)
        paired.wait(10)
        time.sleep(0.05)
        with lock:
            running -= 1
        return i

    async def burst() -> list[int | BaseException]:
        return await asyncio.gather(*(gate.run(slow_hash, i) for i in range(8)),
                                    return_exceptions=True)

    results = run_coroutine(burst())
    done = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert done == [0, 1, 2, 3, 4]  # two running + three waiting
    assert len(refused) == 3 and all(isinstance(r, Busy) for r in refused)
    assert all(r.status_code == 503 and r.headers == {"Retry-After": "1"}  # type: ignore[union-attr]
               for r in refused)
    assert most == 2 and gate.peak == 5 and gate.calls == 5 and gate.inflight == 0
    assert run_coroutine(gate.run(slow_hash, 9)) == 9  # free again afterwards
    gate.close()


def test_the_hash_gate_paces_all_clients_together() -> None:
    gate = HashGate(concurrency=2, queue=20, per_minute=600)  # 10 a second after a burst of 5

    async def ten() -> list[int]:
        return await asyncio.gather(*(gate.run(lambda i=i: i) for i in range(10)))

    started = time.monotonic()
    assert run_coroutine(ten()) == list(range(10))
    assert time.monotonic() - started >= 0.45  # five waited their turn: 0.1 s apart
    gate.close()
