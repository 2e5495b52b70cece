"""Issue 19: the embedded vector store's compaction, two ways side by side on the same files.

- `scratch`: the build from a stream of rows (`build_base`, what a rebuild from SQLite does and
  what a compaction did before): every row written to a temporary folder as it comes (quantised
  again), assigned to its nearest centre, then copied again in list order;
- `copy`: the compaction's build (`build_base_from`): the rows read where the current
  generation's files hold them, their int8 codes (and, with reused centres, lists) kept,
  written once in list order.

Two cases: `fresh`, a one-list catalog (base + tail) passing `exact_max_items` (k-means on a
sample, every row assigned), and `reuse`, an inverted-list catalog whose tail is folded in with
the same centres (between clusterings). With 256 lists or more (`segments.TWO_LEVEL_FROM`) the
base is clustered in two levels, its rows' lists the nearest of their group's, while `scratch`
with reused centres assigns every row to its nearest centre of all: the files then differ.
Synthetic unit vectors (random, the default 2,624-d) and
empty fields; files in a temporary folder. CPU seconds are the process's (every thread):
compare those, wall seconds are noisy on a shared machine.

    .venv/bin/python bench/bench_compaction.py --rows 100000
    .venv/bin/python bench/bench_compaction.py --rows 20000 --dim 512   # quicker

`--grow START,STOP,...` (issue 19, growing lists): a catalog of START rows clustered afresh
grows to each STOP by ingests adding `--step` times its size each (the rows written to the
tail with their nearest list, then one compaction), under the old policy (one flat k-means
and every row assigned again each time the catalog doubled) and the new one (lists past
twice the mean size split by a k-means of their own rows, the centres kept until the catalog
has grown eightfold, a fresh clustering of 256+ lists in two levels), one after the other in
one run: CPU per item added of the writes and of the compactions, per stretch. Then recall@10
and p50 of 200 queries (fresh items of the same world), unfiltered, 10 % and 1 % filters, on
each grown catalog and on a fresh clustering (old and new) of the same rows. Vectors: the
synthetic clustered world of `lookalike.evaluation.synthetic` (20 categories of 50 styles).

    .venv/bin/python bench/bench_compaction.py --grow 100000,300000 --dim 2624
    .venv/bin/python bench/bench_compaction.py --grow 100000,300000,1000000 --dim 512

`--fresh SIZES`: a one-list catalog of each size clustered afresh (what the compaction ending a
first ingest into an empty catalog does), old and new, side by side: CPU per row.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np

from bench_scale import recall
from lookalike import Filters, Settings
from lookalike.evaluation.synthetic import CATEGORIES, SyntheticCatalog
from lookalike.index import embedded, segments
from lookalike.index.columns import FieldColumns, Vocabulary
from lookalike.index.embedded import EmbeddedStore, keeps_centres
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
    stamp,
    write_rows,
)
from lookalike.index.vector_store import Scalars, VectorSource

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


# -- growing a catalog: the old policy and the new ------------------------------------------

#: (SPLIT_AT, TWO_LEVEL_FROM, RECLUSTER_GROWTH) of each policy
POLICIES = {"old": (0.0, 1 << 62, 2), "new": (segments.SPLIT_AT, segments.TWO_LEVEL_FROM,
                                              embedded.RECLUSTER_GROWTH)}
FILTERS = {"none": None,
           "10%": Filters(category=list(CATEGORIES[:2])),
           "1%": Filters(category=list(CATEGORIES[:1]), price_max=20.0)}
K = 10


@contextlib.contextmanager
def policy(name: str) -> Iterator[None]:
    saved = segments.SPLIT_AT, segments.TWO_LEVEL_FROM, embedded.RECLUSTER_GROWTH
    segments.SPLIT_AT, segments.TWO_LEVEL_FROM, embedded.RECLUSTER_GROWTH = POLICIES[name]
    try:
        yield
    finally:
        segments.SPLIT_AT, segments.TWO_LEVEL_FROM, embedded.RECLUSTER_GROWTH = saved


def world_rows(a: int, b: int, dim: int, vocab: Vocabulary) -> Batch:
    """Rows a..b-1 of the clustered world: a category (of 20) each, a price in 0..100."""
    vectors, style = SyntheticCatalog(dim).vectors(b - a, seed=a)
    price = np.random.default_rng([a, 1]).uniform(0, 100, b - a)
    scalars = [Scalars(category=CATEGORIES[s // 50], price=float(p))
               for s, p in zip(style.tolist(), price.tolist(), strict=True)]
    return Batch(np.arange(a, b, dtype=np.int64), vectors, FieldColumns.encode(scalars, vocab))


def switch(folder: Path, manifest: Manifest) -> View:
    """What the store's `_switch` does with the files: stamp, map, delete older ones."""
    stamp(folder, manifest)
    view = open_view(folder, manifest, None)
    for path in folder.glob("g*.*"):
        if not path.name.startswith(f"g{manifest.generation}."):
            path.unlink()
    return view


