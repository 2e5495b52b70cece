"""Issue 19: the embedded vector store's compaction, two ways side by side on the same files.

- `scratch`: the build from a stream of rows (`build_base`, what a rebuild from SQLite does and
  what a compaction did before): every row written to a temporary folder as it comes (quantised
  again), assigned to its nearest centre, then copied again in list order;
- `copy`: the compaction's build (`build_base_from`): the rows read where the current
  generation's files hold them, their int8 codes (and, with reused centres, lists) kept,
  written once in list order.

Two cases: `fresh`, a one-list catalog (base + tail) passing `exact_max_items` (k-means on a
sample, every row assigned), and `reuse`, an inverted-list catalog whose tail is folded in with
the same centres (between doublings). Synthetic unit vectors (random, the default 2,624-d) and
empty fields; files in a temporary folder. CPU seconds are the process's (every thread):
compare those, wall seconds are noisy on a shared machine.

    .venv/bin/python bench/bench_compaction.py --rows 100000
    .venv/bin/python bench/bench_compaction.py --rows 20000 --dim 512   # quicker
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lookalike import Settings
from lookalike.index.columns import FieldColumns, Vocabulary
from lookalike.index.mapped import FileState
from lookalike.index.segments import (
    Batch,
    Manifest,
    View,
    build_base,
    build_base_from,
    nearest_lists,
    open_view,
    sources_of_view,
    write_rows,
)
from lookalike.index.vector_store import Scalars

BATCH = 10_000
Built = tuple[Any, int, Any]


def synthetic(a: int, b: int, dim: int, vocab: Vocabulary) -> Batch:
    rng = np.random.default_rng(a)
    vectors = rng.standard_normal((b - a, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Batch(np.arange(a, b, dtype=np.int64), vectors,
                 FieldColumns.encode([Scalars()] * (b - a), vocab))


def view_of(folder: Path, generation: int, dim: int, base: int, tail: int, settings: Settings,
            centroids: np.ndarray | None = None) -> View:
    """Generation `generation`: a base of rows 0..base-1 (clustered when past
    `settings.exact_max_items`, with `centroids` when given) and a tail of the next `tail`."""
    vocab = Vocabulary()
    batches = (synthetic(a, min(base, a + BATCH), dim, vocab) for a in range(0, base, BATCH))
    states, lists, used = build_base(folder, generation, dim, batches, settings, centroids)
    tail_states: dict[str, FileState] = {}
    for a in range(base, base + tail, BATCH):
        batch = synthetic(a, min(base + tail, a + BATCH), dim, vocab)
        where = (np.zeros(len(batch.ids), dtype=np.int32) if used is None
                 else nearest_lists(batch.vectors, used))
        tail_states = write_rows(folder, f"g{generation}.tail", batch, tail_states,
                                 {"list": where})
    manifest = Manifest(dim=dim, generation=generation, lists=lists,
                        clustered=base if used is not None else 0, base=states,
                        tail=tail_states, vocab=vocab)
    return open_view(folder, manifest, None, verify=True)


def batches_of(view: View) -> Iterator[Batch]:
    """The view's rows (base, then tail), as a stream."""
    for rows in (view.base, view.tail):
        for a in range(0, len(rows), BATCH):
            at = np.arange(a, min(len(rows), a + BATCH), dtype=np.int64)
            yield Batch(np.asarray(rows.ids[at]), rows.rows(at), rows.columns.take(at))


def timed(label: str, build: Callable[[], Built]) -> tuple[Built, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    built = build()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"  {label:<8} {cpu:7.1f} s CPU {wall:7.1f} s wall  load {os.getloadavg()[0]:.1f}",
          flush=True)
    return built, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows after the compaction")
    ap.add_argument("--dim", type=int, default=2624)
    ap.add_argument("--tail", type=float, default=0.1, help="tail rows / base rows")
    ap.add_argument("--cases", default="fresh,reuse")
    args = ap.parse_args()
    base = round(args.rows / (1 + args.tail))
    tail = args.rows - base
    print(f"{args.rows} rows ({base} base + {tail} tail), {args.dim}-d, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-compaction-") as tmp:
        folder = Path(tmp)
        for case in args.cases.split(","):
            if case == "fresh":  # one list, passing exact_max_items: k-means
                flat = Settings(catalog_dir=folder, exact_max_items=args.rows)
                view = view_of(folder, 1, args.dim, base, tail, flat)
                settings = Settings(catalog_dir=folder, exact_max_items=args.rows // 2)
                centroids = None
            else:  # inverted lists, the same centres
                settings = Settings(catalog_dir=folder, exact_max_items=base // 2)
                view = view_of(folder, 1, args.dim, base, tail, settings)
                centroids = view.centroids
            print(f"{case}: {view.manifest.lists} lists before", flush=True)
            scratch, s_cpu = timed("scratch", partial(
                build_base, folder, 2, args.dim, batches_of(view), settings, centroids))
            copy, c_cpu = timed("copy", partial(
                build_base_from, folder, 3, args.dim, sources_of_view(folder, view, None),
                settings, centroids))
            print(f"  copy / scratch CPU: {c_cpu / s_cpu:.2f}; same files (CRC-32 of each): "
                  f"{scratch[0] == copy[0]}; {copy[1]} lists", flush=True)
            for path in folder.glob("g*.*"):
                path.unlink()


if __name__ == "__main__":
    main()
