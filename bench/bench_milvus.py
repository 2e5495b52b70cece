"""Issue 18 benchmark: photo → results through Milvus on a real catalog, beside the embedded
store, in the same run (target: p50 ≤ 25 ms through Milvus on the clothing catalog).

    .venv/bin/lookalike ingest ../shared/datasets/clothing-dataset/images \\
        --metadata ../shared/datasets/clothing-dataset/images.csv --map label=category \\
        --catalog /tmp/clothing
    .venv/bin/python bench/bench_milvus.py /tmp/clothing                  # starts a Milvus 2.3.5
    .venv/bin/python bench/bench_milvus.py /tmp/clothing --milvus milvus://127.0.0.1:19530

1. The catalog's database is copied into a work folder for Milvus (the original keeps its
   embedded store); `Catalog.open` with `vector_store=milvus://…` fills a collection from it,
   then `MilvusStore.seal` waits until it is indexed (HNSW) and loaded: the build time.
2. Queries: `--queries` photos of the catalog spread over it, as uploaded bytes. Each one goes
   through `search_image(catalog, bytes, k=10)` — decode, encode, search, items from SQLite — on
   both catalogs, alternating which goes first; unfiltered, a category filter (≈10–20 %) and a
   filter keeping ≈1 %. The search alone (`search_vector` on the same query vector) is timed
   too, to show the store's share.
3. Recall@10 of Milvus against the embedded store's exact results on the same queries.

Prints a table and writes JSON (--out). A shared 2-core VM is noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lookalike import Catalog, Filters, Settings
from lookalike.recommend import search_image
from lookalike.servers import MilvusServer

K = 10


def choose_filters(db: Path) -> dict[str, Filters | None]:
    """No filter, the most common category, and the (category, kids) pair nearest 1 %."""
    with sqlite3.connect(db) as conn:
        total = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        cats = conn.execute("SELECT lower(category), count(*) n FROM items "
                            "WHERE category IS NOT NULL GROUP BY 1 ORDER BY n DESC").fetchall()
        pairs = conn.execute("SELECT lower(category), kids, count(*) FROM items "
                             "WHERE category IS NOT NULL AND kids IS NOT NULL "
                             "GROUP BY 1, 2").fetchall()
    top = cats[0][0]
    cat, kids, _ = min(pairs, key=lambda r: abs(r[2] / total - 0.01))
    return {"none": None, f"category={top}": Filters(category=[top]),
            f"category={cat},kids={bool(kids)}": Filters(category=[cat], kids=bool(kids))}


def photos(db: Path, n: int) -> list[bytes]:
    with sqlite3.connect(db) as conn:
        paths = [Path(r[0]) for r in conn.execute("SELECT image_path FROM items ORDER BY rowid")]
    pick = paths[:: max(1, len(paths) // n)][:n]
    return [p.read_bytes() for p in pick]


def percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
            "mean": float(np.mean(ms))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog", type=Path, help="an ingested catalog folder")
    ap.add_argument("--milvus", default="start",
                    help="milvus://HOST:PORT, or 'start' (a Milvus 2.3.5 in the work folder)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("milvus.json"))
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lookalike-bench-milvus-"))
    work.mkdir(parents=True, exist_ok=True)
    server = None
    try:
        url = args.milvus
        if url == "start":
            server = MilvusServer(work / "milvus").start()
            url = server.uri
        copy = work / "catalog"
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir()
        src = sqlite3.connect(args.catalog / "catalog.sqlite")
        with sqlite3.connect(copy / "catalog.sqlite") as dst:
            src.backup(dst)  # a consistent copy, even of a catalog being served
        src.close()
        embedded = Catalog.open(Settings(catalog_dir=args.catalog, intra_op_threads=1))
        t = time.perf_counter()
        milvus = Catalog.open(Settings(catalog_dir=copy, intra_op_threads=1, vector_store=url))
        filled = time.perf_counter() - t
        milvus.index.seal()  # type: ignore[attr-defined]
        built = time.perf_counter() - t
        n = len(embedded)
        assert len(milvus) == n, (len(milvus), n)
        filters = choose_filters(copy / "catalog.sqlite")
        shares = {label: (embedded.store.count(f) / n if f else 1.0)
                  for label, f in filters.items()}
        queries = photos(copy / "catalog.sqlite", args.queries)
        print(f"{n:,} items; Milvus {url}: filled in {filled:.1f} s, indexed and loaded after "
              f"{built:.1f} s; {len(queries)} query photos; filters {shares}", flush=True)
        stores = {"embedded": embedded, "milvus": milvus}
        for cat in stores.values():  # warm: model loaded, caches, Milvus's first time tick
            for photo in queries[:5]:
                search_image(cat, photo, K)
        lat: dict[str, dict[str, list[float]]] = {
            f"{s}/{what}": {label: [] for label in filters}
            for s in stores for what in ("photo", "search")}
        hits: dict[str, dict[str, list[list[int]]]] = {
            s: {label: [] for label in filters} for s in stores}
        for j, photo in enumerate(queries):
            vector = embedded.embed(photo)
            order = list(stores) if j % 2 == 0 else list(stores)[::-1]
            for label, f in filters.items():
                for name in order:
                    cat = stores[name]
                    t = time.perf_counter()
                    results = search_image(cat, photo, K, f)
                    lat[f"{name}/photo"][label].append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    cat.search_vector(vector, K, f)
                    lat[f"{name}/search"][label].append((time.perf_counter() - t) * 1000)
                    hits[name][label].append([r.item.rowid for r in results])
        recall = {}
        for label in filters:
            pairs = zip(hits["embedded"][label], hits["milvus"][label], strict=True)
            recall[label] = float(np.mean([len(set(a) & set(b)) / len(a) if a else 1.0
                                           for a, b in pairs]))
        table = {key: {label: percentiles(ms) for label, ms in by.items()}
                 for key, by in lat.items()}
        width = max(len(label) for label in filters)
        print(f"\n{'ms':<16} {'filter':<{width}}  {'p50':>7} {'p99':>7}  share  recall@10")
        for key, by in table.items():
            for label, p in by.items():
                extra = f"  {recall[label]:.3f}" if key == "milvus/photo" else ""
                print(f"{key:<16} {label:<{width}}  {p['p50']:>7.2f} {p['p99']:>7.2f}  "
                      f"{shares[label]:5.3f}{extra}")
        for label in filters:
            ratio = table["milvus/photo"][label]["p50"] / table["embedded/photo"][label]["p50"]
            print(f"photo → results p50, Milvus / embedded, {label}: {ratio:.2f}")
        result: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} cores, shared with other jobs",
            "items": n, "milvus": url, "fill_s": filled, "indexed_s": built,
            "queries": len(queries), "shares": shares, "latency_ms": table, "recall": recall,
            "filters": {k: (f.model_dump(exclude_defaults=True) if f else None)
                        for k, f in filters.items()},
        }
        args.out.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")
        milvus.index.drop()  # type: ignore[attr-defined]
        milvus.close()
        embedded.close()
    finally:
        if server is not None:
            server.stop()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
