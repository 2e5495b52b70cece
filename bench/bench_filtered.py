"""Filtered search: recall@10 against exact search and latency, by filter selectivity.

Compares, on random unit vectors, three ways to honour a filter: the catalog's plan (exact over
the filtered rows when they are few, HNSW with an id selector otherwise), HNSW's id selector
alone, and "search top-100 then filter" (post-filtering, what not to do).

    .venv/bin/python bench/bench_filtered.py --n 200000 --dim 256
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike.config import Settings
from lookalike.index import CatalogIndex, ExactIndex


def recall(truth: np.ndarray, got: np.ndarray) -> float:
    hits = [len(set(t[t >= 0]) & set(g[g >= 0])) / max(1, (t >= 0).sum())
            for t, g in zip(truth, got, strict=True)]
    return float(np.mean(hits))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    # clustered data (like embeddings), not uniform noise
    centres = rng.standard_normal((200, args.dim)).astype(np.float32)
    x = centres[rng.integers(0, 200, args.n)] + 0.6 * rng.standard_normal(
        (args.n, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(1, args.n + 1, dtype=np.int64)
    q = x[rng.choice(args.n, args.queries, replace=False)] + 0.1 * rng.standard_normal(
        (args.queries, args.dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)

    settings = Settings(exact_max_items=0, hnsw_m=16, hnsw_ef_construction=100)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        index = CatalogIndex(Path(tmp), args.dim, settings)
        index.load(ids, x)
        print(f"HNSW build: {args.n} x {args.dim} in {time.perf_counter() - t:.1f} s")
        exact = ExactIndex(args.dim)
        exact.add(ids, x)
        assert index.ann is not None
        print(f"{'keep':>6} {'rows':>8} {'plan':>13} {'recall':>7} {'ms/q':>6} | "
              f"{'selector':>8} {'ms/q':>6} | {'post-filter':>11}")
        for share in (0.01, 0.05, 0.2, 1.0):
            allowed = None if share == 1.0 else np.sort(
                rng.choice(ids, int(args.n * share), replace=False))
            _, truth = exact.search(q, 10, allowed)
            t = time.perf_counter()
            _, got, plan = index.search(q, 10, allowed)
            plan_ms = (time.perf_counter() - t) / args.queries * 1000
            t = time.perf_counter()
            _, sel = index.ann.search(q, 10, allowed)
            sel_ms = (time.perf_counter() - t) / args.queries * 1000
            _, top = index.ann.search(q, 100)
            keep = set(allowed.tolist()) if allowed is not None else None
            post = np.array([([i for i in row if keep is None or i in keep] + [-1] * 10)[:10]
                             for row in top])
            rows = args.n if allowed is None else len(allowed)
            print(f"{share:>6.0%} {rows:>8} {plan.method:>13} {recall(truth, got):>7.3f} "
                  f"{plan_ms:>6.2f} | {recall(truth, sel):>8.3f} {sel_ms:>6.2f} | "
                  f"{recall(truth, post):>11.3f}")


if __name__ == "__main__":
    main()
