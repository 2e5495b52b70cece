"""Helpers for the server's worker processes (searches, password hashing): they must not
outlive the server, and a Ctrl+C must not reach one while it is still starting.

Standard library only: worker processes import this before anything else."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["exit_with_parent", "is_alive", "sigint_held"]


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
