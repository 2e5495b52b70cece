"""CPU-bound work of the server (decode, encode, search) off the event loop.

Two ways, chosen by `Settings.search_processes`:

* threads (0): library calls run in worker threads of the server process, at most one per
  core at once. Simple, one copy of the index; but the event loop (HTTP parsing, FastAPI's
  dependency solving, JSON) and the searches' own Python share one interpreter lock, and on a
  busy 2-core server the machine then ran only ~1.64 of its 2 cores (measured), the rest waiting.
* processes (N > 0): searches run in N spawned processes, each with its own catalog handle
  (model, index, SQLite connection) kept in step with SQLite by `Catalog.refresh`; the server
  process only speaks HTTP. Work is queued, not tied to connections, so the processes share
  the load evenly whatever the clients do. Costs one model copy per process; the catalog's
  vector files are memory-mapped, one copy for all of them (lookalike.index.embedded).

Writes (adding an uploaded item) always run in the server process, whose catalog is the one
the app was built with; the search processes see them at their next search.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import TypeVar

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from lookalike.catalog import Catalog
from lookalike.config import Settings
from lookalike.processes import exit_with_parent, sigint_held

T = TypeVar("T")

#: The catalog of a search process (set once by `_open_worker` when the process starts).
_worker_catalog: Catalog | None = None


def _started() -> int:
    time.sleep(0.1)  # long enough that a started process does not take every task of a round
    return os.getpid()


def _open_worker(settings: Settings, parent: int) -> None:
    global _worker_catalog  # one per spawned process: that process's own state, nothing shared
    # Ctrl+C reaches the whole process group: the server shuts its pool down, the workers wait
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the spawn
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()
    _worker_catalog = Catalog.open(settings)
    _worker_catalog.encoder.dim  # load the model now, not during the first search  # noqa: B018


def _in_worker(fn: Callable[..., T], *args: object) -> T:
    if _worker_catalog is None:
        raise RuntimeError("search process used before it opened its catalog")
    return fn(_worker_catalog, *args)


class CpuRunner:
    """Runs CPU-bound library calls off the event loop: `await cpu(fn, *args)` in a thread of
    this process (at most `slots` at once), `await cpu.search(fn, *args)` → `fn(catalog, *args)`
    in a search process when there are some, else like `cpu(fn, catalog, *args)`.

    Measured on 2 cores: 16 concurrent searches in the thread pool gave 18 requests/s against
    43 for one at a time (threads fighting over the cores), so work queues here instead. A
    thread semaphore, not an event-loop object, so it works whatever loop runs the app."""

    def __init__(self, catalog: Catalog, slots: int, processes: int = 0) -> None:
        self.catalog = catalog
        self.slots = slots
        self._gate = threading.BoundedSemaphore(slots)
        self.processes = processes
        self._pool = self._new_pool() if processes else None
        self._replacing = threading.Lock()

    def _new_pool(self) -> ProcessPoolExecutor:
        # each process searches with one ONNX thread (the processes are the parallelism) and
        # never writes, so it loads no taggers
        settings = self.catalog.settings.model_copy(
            update={"intra_op_threads": 1, "auto_tag": False}
        )
        return ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_open_worker, initargs=(settings, os.getpid()),
        )

    def start(self, timeout: float = 120.0) -> None:
        """Start the search processes now (each loads the model), not at the first request;
        returns once every one of them has answered (or after `timeout` seconds)."""
        if self._pool is None:
            return
        answered: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(answered) < self.processes and time.monotonic() < deadline:
            with sigint_held():
                futures = [self._pool.submit(_started) for _ in range(self.processes)]
            answered.update(f.result() for f in futures)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def _run(self, fn: Callable[[], T]) -> T:
        with self._gate:
            return fn()

    async def __call__(self, fn: Callable[..., T], *args: object) -> T:
        return await run_in_threadpool(self._run, partial(fn, *args))

    async def search(self, fn: Callable[..., T], *args: object) -> T:
        if self._pool is None:
            return await self(fn, self.catalog, *args)
        pool = self._pool
        try:
            with sigint_held():  # this submit may start a process (the first, or a new pool's)
                future = asyncio.get_running_loop().run_in_executor(
                    pool, partial(_in_worker, fn, *args)
                )
            return await future
        except BrokenProcessPool:
            # A search process died (killed, out of memory, a crash in native code): start
            # fresh ones so the server keeps answering, and say so for this request.
            with self._replacing:
                if self._pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._new_pool()
            raise HTTPException(
                503, "a search process stopped while handling this request; it has been "
                "restarted, try again"
            ) from None


def serving_processes(settings: Settings) -> int:
    """Search processes for a standalone server: as set, else one per core on 2+ cores."""
    if settings.search_processes is not None:
        return settings.search_processes
    cores = os.cpu_count() or 1
    return cores if cores > 1 else 0


def cpu_runner(catalog: Catalog, settings: Settings) -> CpuRunner:
    cores = os.cpu_count() or 1
    return CpuRunner(catalog, settings.search_concurrency or cores, settings.search_processes or 0)