def compact(folder: Path, view: View, settings: Settings) -> tuple[View, bool]:
    """The store's `_compact` of the view (no rows dead): True when it clustered afresh."""
    m = view.manifest
    keep = keeps_centres(m, view.live, settings)
    gen = m.generation + 1
    states, lists, used = build_base_from(folder, gen, m.dim, sources_of_view(folder, view, None),
                                          settings, view.centroids if keep else None)
    clustered = m.clustered if keep else (states["ids"].rows if used is not None else 0)
    manifest = Manifest(dim=m.dim, generation=gen, lists=lists, clustered=clustered,
                        base=states, vocab=m.vocab)
    return switch(folder, manifest), not keep


def grow(folder: Path, dim: int, sizes: list[int], step: float, settings: Settings,
         label: str) -> View:
    """A catalog of sizes[0] rows clustered afresh, grown to each further size; prints CPU
    per item added of the writes (tail rows and their nearest lists) and compactions."""
    vocab = Vocabulary()
    c0 = time.process_time()
    batches = (world_rows(a, min(sizes[0], a + BATCH), dim, vocab)
               for a in range(0, sizes[0], BATCH))
    states, lists, _ = build_base(folder, 1, dim, batches, settings, None)
    view = switch(folder, Manifest(dim=dim, generation=1, lists=lists, clustered=sizes[0],
                                   base=states, vocab=vocab))
    print(f"  {label}: {sizes[0]} rows, {lists} lists ({time.process_time() - c0:.0f} s CPU "
          "with the rows made)", flush=True)
    n = sizes[0]
    for stop in sizes[1:]:
        writes = compactions = 0.0
        start, fresh = n, 0
        while n < stop:
            add = min(stop - n, max(BATCH, round(step * n)))
            new = [world_rows(a, min(n + add, a + BATCH), dim, vocab)
                   for a in range(n, n + add, BATCH)]
            t = time.process_time()
            m = view.manifest
            tail = dict(m.tail)
            for batch in new:
                where = view.lists_of(batch.vectors)  # as the store's tail rows
                tail = write_rows(folder, f"g{m.generation}.tail", batch, tail, {"list": where})
            view = open_view(folder, replace(m, tail=tail, vocab=vocab), view)
            t1 = time.process_time()
            view, afresh = compact(folder, view, settings)
            t2 = time.process_time()
            writes += t1 - t
            compactions += t2 - t1
            fresh += afresh
            n += add
            print(f"    {n:>9} rows {view.manifest.lists:>5} lists  write {t1 - t:6.1f} s  "
                  f"compact {t2 - t1:6.1f} s CPU{'  (clustered afresh)' if afresh else ''}  "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
        per = 1e3 / (n - start)
        print(f"  {label} {start}->{stop}: per item added {writes * per:.3f} ms write + "
              f"{compactions * per:.3f} ms compaction = {(writes + compactions) * per:.3f} ms "
              f"CPU; {fresh} fresh clusterings; {view.manifest.lists} lists at the end",
              flush=True)
    return view


def truth_of(view: View, store: EmbeddedStore, queries: np.ndarray) -> dict[str, np.ndarray]:
    """Exact top K ids per query and filter (every live row scored in float32)."""
    out = {}
    for name, filters in FILTERS.items():
        kept = store._selection(view, filters, None, None)
        slots = np.arange(view.slots, dtype=np.int64) if kept is None else kept
        best_s = np.full((len(queries), K), -np.inf, np.float32)
        best_i = np.full((len(queries), K), -1, np.int64)
        for a in range(0, len(slots), 100_000):
            at = slots[a : a + 100_000]
            s = queries @ np.asarray(view.rows_at(at)).T
            both_s = np.concatenate([best_s, s], axis=1)
            both_i = np.concatenate([best_i, np.broadcast_to(at, s.shape)], axis=1)
            top = np.argsort(-both_s, axis=1, kind="stable")[:, :K]
            best_s = np.take_along_axis(both_s, top, 1)
            best_i = np.take_along_axis(both_i, top, 1)
        out[name] = np.asarray(view.base.ids)[best_i]
    return out


def searched(folder: Path, view: View, settings: Settings, queries: np.ndarray,
             truth: dict[str, np.ndarray] | None, label: str) -> dict[str, np.ndarray]:
    """Recall@K and p50 (wall, CPU) of one query at a time on `view` (no tail: a compaction's);
    returns the truth computed when not given."""
    store = EmbeddedStore(folder.parent, view.manifest.dim, cast(VectorSource, None), settings)
    store._view = view
    truth = truth if truth is not None else truth_of(view, store, queries)
    parts = []
    for name, filters in FILTERS.items():
        got = np.full((len(queries), K), -1, np.int64)
        wall, cpu = [], []
        for j, q in enumerate(queries):
            t, c = time.perf_counter(), time.process_time()
            got[j] = store.search(q[None], K, filters).ids[0]
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        parts.append(f"{name} R@10 {recall(truth[name], got):.3f} p50 "
                     f"{np.median(wall) * 1e3:.2f} / cpu {np.median(cpu) * 1e3:.2f} ms")
    print(f"  {label:<28} {view.manifest.lists:>5} lists  " + "  |  ".join(parts)
          + f"  load {os.getloadavg()[0]:.1f}", flush=True)
    return truth


def fresh_both(sizes: list[int], dim: int) -> None:
    """A one-list catalog of each size clustered afresh (the compaction ending a first ingest
    past `exact_max_items`), old policy and new, side by side: CPU per row."""
    print(f"fresh clustering, {dim}-d, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-fresh-") as tmp:
        folder = Path(tmp)
        for n in sizes:
            flat = Settings(catalog_dir=folder, exact_max_items=n)
            vocab = Vocabulary()
            states, lists, _ = build_base(
                folder, 1, dim, (world_rows(a, min(n, a + BATCH), dim, vocab)
                                 for a in range(0, n, BATCH)), flat, None)
            view = open_view(folder, Manifest(dim=dim, generation=1, lists=lists,
                                              base=states, vocab=vocab), None)
            settings = Settings(catalog_dir=folder)
            cpu = {}
            for gen, name in enumerate(POLICIES, start=2):
                with policy(name):
                    t = time.process_time()
                    _, lists, _ = build_base_from(folder, gen, dim,
                                                  sources_of_view(folder, view, None), settings,
                                                  None)
                    cpu[name] = time.process_time() - t
                print(f"  {n:>8} rows  {name}: {lists} lists  {cpu[name]:7.1f} s CPU  "
                      f"{cpu[name] / n * 1e3:.3f} ms a row  load {os.getloadavg()[0]:.1f}",
                      flush=True)
            print(f"  {n:>8} rows  new / old CPU {cpu['new'] / cpu['old']:.2f}", flush=True)
            for path in folder.glob("g*.*"):
                path.unlink()


def grow_both(sizes: list[int], dim: int, step: float,
              policies: tuple[str, ...] = tuple(POLICIES)) -> None:
    print(f"grow {' -> '.join(map(str, sizes))}, {dim}-d, step {step}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    queries = SyntheticCatalog(dim).queries(200)
    truth = None
    with tempfile.TemporaryDirectory(prefix="bench-grow-") as tmp:
        folder = Path(tmp) / "vectors"
        folder.mkdir()
        settings = Settings(catalog_dir=Path(tmp))
        for name in policies:
            with policy(name):
                view = grow(folder, dim, sizes, step, settings, name)
                truth = searched(folder, view, settings, queries, truth, f"{name}: grown")
        for name in policies:  # the last policy's rows, clustered afresh under each policy
            with policy(name):
                t = time.process_time()
                m = view.manifest
                fresh = replace(m, lists=1, clustered=0)  # as if one list: cluster afresh
                states, lists, _ = build_base_from(folder, m.generation + 1, dim,
                                                   sources_of_view(folder, view, None),
                                                   settings, None)
                cpu = time.process_time() - t
                built = switch(folder, replace(fresh, generation=m.generation + 1, lists=lists,
                                               clustered=states["ids"].rows, base=states))
                print(f"  {name}: fresh clustering of {built.live} rows {cpu:.1f} s CPU "
                      f"({cpu / built.live * 1e3:.3f} ms a row)", flush=True)
                searched(folder, built, settings, queries, truth, f"{name}: clustered afresh")
                view = built


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows after the compaction")
    ap.add_argument("--dim", type=int, default=2624)
    ap.add_argument("--tail", type=float, default=0.1, help="tail rows / base rows")
    ap.add_argument("--cases", default="fresh,reuse")
    ap.add_argument("--grow", default="", help="START,STOP,...: grow a catalog (see above)")
    ap.add_argument("--step", type=float, default=0.25, help="rows an ingest adds / rows")
    ap.add_argument("--fresh", default="", help="SIZES: a fresh clustering, old and new")
    ap.add_argument("--policies", default="old,new",
                    help="with --grow: the policies grown, in turn (old, new)")
    args = ap.parse_args()
    if args.fresh:
        fresh_both([int(x) for x in args.fresh.split(",")], args.dim)
        return
    if args.grow:
        grow_both([int(x) for x in args.grow.split(",")], args.dim, args.step,
                  tuple(args.policies.split(",")))
        return
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
