"""Run one piece of work in a forked child and measure it: wall and CPU time, and the peak
resident memory it added (the kernel's VmHWM, reset with /proc/self/clear_refs before the
work, minus VmRSS before it). Shared by the hostile tests and bench/bench_hostile_images.py.
A child that runs past `timeout` is killed and reported as a hang."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    out = {}
    with Path("/proc/self/status").open() as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def measure(work: Callable[[], str], timeout: float = 60.0) -> dict[str, Any]:
    """{"outcome", "wall", "cpu", "growth_mb", "peak_mb"} of `work()` run in a forked child
    (its return value is the outcome; an exception is reported as "CRASH ...")."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        try:
            Path("/proc/self/clear_refs").write_text("5")
            before = status()["VmRSS"]
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                outcome = work()
            except BaseException as exc:  # a crash is a finding: reported as such
                outcome = f"CRASH {type(exc).__name__}: {exc}"
            result = {
                "outcome": outcome,
                "wall": time.perf_counter() - t0,
                "cpu": time.process_time() - c0,
                "growth_mb": (status()["VmHWM"] - before) / 2**20,
                "peak_mb": status()["VmHWM"] / 2**20,
            }
            with os.fdopen(write_end, "w") as out:
                json.dump(result, out)
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    state = 0
    while True:
        done, state = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(read_end)
            return {"outcome": f"HANG (killed after {timeout:.0f} s)", "wall": timeout,
                    "cpu": timeout, "growth_mb": 0.0, "peak_mb": 0.0}
        time.sleep(0.002)
    with os.fdopen(read_end) as f:
        text = f.read()
    if not text:
        return {"outcome": f"DIED (wait status {state})", "wall": 0.0, "cpu": 0.0,
                "growth_mb": 0.0, "peak_mb": 0.0}
    result: dict[str, Any] = json.loads(text)
    return result
