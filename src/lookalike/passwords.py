"""argon2 hashing of passwords and admin keys, in the calling thread or in worker processes.

* `Hasher`: `hash`, `verify` and `needs_rehash` with argon2-cffi's defaults (argon2id,
  ~64 MiB and ~0.2 s of CPU per hash), in the calling thread.
* `WorkerHasher`: the same answers, with `hash` and `verify` computed in `workers` separate
  processes at the lowest CPU priority (nice 19). A server's searches then get the cores first
  and a burst of password checks (wrong admin keys, failed logins) only uses what they leave;
  the hash's 64 MiB is taken in the worker, not in the server. A worker takes those 64 MiB at
  its first hash and keeps them for the next ones (`keep_freed_memory`): its resident memory
  is flat at ~80 MiB instead of swinging between ~16 and ~80 MiB at every hash, so the
  server's memory is what it needs at its peak, all the time, and a leak shows as a leak. The
  processes start at the first hash (a process that never checks a password starts none), stop
  with `close()` or when the process that made them dies (even by SIGKILL); a worker that dies
  is replaced and the call it was running is retried once in a fresh one.

This module imports only argon2 and the standard library: it is what a worker process loads.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lookalike.processes import exit_with_parent, keep_freed_memory, sigint_held

__all__ = ["NICENESS", "Hasher", "WorkerHasher"]

T = TypeVar("T")

#: CPU priority of the worker processes (Unix nice value: 19 is the lowest).
NICENESS = 19

_argon2 = PasswordHasher()


def _hash(secret: str) -> str:
    return _argon2.hash(secret)


def _verify(hashed: str, secret: str) -> bool:
    try:
        return _argon2.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


class Hasher:
    """argon2 in the calling thread (slow and memory-hungry on purpose: callers bound how many
    run at once)."""

    def hash(self, secret: str) -> str:
        """A new salted hash of `secret`."""
        return _hash(secret)

    def verify(self, hashed: str, secret: str) -> bool:
        """Whether `secret` matches `hashed` (False for a wrong secret or a malformed hash)."""
        return _verify(hashed, secret)

    def needs_rehash(self, hashed: str) -> bool:
        """Whether `hashed` was made with other parameters than today's (cheap: no hashing)."""
        return _argon2.check_needs_rehash(hashed)

    def close(self) -> None:
        """Release what the hasher holds (nothing here)."""


def _start_worker(parent: int) -> None:
    """In a new worker process: lowest priority, no Ctrl+C of its own (the process group's
    SIGINT is for the server, which then shuts the pool down), gone with its parent, the
    hash's memory kept from one hash to the next."""
    keep_freed_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the spawn
    os.nice(NICENESS)
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()


def _pid() -> int:
    return os.getpid()


class WorkerHasher(Hasher):
    """`Hasher` whose `hash` and `verify` run in `workers` low-priority processes (see the
    module). Thread-safe; each call blocks its thread (not the interpreter) until done."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("a worker hasher needs workers >= 1")
        self.workers = workers
        self.restarts = 0  # pools replaced after a worker died (for tests and monitoring)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker, initargs=(os.getpid(),),
                )
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
                self.restarts += 1
        pool.shutdown(wait=False, cancel_futures=True)

    def _once(self, fn: Callable[..., T], *args: object) -> T:
        pool = self._executor()
        try:
            with sigint_held():  # this submit may start a process
                future = pool.submit(fn, *args)
            return future.result()
        except BrokenProcessPool:  # a worker died (killed, out of memory): start afresh
            self._discard(pool)
            raise

    def _run(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return self._once(fn, *args)
        except BrokenProcessPool:
            return self._once(fn, *args)  # once more, in the fresh pool

    def hash(self, secret: str) -> str:
        return self._run(_hash, secret)

    def verify(self, hashed: str, secret: str) -> bool:
        return self._run(_verify, hashed, secret)

    def worker_pid(self) -> int:
        """The process id of a worker (starting one if none runs)."""
        return self._run(_pid)

    def close(self) -> None:
        """Stop the workers (waiting for a hash under way); a later call starts new ones."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
