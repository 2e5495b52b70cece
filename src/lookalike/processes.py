"""Helpers for the server's worker processes (searches, password hashing): they must not
outlive the server, a Ctrl+C must not reach one while it is still starting, and a worker that
allocates the same large block at every call can keep it instead of returning it each time.

Standard library only: worker processes import this before anything else."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["exit_with_parent", "is_alive", "keep_freed_memory", "return_freed_memory",
           "sigint_held"]


def exit_with_parent(parent: int) -> None:
    """Run in a daemon thread of a worker: exits the process once `parent` is gone, even a
    parent killed with SIGKILL (its pool can then no longer tell the worker to stop)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


@contextmanager
def sigint_held() -> Iterator[None]:
    """SIGINT blocked in this thread while it may spawn a worker process. The child inherits
    the mask, so a Ctrl+C that arrives while it is still importing (a second or two) stays
    pending until the worker has set SIGINT to ignored, which discards it; without this, that
    Ctrl+C ended the new process with a KeyboardInterrupt traceback."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def is_alive(pid: int) -> bool:
    """Whether process `pid` exists (one owned by another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _libc_function(name: str) -> Any:
    """Function `name` of the C library this process runs on (a ctypes function), or None
    where it has none (not glibc)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def return_freed_memory() -> bool:
    """Give the memory this process's C allocator holds free back to the system (glibc's
    `malloc_trim(0)`: the free top of every arena, and the free pages inside them). A
    long-running server whose threads allocate and free (request bodies, decoded photos,
    query results) otherwise keeps the holes its arenas are left with: measured on the server
    under bench_abuse, 16 MiB of its 250 MiB. Takes a few ms; safe with other threads running.
    Returns whether anything was given back (False, too, where there is no `malloc_trim`)."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make this process's C allocator keep the memory it frees, for a worker whose every call
    allocates and frees the same large block (argon2's 64 MiB). glibc serves a block that large
    with its own mmap and unmaps it on free, so the process's resident memory rose and fell by
    the block at each call; with this, the block comes from the heap (mmap off) and the heap's
    free top is never given back (no trim), so the block is faulted in once, reused by every
    later call, and the process stays at its peak. Call it first thing in the worker, from its
    main thread, in a process that does nothing else (every allocation is kept). Returns False
    where the C library has no `mallopt` (not glibc): nothing changes there."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # 2**31 - 1 bytes: the largest trim threshold an int holds, more than any worker frees
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
