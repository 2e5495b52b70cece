"""argon2 in the calling thread (`Hasher`) and in low-priority worker processes
(`WorkerHasher`): the same answers, the worker's priority, its memory flat from one hash to
the next, a killed worker replaced, `close` leaving no process behind. Real argon2, real
processes."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from lookalike.passwords import NICENESS, Hasher, WorkerHasher
from procfs import alive, gone_within, resident_kib

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(),
                                reason="reads processes from /proc (Linux)")

OWN_NICENESS = os.getpriority(os.PRIO_PROCESS, 0)  # this process's, before any worker


@pytest.fixture
def worker() -> Iterator[WorkerHasher]:
    hasher = WorkerHasher(1)
    yield hasher
    hasher.close()


def test_worker_and_local_hashes_verify_each_other(worker: WorkerHasher) -> None:
    local = Hasher()
    from_worker = worker.hash("s3cret-pass")
    from_here = local.hash("s3cret-pass")
    assert from_worker != from_here  # salted
    for hashed in (from_worker, from_here):
        assert worker.verify(hashed, "s3cret-pass") and local.verify(hashed, "s3cret-pass")
        assert not worker.verify(hashed, "s3cret-pasS")
        assert not local.verify(hashed, "s3cret-pasS")
    assert not worker.verify("not an argon2 hash", "x")  # malformed: a plain no
    assert not worker.needs_rehash(from_worker)


def test_hashes_run_in_another_process_at_the_lowest_priority(worker: WorkerHasher) -> None:
    pid = worker.worker_pid()
    assert pid != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, pid) == NICENESS == 19
    # this process is untouched (compared with its own start: `nice -n 19 pytest` is at 19)
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == OWN_NICENESS


def test_a_worker_keeps_the_hash_memory_from_one_hash_to_the_next(worker: WorkerHasher) -> None:
    """Without keeping it, glibc unmapped argon2's 64 MiB after each hash: the worker's RSS
    fell back to ~9 MiB of anonymous memory between hashes and rose again at the next, a swing
    of 64 MiB per worker in every measure of the server's memory."""
    block_kib = PasswordHasher().memory_cost  # argon2's memory per hash, KiB (65536)
    hashed = worker.hash("a-password-to-check")
    pid = worker.worker_pid()
    between = []
    for attempt in range(4):
        assert not worker.verify(hashed, f"wrong-{attempt}")
        between.append(resident_kib(pid))
    assert min(between) >= block_kib  # kept after each hash, not given back
    assert max(between) - min(between) < 4096  # and reused: no second block, no growth


def test_a_killed_worker_is_replaced_and_checks_go_on(worker: WorkerHasher) -> None:
    hashed = worker.hash("right-password")
    first = worker.worker_pid()
    os.kill(first, signal.SIGKILL)
    assert gone_within(first, 10)
    assert worker.verify(hashed, "right-password")  # the call retried in a fresh worker
    assert not worker.verify(hashed, "wrong-password")
    assert worker.restarts == 1
    second = worker.worker_pid()
    assert second != first and alive(second)


def test_close_stops_the_worker_and_a_later_call_starts_another() -> None:
    hasher = WorkerHasher(1)
    pid = hasher.worker_pid()
    hasher.close()
    assert gone_within(pid, 10)
    try:
        assert hasher.verify(hasher.hash("again-a-password"), "again-a-password")
        assert hasher.worker_pid() != pid
    finally:
        hasher.close()


def test_a_worker_hasher_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="workers >= 1"):
        WorkerHasher(0)
