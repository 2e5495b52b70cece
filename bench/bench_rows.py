"""Issue 19: the per-row costs of the SQLite writer, apart from the rest of an ingest. On the
rows `bench_ray.py --writer-rows N` writes (the data set's rows repeated with new ids):

- reading the metadata file (`read_metadata`) and validating each row (`validate_row`): CPU
  seconds, and µs per row;
- `CatalogStore.add` in transactions of 64 (the ingest's `commit_every`), with vectors of the
  real model's size: CPU (user + system) per item, and the bytes written per item (`wchar` of
  /proc/self/io: the WAL and its checkpoints into the database file) beside the vector's size.

    .venv/bin/python bench/bench_rows.py --rows 100000
    .venv/bin/python bench/bench_rows.py --rows 20000 --store-only

Nothing is timed by wall clock alone: CPU seconds are the process's own, so a busy machine
changes them less than wall time (the load average is printed beside them).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_ray import writer_rows  # bench/ is the script's folder, first on the path
from lookalike.catalog.ingest import validate_row
from lookalike.catalog.metadata import read_metadata
from lookalike.catalog.schema import ItemIn
from lookalike.catalog.store import CatalogStore, NewItem

DIM = 2624  # the default model's vector size
COMMIT_ITEMS = 64


def written() -> int:
    """Bytes this process has written (to files, through the page cache) so far."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=Path("../shared/datasets/clothing-dataset"))
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--store-only", action="store_true", help="skip the validation figures")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rows-") as tmp:
        work = Path(tmp)
        rows_csv = writer_rows(args.dataset / "images.csv", args.rows, work)
        start = time.process_time()
        raw = list(read_metadata(rows_csv, {"label": "category"}))
        read = time.process_time() - start
        start = time.process_time()
        checked = [validate_row(r) for r in raw]
        validate = time.process_time() - start
        items = [i for i in checked if isinstance(i, ItemIn)]
        if not args.store_only:
            per_row = 1e6 / args.rows
            print(f"{args.rows:,} rows: read {read:.2f} s CPU ({read * per_row:.1f} µs/row), "
                  f"validate {validate:.2f} s CPU ({validate * per_row:.1f} µs/row), "
                  f"load {os.getloadavg()[0]:.1f}")
        new = [NewItem(str(i.id), i, i.image, hashlib.sha256(str(n).encode()).hexdigest(),
                       phash=n) for n, i in enumerate(items)]
        vectors = np.random.default_rng(0).standard_normal((len(new), DIM)).astype(np.float32)
        store = CatalogStore(work / "catalog.db")
        try:
            store.bind_model("bench", DIM)
            bytes0, cpu0, wall0 = written(), cpu(), time.perf_counter()
            for at in range(0, len(new), COMMIT_ITEMS):
                store.add(new[at:at + COMMIT_ITEMS], vectors[at:at + COMMIT_ITEMS])
            seconds, spent, wrote = time.perf_counter() - wall0, cpu() - cpu0, written() - bytes0
        finally:
            store.close()
        size = sum(f.stat().st_size for f in work.glob("catalog.db*"))
        n = len(new)
        print(f"store.add of {n:,} items: {spent / n * 1e6:.0f} µs CPU/item (user + system), "
              f"{n / seconds:.0f} items/s wall, {wrote / n / 1024:.1f} KB written/item for a "
              f"{DIM * 4 / 1024:.1f} KB vector ({size / n / 1024:.1f} KB/item on disk), "
              f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
