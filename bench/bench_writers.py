"""Issue 18/19: how fast each metadata store's writer stores items (rows + vectors), alone.

    .venv/bin/python bench/bench_writers.py             # 20,000 items, 2,624-d, batches of 64
    .venv/bin/python bench/bench_writers.py --items 5000 --dim 512 --batch 256
    .venv/bin/python bench/bench_writers.py --pg-url postgresql://me@db:5432/shop   # your server

What is timed: `CatalogStore.add` — the writer of `lookalike ingest` and of every item added
through the API — on items prepared beforehand (validated fields, predicted tags and a unit
vector each): no image decoding, no model, just the database's side, in transactions of
`--batch` items (Settings.commit_every, 64 by default), one writer. Each run writes a new,
empty catalog; the stores take turns (`--rounds`, alternating), and the best and median
rounds are printed, with the items per second and the ratio to the target.

Stores:
* sqlite — the catalog folder's file, as lookalike opens it (WAL, synchronous=NORMAL: a commit
  is durable against a crash of the process, a power cut may lose the last ones);
* postgresql — a local PostgreSQL 15 with its own defaults (fsync on, synchronous commits:
  each commit waits for its WAL flush), started in a temporary folder (or `--pg-url`);
* postgresql, synchronous_commit=off — the same server, each commit not waiting for the
  flush (SQLite's NORMAL trade: the last commits may be lost by a crash of the server's
  machine, never corrupted).

Beside the wall-clock rate, the CPU each item costs: the writing process's, plus (for a server
this script started) the PostgreSQL server's processes'. On a shared machine the wall clock
mostly measures the other jobs; CPU per item says what the writer would sustain on cores of its
own (1 / CPU per item, ignoring waits for the disk).

Target (issue 19): a store's writer sustains 10x one node's encode rate, about 3,000 items/s.
Timings on a shared 2-core machine are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike.catalog.database import postgres_target
from lookalike.catalog.schema import ItemFields, Tag
from lookalike.catalog.store import CatalogStore, NewItem
from lookalike.servers import PostgresServer

TARGET = 3000.0
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int | None) -> float:
    """CPU seconds of process `root` and its descendants, exited children included (0 for
    None)."""
    if root is None:
        return 0.0
    procs: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            procs[int(entry.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        seen.add(pid)
        total += procs.get(pid, (0, 0))[1]
        todo += [c for c, (parent, _) in procs.items() if parent == pid and c not in seen]
    return total / TICK
CATEGORIES = ("Dress", "Shoes", "T-Shirt", "Pants", "Coat", "Skirt")


def prepare(n: int, dim: int, run: int) -> tuple[list[NewItem], np.ndarray]:
    rng = np.random.default_rng(run)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = []
    for i in range(n):
        fields = ItemFields(
            title=f"A garment number {i}", category=CATEGORIES[i % 6], brand=f"Brand {i % 97}",
            price=round(5 + (i * 37 % 9500) / 100, 2), currency="EUR",
            sizes=["S", "M", "L"][: 1 + i % 3], second_hand=i % 4 == 0,
            sustainability=(i % 50) / 10, extra={"pattern": "plain", "sender_id": str(i % 13)},
        )
        predicted = {"colour": Tag(value="red", confidence=0.81),
                     "palette": Tag(value="red:0.62 white:0.30 black:0.08", confidence=1.0)}
        items.append(NewItem(f"r{run}-{i:07d}", fields, f"/photos/{run}/{i:07d}.jpg",
                             f"{run:04d}{i:060d}", predicted))
    return items, vectors


def write(store: CatalogStore, items: list[NewItem], vectors: np.ndarray, batch: int) -> float:
    """Seconds to add every item in transactions of `batch`."""
    store.bind_model("bench", vectors.shape[1])
    started = time.perf_counter()
    for i in range(0, len(items), batch):
        store.add(items[i : i + batch], vectors[i : i + batch])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=2624, help="2,624: the default model's")
    parser.add_argument("--batch", type=int, default=64, help="items per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", help="an existing PostgreSQL server (default: start one)")
    args = parser.parse_args()

    server = None
    url = args.pg_url
    postmaster = None
    if url is None:
        server = PostgresServer(durable=True).start()
        url = server.url
        postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    sep = "&" if "?" in url else "?"
    stores = {
        "sqlite": None,
        "postgresql": url,
        "postgresql, synchronous_commit=off": f"{url}{sep}options=-csynchronous_commit%3Doff",
    }
    seconds: dict[str, list[float]] = {name: [] for name in stores}
    cpu: dict[str, list[float]] = {name: [] for name in stores}
    print(f"{args.items:,} items of {args.dim}-d vectors, transactions of {args.batch}, "
          f"{args.rounds} rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          f"cores", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-writers-") as tmp:
            for run in range(args.rounds):
                items, vectors = prepare(args.items, args.dim, run)
                for name, database in stores.items():
                    folder = Path(tmp) / f"{run}-{len(seconds[name])}-{name[:6]}"
                    where = (folder / "catalog.sqlite" if database is None else
                             postgres_target(database + f"{'&' if '?' in database else '?'}"
                                             f"schema=bench_{run}_{list(stores).index(name)}",
                                             folder))
                    store = CatalogStore(where)
                    server_pid = None if isinstance(where, Path) else postmaster
                    cpu_before = time.process_time() + tree_cpu(server_pid)
                    try:
                        took = write(store, items, vectors, args.batch)
                        cpu[name].append(time.process_time() + tree_cpu(server_pid)
                                         - cpu_before)
                    finally:
                        if not isinstance(where, Path):  # leave the server as it was
                            with store.connection() as conn:
                                conn.execute(f'DROP SCHEMA "{where.schema}" CASCADE')
                        store.close()
                    seconds[name].append(took)
                    print(f"  round {run + 1} {name}: {args.items / took:,.0f} items/s, "
                          f"{1e3 * cpu[name][-1] / args.items:.3f} ms CPU per item", flush=True)
    finally:
        if server is not None:
            server.stop()
    print(f"\n{'store':<38} {'best/s':>8} {'median/s':>9} {'vs 3,000':>8}  "
          f"{'CPU ms/item':>11} {'per CPU-s':>9} {'vs 3,000':>8}")
    for name, runs in seconds.items():
        best, median = args.items / min(runs), args.items / statistics.median(runs)
        per_item = statistics.median(cpu[name]) / args.items
        capacity = 1 / per_item if per_item > 0 else float("inf")
        print(f"{name:<38} {best:>8,.0f} {median:>9,.0f} {median / TARGET:>7.1f}x  "
              f"{1e3 * per_item:>11.3f} {capacity:>9,.0f} {capacity / TARGET:>7.1f}x")
    lite = statistics.median(seconds["sqlite"])
    for name in list(stores)[1:]:
        print(f"sqlite / {name}: {statistics.median(seconds[name]) / lite:.2f}x the time")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
