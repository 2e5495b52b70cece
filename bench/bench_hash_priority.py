"""How much a flood of password checks delays CPU work of normal priority, with argon2 in
threads of the server process (as before) against argon2 in nice-19 worker processes
(`WorkerHasher`, what the server does now). Side by side in one run, phases interleaved.

    .venv/bin/python bench/bench_hash_priority.py                 # 3 rounds of 3 phases x 15 s
    .venv/bin/python bench/bench_hash_priority.py --rounds 1 --seconds 10

"Searches" are stand-ins: one process per core (like the server's search processes), each
repeating ~20 ms of pure-Python CPU work with a pause between, timing each piece. The flood is
wrong passwords sent as fast as the server's `HashGate` (default settings: 2 at once, 60 a
minute after a burst of 5) lets them through. Printed per phase: the work's p50 / p99 and the
p99 ratio to the quiet phase. The machine's other load counts: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from multiprocessing.synchronize import Event

from lookalike.api.ratelimit import Busy, HashGate
from lookalike.config import Settings
from lookalike.passwords import Hasher, WorkerHasher

WORK = 200_000  # loop iterations: ~20 ms of CPU on the reference VM


def searcher(stop: Event, out: multiprocessing.SimpleQueue[list[float]]) -> None:
    times = []
    while not stop.is_set():
        start = time.perf_counter()
        total = 0
        for i in range(WORK):
            total += i * i
        times.append(time.perf_counter() - start)
        time.sleep(0.03)
    out.put(times)


async def flood(gate: HashGate, hasher: Hasher, hashed: str, seconds: float) -> int:
    end = time.monotonic() + seconds
    done = 0

    async def one() -> None:
        nonlocal done
        try:
            await gate.run(hasher.verify, hashed, "a-wrong-password")
            done += 1
        except Busy:
            await asyncio.sleep(0.1)

    while time.monotonic() < end:
        tasks = [asyncio.create_task(one()) for _ in range(8)]
        await asyncio.wait(tasks, timeout=max(0.0, end - time.monotonic()))
        for t in tasks:
            t.cancel()
    return done


def phase(name: str, hasher: Hasher | None, hashed: str, seconds: float) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    out: multiprocessing.SimpleQueue[list[float]] = ctx.SimpleQueue()
    procs = [ctx.Process(target=searcher, args=(stop, out)) for _ in range(os.cpu_count() or 1)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # started
    hashes = 0
    if hasher is None:
        time.sleep(seconds)
    else:
        s = Settings()
        gate = HashGate(s.hash_concurrency, s.hash_queue, s.hashes_per_minute)
        hashes = asyncio.run(flood(gate, hasher, hashed, seconds))
        gate.close()
    stop.set()
    times = [t for _ in procs for t in out.get()]
    for p in procs:
        p.join()
    times.sort()
    p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
    print(f"  {name:<22} {len(times):5d} pieces, p50 {p50 * 1000:6.1f} ms, "
          f"p99 {p99 * 1000:6.1f} ms, {hashes} hashes", flush=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    args = ap.parse_args()
    local, workers = Hasher(), WorkerHasher(Settings().hash_concurrency)
    hashed = local.hash("the-right-password")
    workers.worker_pid()  # started before the timing
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} (a shared machine is noisy)")
    results: dict[str, list[float]] = {"quiet": [], "argon2 in threads": [],
                                       "argon2 in nice-19 procs": []}
    try:
        for r in range(args.rounds):
            print(f"round {r + 1}:")
            for name, hasher in zip(results, (None, local, workers), strict=True):
                results[name] += phase(name, hasher, hashed, args.seconds)
    finally:
        workers.close()
    print(f"all rounds (load now {os.getloadavg()[0]:.2f}):")
    base = 0.0
    for name, times in results.items():
        times.sort()
        p99 = times[int(len(times) * 0.99)]
        base = base or p99
        print(f"  {name:<22} p50 {times[len(times) // 2] * 1000:6.1f} ms, p99 "
              f"{p99 * 1000:6.1f} ms, p99 / quiet p99 {p99 / base:.2f}")


if __name__ == "__main__":
    main()
