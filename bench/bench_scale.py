"""Issue 18 benchmark: how far one machine goes — the embedded vector store against FAISS flat,
scikit-learn's BallTree and Annoy (the libraries earlier fashion recommenders used), and Milvus
and pgvector through the same `VectorStore` contract, side by side in one run, from 10k to 1M
items.

    .venv/bin/python bench/bench_scale.py --sizes 10000,100000,1000000 --dim 512 \\
        --workdir /tmp/lookalike-scale --processes 3
    # + the real clothing catalog (ingested with the default model first):
    .venv/bin/lookalike ingest ../shared/datasets/clothing-dataset/images \\
        --metadata ../shared/datasets/clothing-dataset/images.csv --catalog /tmp/clothing
    .venv/bin/python bench/bench_scale.py --sizes 10000 --catalog /tmp/clothing
    # + Milvus: a real 2.3.5 server started in WORKDIR/milvus (pip install 'milvus==2.3.5'),
    # or one already running at --milvus milvus://HOST:PORT (then without its memory and disk)
    .venv/bin/python bench/bench_scale.py --sizes 10000,100000 --milvus start
    # + pgvector: a real PostgreSQL 15 with pgvector 0.8 (scripts/install-pgvector.sh) started
    # in a temp folder, or one already running at --pgvector postgresql://USER@HOST:PORT/DB
    .venv/bin/python bench/bench_scale.py --sizes 10000,100000 --backends embedded \
        --pgvector start
    # + the embedded store searched again with other `ivf_probe` values (same files):
    .venv/bin/python bench/bench_scale.py --sizes 1000000 --backends embedded --probes 8,32
    # at the default model's width, the data and builds at low priority, the searches not
    # (lowering the priority again needs root); a 2,624-d million takes ~40 GB of disk:
    nice -n 19 .venv/bin/python bench/bench_scale.py --sizes 1000000 --dim 2624 \
        --backends embedded --processes 3 --serve-nice 0

Data: `lookalike.evaluation.synthetic` — clustered unit vectors at the stored width with
realistic metadata (20 categories, brands, prices, second-hand, sizes, colours), written
through the catalog's own SQLite store (no images); 200 fresh queries from the same world.
Filters: "dresses or jeans" (≈10 %), "second-hand dresses up to P €" with P chosen so that they
keep ≈1 % and ≈0.1 % of the catalog; ground truth is exact search over SQLite's own vectors,
filtered by SQLite's own SQL (not the store's columns).

Each backend is built in one subprocess and searched in another, a fresh "serving" process, so
memory is the serving process's own: resident memory (VmRSS) and proportional set size (PSS,
from /proc/self/smaps_rollup: pages shared with other processes count once overall) above the
process's baseline after imports, measured after all queries. Latency: one query at a time,
p50/p99 over the queries, through `Catalog.search_vectors` for the embedded store (its filter
evaluation and change-log check included); the other libraries have no metadata, so their
filters come precomputed (BallTree and Annoy cannot pre-filter: they search k/share and filter
after, as those recommenders did). Milvus holds its data in its own server process: its build
time includes sealing and indexing every segment (`MilvusStore.seal`), its memory is the
server's resident memory grown by the catalog (+ the serving process's own), its disk the
server's data folder grown by the build (binlogs, index files and the write-ahead log).
pgvector's build time includes filling the table and building its HNSW index; its disk is the
table's total size with its indexes (pg_total_relation_size); its memory is the serving
process's own only (PostgreSQL's shared buffers and backends are not counted), and its CPU
column is the client's: the search's own work happens in the server.
`--processes N` also starts N serving processes at once, each with the default encoder loaded,
as `lookalike serve` does (api/cpu.py), and sums their PSS.

Writes a table, `bench/scale.json` and the plot `bench/scale.png`. Numbers from a shared 2-core
VM are noisy: rerun, and compare backends within one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
K = 10
TARGETS = {"10%": 0.10, "1%": 0.01, "0.1%": 0.001}
BACKENDS = ("embedded", "faiss-flat", "annoy", "balltree", "milvus", "pgvector")
_STORES = ("embedded", "milvus", "pgvector")  # backends behind lookalike's VectorStore


# -- memory ----------------------------------------------------------------------------------


def memory(pid: int | str = "self") -> dict[str, int]:
    """kB: VmRSS, RssAnon, RssFile, Pss (smaps_rollup) of a process."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Pss", "Pss_Anon", "Pss_File"):
            out[key] = int(value.split()[0])
    return out


def mapped_files(pid: int | str, folder: Path) -> dict[str, int]:
    """kB resident per file of `folder` mapped by a process (from /proc/PID/smaps)."""
    out: dict[str, int] = {}
    current = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if parts and "-" in parts[0] and len(parts) >= 6:
            current = parts[5] if str(folder) in parts[-1] else None
        elif current and line.startswith("Rss:"):
            name = Path(current).name
            out[name] = out.get(name, 0) + int(parts[1])
    return out


# -- data ------------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    folder: Path
    n: int
    dim: int
    queries: Path  # .npy (m, dim)
    exclude: Path | None  # .npy (m,) rowids each query must not return (real catalog)
    filters: dict[str, dict[str, Any]] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)


def synthetic(workdir: Path, n: int, dim: int, model: str, queries: int) -> Dataset:
    from lookalike.catalog.store import CatalogStore
    from lookalike.evaluation.synthetic import SyntheticCatalog

    folder = workdir / f"syn-{dim}-{n}"
    ready = folder / "ready.json"
    world = SyntheticCatalog(dim)
    if not ready.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        store = CatalogStore(folder / "catalog.sqlite")
        store.bind_model(model, dim)
        t = time.perf_counter()
        with (folder / "raw.f32").open("wb") as raw:
            for items, vectors in world.batches(n, 50_000):
                store.add(items, vectors)
                raw.write(vectors.tobytes())
                print(f"  {folder.name}: {store.count()} items ({_now()})", flush=True)
        store.close()
        ready.write_text(json.dumps({"n": n, "dim": dim, "seconds": time.perf_counter() - t}))
    path = folder / "queries.npy"
    if not path.exists() or len(np.load(path)) != queries:  # kept: the ground truth is cached
        np.save(path, world.queries(queries))
    return Dataset(f"synthetic {n:,}", folder, n, dim, folder / "queries.npy", None)


def real_catalog(path: Path, queries: int) -> Dataset:
    from lookalike.catalog.store import CatalogStore

    store = CatalogStore(path / "catalog.sqlite")
    ids, vectors = store.vectors()
    store.close()
    vectors.tofile(path / "raw.f32")
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(ids), min(queries, len(ids)), replace=False))
    np.save(path / "queries.npy", vectors[pick])
    np.save(path / "exclude.npy", ids[pick])
    return Dataset(f"clothing {len(ids):,}", path, len(ids), vectors.shape[1],
                   path / "queries.npy", path / "exclude.npy")


def choose_filters(ds: Dataset) -> None:
    """≈10 %, 1 %, 0.1 % filters, with the share each really keeps (SQLite's count)."""
    from lookalike import Filters
    from lookalike.catalog.store import CatalogStore

    store = CatalogStore(ds.folder / "catalog.sqlite")
    total = store.count()
    with store.connection() as conn:
        cats = [r[0] for r in conn.execute(
            "SELECT lower(category) c FROM items GROUP BY c ORDER BY count(*) DESC LIMIT 2")]
    if not store.count(Filters(second_hand=True)):  # no resale metadata: categories alone
        with store.connection() as conn:
            sizes = conn.execute("SELECT lower(category) c, count(*) FROM items "
                                 "WHERE c IS NOT NULL GROUP BY c").fetchall()
        for label, target in TARGETS.items():
            name, count = min(sizes, key=lambda r: abs(r[1] / total - target))
            ds.filters[label] = {"category": [name]}
            ds.shares[label] = count / total
        store.close()
        return
    ds.filters["10%"] = Filters(category=cats).model_dump(exclude_defaults=True)
    base = Filters(category=cats[:1], second_hand=True)
    with store.connection() as conn:
        where, params = base.to_sql()
        prices = [r[0] for r in conn.execute(
            f"SELECT price FROM items WHERE {where} AND price IS NOT NULL ORDER BY price", params)]
    for label in ("1%", "0.1%"):
        want = max(1, round(TARGETS[label] * total))
        cap = prices[min(len(prices) - 1, want - 1)] if prices else 0.0
        ds.filters[label] = Filters(category=cats[:1], second_hand=True,
                                    price_max=cap).model_dump(exclude_defaults=True)
    for label, f in ds.filters.items():
        ds.shares[label] = store.count(Filters(**f)) / total
    store.close()


def ground_truth(ds: Dataset) -> dict[str, np.ndarray]:
    """Exact top k per query and filter (rowids), from SQLite's vectors and SQL."""
    from lookalike import Filters
    from lookalike.catalog.store import CatalogStore

    cache = ds.folder / f"truth-{ds.queries.stat().st_mtime_ns}.npz"
    if cache.exists():
        return dict(np.load(cache))
    store = CatalogStore(ds.folder / "catalog.sqlite")
    ids = store.vector_rowids()
    raw = np.memmap(ds.folder / "raw.f32", dtype=np.float32, mode="r", shape=(len(ids), ds.dim))
    q = np.load(ds.queries)
    exclude = np.load(ds.exclude) if ds.exclude else None
    masks: dict[str, np.ndarray | None] = {"none": None}
    for label, f in ds.filters.items():
        masks[label] = np.isin(ids, store.filter_rowids(Filters(**f)))
    store.close()
    best = {label: (np.full((len(q), K), -np.inf, np.float32), np.full((len(q), K), -1))
            for label in masks}
    for a in range(0, len(ids), 200_000):
        block = np.asarray(raw[a : a + 200_000])
        scores = q @ block.T
        if exclude is not None:
            scores[ids[a : a + 200_000][None, :] == exclude[:, None]] = -np.inf
        for label, mask in masks.items():
            s = scores if mask is None else np.where(mask[a : a + 200_000], scores, -np.inf)
            part = np.argpartition(-s, K - 1, axis=1)[:, :K]  # the chunk's best K, unsorted
            both_s = np.concatenate([best[label][0], np.take_along_axis(s, part, 1)], axis=1)
            both_i = np.concatenate([best[label][1], ids[a : a + 200_000][part]], axis=1)
            top = np.argsort(-both_s, axis=1, kind="stable")[:, :K]
            best[label] = (np.take_along_axis(both_s, top, 1), np.take_along_axis(both_i, top, 1))
    truth = {label: np.where(np.isfinite(s), i, -1) for label, (s, i) in best.items()}
    np.savez(cache, **truth)
    return truth


# -- backends (run in subprocesses) ----------------------------------------------------------


def _settings(folder: Path, extra: dict[str, Any]) -> Any:
    from lookalike import Settings

    probe = {"ivf_probe": extra["probe"]} if extra.get("probe") else {}
    return Settings(catalog_dir=folder, auto_tag=False, intra_op_threads=1,
                    vector_store=extra.get("url", "embedded"), **probe)


def build(backend: str, folder: Path, dim: int, extra: dict[str, Any]) -> dict[str, Any]:
    """Build a backend's index from scratch; its time, disk size, and add-one-item time."""
    out: dict[str, Any] = {}
    if backend in _STORES:
        from lookalike import Catalog
        from lookalike.evaluation.synthetic import SyntheticCatalog
        from lookalike.index.embedded import FOLDER

        shutil.rmtree(folder / FOLDER, ignore_errors=True)
        if backend == "milvus":
            _drop_milvus(folder, extra)  # built from scratch, as the embedded store
            disk_before = _du(Path(extra["milvus_data"])) if extra.get("milvus_data") else 0
        if backend == "pgvector":
            _drop_pgvector(folder, extra)
        t = time.perf_counter()
        catalog = Catalog.open(_settings(folder, extra))
        if backend == "milvus":
            catalog.index.seal(timeout=7200)  # type: ignore[attr-defined]  # all indexed
        out["build_s"] = time.perf_counter() - t
        out["disk_bytes"] = _tree_bytes(folder / FOLDER)
        if backend == "milvus":
            out["disk_bytes"] = (_du(Path(extra["milvus_data"])) - disk_before
                                 if extra.get("milvus_data") else math.nan)
        if backend == "pgvector":
            out["disk_bytes"] = _pgvector_bytes(catalog)
        out["sqlite_bytes"] = _tree_bytes(folder, "catalog.sqlite*")
        items, vectors = SyntheticCatalog(dim, seed=99).items(0, 20)
        times = []
        for item, vector in zip(items, vectors, strict=True):
            t = time.perf_counter()
            catalog.add_items([item], vector[None])
            times.append(time.perf_counter() - t)
        for item in items:
            catalog.delete_item(item.id)
        catalog.close()
        out["add_s"] = float(np.median(times))
        return out
    n = (folder / "raw.f32").stat().st_size // (4 * dim)
    x = np.fromfile(folder / "raw.f32", dtype=np.float32).reshape(n, dim)
    path = folder / f"index.{backend}"
    if backend == "faiss-flat":
        import faiss

        t = time.perf_counter()
        index = faiss.IndexFlatIP(dim)
        index.add(x)
        out["build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        index.add(x[:1])
        out["add_s"] = time.perf_counter() - t
        index.remove_ids(np.asarray([n], dtype=np.int64))
        faiss.write_index(index, str(path))
    elif backend == "annoy":
        from annoy import AnnoyIndex

        t = time.perf_counter()
        index = AnnoyIndex(dim, "dot")
        for i in range(n):
            index.add_item(i, x[i])
        index.build(extra["annoy_trees"], n_jobs=-1)
        out["build_s"] = time.perf_counter() - t
        index.save(str(path))
        out["add_s"] = None  # an Annoy index cannot grow once built: rebuild
    elif backend == "balltree":
        from sklearn.neighbors import BallTree

        t = time.perf_counter()
        tree = BallTree(x, leaf_size=40)  # euclidean ranks unit vectors as cosine does
        out["build_s"] = time.perf_counter() - t
        with path.open("wb") as f:
            pickle.dump(tree, f, protocol=pickle.HIGHEST_PROTOCOL)
        out["add_s"] = None  # no incremental add: rebuild
    out["disk_bytes"] = path.stat().st_size
    return out


def serve(backend: str, folder: Path, ds_queries: Path, exclude: Path | None,
          filters: dict[str, dict[str, Any]], extra: dict[str, Any],
          hold: bool = False) -> dict[str, Any]:
    """A serving process: open, answer every query once (per filter), report latency, ids and
    memory above this process's baseline after imports."""
    if extra.get("serve_nice") is not None:  # searched at its own priority, not the build's
        os.setpriority(os.PRIO_PROCESS, 0, int(extra["serve_nice"]))  # lowering it: root only
    import faiss  # imported before the baseline, as a server has it loaded

    faiss.omp_set_num_threads(1)  # one query on one thread, as every backend here

    from lookalike import Catalog, Filters
    from lookalike.index.embedded import FOLDER

    if extra.get("encoder"):
        from lookalike import create

        create(extra["encoder"])  # as a search process of `lookalike serve` has it loaded
    gc.collect()
    base = memory()
    q = np.load(ds_queries)
    gone = np.load(exclude) if exclude is not None else None
    masks = {label: np.load(folder / f"mask-{label}.npy") for label in filters}
    ids_of = np.load(folder / "ids.npy")
    t = time.perf_counter()
    search: Any
    if backend in _STORES:
        catalog = Catalog.open(_settings(folder, extra))

        def search(v: np.ndarray, label: str, j: int) -> list[int]:
            f = Filters(**filters[label]) if label != "none" else None
            ex = [int(gone[j])] if gone is not None else ()
            return [r for r, _ in catalog.search_vectors(v[None], K, f, ex)[0]]
    elif backend == "faiss-flat":
        import faiss

        index = faiss.read_index(str(folder / "index.faiss-flat"))

        def search(v: np.ndarray, label: str, j: int) -> list[int]:
            kk = K + (gone is not None)
            params = None
            if label != "none":
                params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(
                    np.packbits(masks[label], bitorder="little")))
            _, idx = index.search(v[None], kk, params=params)
            return _rowids(ids_of, idx[0], gone, j)
    elif backend == "annoy":
        from annoy import AnnoyIndex

        index = AnnoyIndex(q.shape[1], "dot")
        index.load(str(folder / "index.annoy"))  # mmapped by Annoy

        def search(v: np.ndarray, label: str, j: int) -> list[int]:
            want = K + (gone is not None)
            share = 1.0 if label == "none" else max(masks[label].mean(), 1e-6)
            kk = min(len(ids_of), math.ceil(want / share) * 2, 20_000)
            idx = np.asarray(index.get_nns_by_vector(v, kk, search_k=extra["annoy_search_k"]))
            if label != "none":
                idx = idx[masks[label][idx]]  # post-filter: all Annoy can do
            return _rowids(ids_of, idx[:want], gone, j)
    else:
        with (folder / "index.balltree").open("rb") as f:
            tree = pickle.load(f)

        def search(v: np.ndarray, label: str, j: int) -> list[int]:
            want = K + (gone is not None)
            share = 1.0 if label == "none" else max(masks[label].mean(), 1e-6)
            kk = min(len(ids_of), math.ceil(want / share) * 2, 2_000)
            _, idx = tree.query(v[None], k=kk)
            idx = idx[0]
            if label != "none":
                idx = idx[masks[label][idx]]  # post-filter
            return _rowids(ids_of, idx[:want], gone, j)
    open_s = time.perf_counter() - t
    if backend == "milvus":  # its first search waits for the server's next time tick (~200 ms)
        search(q[0], "none", 0)
    results: dict[str, Any] = {"open_s": open_s, "latency_ms": {}, "ids": {}}
    m = len(q) if backend != "balltree" else min(len(q), extra["balltree_queries"])
    results["cpu_ms"] = {}
    for label in ["none", *filters]:
        lat, cpu, got = [], [], []
        for j in range(m):
            t, c = time.perf_counter(), time.thread_time()
            hits = search(q[j], label, j)
            cpu.append((time.thread_time() - c) * 1000)
            lat.append((time.perf_counter() - t) * 1000)
            got.append((hits + [-1] * K)[:K])
        results["latency_ms"][label] = lat
        results["cpu_ms"][label] = cpu
        results["ids"][label] = got
    gc.collect()
    after = memory()
    results["memory_kb"] = {key: after[key] - base.get(key, 0) for key in after}
    results["load"] = os.getloadavg()[0]  # beside the wall times: a busy machine inflates them
    results["utc"] = datetime.now(UTC).strftime("%H:%M:%S")
    results["memory_total_kb"] = after
    results["files_kb"] = mapped_files("self", folder / FOLDER)
    if hold:
        print(json.dumps({"ready": os.getpid()}), flush=True)
        sys.stdin.readline()
    return results


def _now() -> str:
    """UTC time and the load average, beside every phase's numbers."""
    return f"{datetime.now(UTC):%H:%M:%S} UTC, load {os.getloadavg()[0]:.2f}"


def _rowids(ids_of: np.ndarray, idx: np.ndarray, gone: np.ndarray | None, j: int) -> list[int]:
    out = [int(ids_of[i]) for i in idx if i >= 0]
    if gone is not None:
        out = [r for r in out if r != int(gone[j])]
    return out[:K]


def _du(folder: Path) -> int:
    """Bytes of every file under `folder`."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _drop_milvus(folder: Path, extra: dict[str, Any]) -> None:
    """Drop the catalog's Milvus collection (and release its memory on the server)."""
    from pymilvus import connections, utility

    from lookalike.index.milvus import MilvusUrl
    from lookalike.index.naming import collection_name

    url = MilvusUrl.parse(extra["url"])
    connections.connect(alias="bench", host=url.host, port=str(url.port), db_name=url.database)
    try:
        name = collection_name(folder, url.prefix)
        if utility.has_collection(name, using="bench"):
            utility.drop_collection(name, using="bench")
    finally:
        connections.disconnect("bench")


def _drop_pgvector(folder: Path, extra: dict[str, Any]) -> None:
    """Drop the catalog's pgvector table (built from scratch, as the embedded store)."""
    import psycopg

    from lookalike.index.pgvector import MARKERS, PgvectorUrl

    url = PgvectorUrl.parse(extra["url"], folder, None)
    with psycopg.connect(url.conninfo, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{url.schema}"."{url.table}"')
        if conn.execute("SELECT to_regclass(%s)", (f'"{url.schema}"."{MARKERS}"',)).fetchone()[0]:
            conn.execute(f'DELETE FROM "{url.schema}"."{MARKERS}" WHERE name = %s', (url.table,))


def _pgvector_bytes(catalog: Any) -> int:
    """The pgvector table's size with its indexes."""
    store = catalog.index
    with store._lock:
        return int(store._conn.execute("SELECT pg_total_relation_size(%s::regclass)",
                                       (store._table,)).fetchone()[0])


def _tree_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file())


def run_child(args: list[str], hold: bool = False) -> Any:
    cmd = [sys.executable, str(Path(__file__).resolve()), "child", *args]
    if hold:
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the run ---------------------------------------------------------------------------------


def recall(truth: np.ndarray, got: np.ndarray) -> float:
    values = []
    for t, g in zip(truth, got, strict=False):
        want = set(t[t >= 0].tolist())
        if want:
            values.append(len(want & set(g.tolist())) / len(want))
    return float(np.mean(values)) if values else float("nan")


def measure(ds: Dataset, backend: str, extra: dict[str, Any],
            truth: dict[str, np.ndarray], built: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build (unless `built` says how that went) and search one backend on one dataset."""
    spec = json.dumps({"backend": backend, "folder": str(ds.folder), "dim": ds.dim,
                       "queries": str(ds.queries),
                       "exclude": str(ds.exclude) if ds.exclude else None,
                       "filters": ds.filters, "extra": extra})
    server_pid = extra.get("milvus_pid") if backend == "milvus" else None
    if server_pid and built is None:
        _drop_milvus(ds.folder, extra)
        time.sleep(5)  # the server lets go of a dropped collection's memory
        server_before = memory(server_pid)
    if built is None:
        print(f"  {backend}: building ({_now()})", flush=True)
        built = run_child(["build", spec])
    print(f"  {backend}: searching ({_now()})", flush=True)
    served = run_child(["serve", spec])
    if backend == "milvus":  # the vectors live in the server: its memory grown by them counts
        for key in served["memory_kb"]:
            served["memory_kb"][key] = (
                served["memory_kb"][key] + memory(server_pid)[key] - server_before[key]
                if server_pid else math.nan)
    name = (f"{backend}/p{extra['probe']}" if extra.get("probe")
            else f"{backend}/ef{extra['ef']}" if extra.get("ef") else backend)
    row: dict[str, Any] = {"dataset": ds.name, "n": ds.n, "backend": name, **built,
                           "open_s": served["open_s"], "load": served.get("load", math.nan),
                           "utc": served.get("utc"),
                           "rss_per_item": served["memory_kb"]["VmRSS"] * 1024 / ds.n,
                           "pss_per_item": served["memory_kb"]["Pss"] * 1024 / ds.n,
                           "rss_mb": served["memory_kb"]["VmRSS"] / 1024,
                           "files_mb": {k: v / 1024 for k, v in served["files_kb"].items()}}
    row["disk_per_item"] = built["disk_bytes"] / ds.n
    for label, lat in served["latency_ms"].items():
        got = np.asarray(served["ids"][label])
        row[f"p50_{label}"] = float(np.percentile(lat, 50))
        row[f"p99_{label}"] = float(np.percentile(lat, 99))
        row[f"cpu50_{label}"] = float(np.percentile(served["cpu_ms"][label], 50))
        row[f"recall_{label}"] = recall(truth[label][: len(got)], got)
    return row


def processes_check(ds: Dataset, n_proc: int, extra: dict[str, Any]) -> dict[str, Any]:
    """N serving processes at once (each with the default encoder, as `lookalike serve`'s
    search processes): their PSS summed (shared pages counted once)."""
    spec = json.dumps({"backend": "embedded", "folder": str(ds.folder), "dim": ds.dim,
                       "queries": str(ds.queries),
                       "exclude": str(ds.exclude) if ds.exclude else None,
                       "filters": ds.filters, "extra": {**extra, "encoder": extra["model"]}})
    children = [run_child(["serve-hold", spec], hold=True) for _ in range(n_proc)]
    try:
        for child in children:
            json.loads(child.stdout.readline())
        per = [memory(child.pid) for child in children]
    finally:
        for child in children:
            child.communicate("\n")  # reads the child's result too (else a full pipe blocks it)
    return {"processes": n_proc, "load": os.getloadavg()[0],
            "utc": datetime.now(UTC).strftime("%H:%M:%S"),
            "pss_mb": sum(p["Pss"] for p in per) / 1024,
            "rss_mb": sum(p["VmRSS"] for p in per) / 1024,
            "each_pss_mb": [p["Pss"] / 1024 for p in per]}


def table(rows: list[dict[str, Any]]) -> str:
    """One line per dataset and backend; per filter: wall p50, CPU p50, wall p99 (ms), recall."""
    labels = ("none", *TARGETS)
    head = (f"{'dataset':>18} {'backend':>10} {'build s':>8} {'add ms':>7} {'RSS B/it':>8} "
            f"{'PSS B/it':>8} {'disk B/it':>9} {'load':>5} "
            + " ".join(f"{'[' + lab + '] p50 cpu50 p99':>24} {'R@10':>5}" for lab in labels))
    lines = [head, "-" * len(head)]
    for r in rows:
        add = "-" if r.get("add_s") is None else f"{r['add_s'] * 1000:.2f}"
        cells = " ".join(
            f"{r.get('p50_' + lab, math.nan):>8.2f} {r.get('cpu50_' + lab, math.nan):>7.2f} "
            f"{r.get('p99_' + lab, math.nan):>7.2f} {r.get('recall_' + lab, math.nan):>5.3f}"
            for lab in labels)
        lines.append(f"{r['dataset']:>18} {r['backend']:>10} {r['build_s']:>8.1f} {add:>7} "
                     f"{r['rss_per_item']:>8.0f} {r['pss_per_item']:>8.0f} "
                     f"{r['disk_per_item']:>9.0f} {r.get('load', math.nan):>5.1f} {cells}")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("build_s", "build (s)", True), ("rss_per_item", "resident memory per item (B)",
                                                True),
              ("disk_per_item", "disk per item (B)", True), ("cpu50_none", "p50 CPU per query (ms)",
                                                              True),
              ("cpu50_1%", "p50 CPU per query, 1 % filter (ms)", True),
              ("recall_none", "recall@10", False),
              # Milvus searches in its server: only wall time compares it with the others
              ("p50_none", "p50 latency (ms, wall)", True),
              ("p50_1%", "p50 latency, 1 % filter (ms, wall)", True)]
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    synthetic_rows = [r for r in rows if r["dataset"].startswith("synthetic")]
    for ax, (key, title, log) in zip(axes.flat, panels, strict=True):
        for backend in BACKENDS:
            # a server measured from outside has no memory or disk figures (NaN): left out
            pts = sorted((r["n"], r[key]) for r in synthetic_rows
                         if r["backend"] == backend and r.get(key) is not None
                         and math.isfinite(r[key]) and (r[key] > 0 or not log))
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=backend)
        ax.set_xscale("log")
        if log and ax.lines:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("items")
        ax.grid(True, alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle("lookalike vector stores from 10k to 1M items (shared 2-core VM)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def child(argv: list[str]) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # a store's repairs show
    mode, spec = argv[0], json.loads(argv[1])
    folder = Path(spec["folder"])
    if mode == "build":
        out = build(spec["backend"], folder, spec["dim"], spec["extra"])
    else:
        out = serve(spec["backend"], folder, Path(spec["queries"]),
                    Path(spec["exclude"]) if spec["exclude"] else None, spec["filters"],
                    spec["extra"], hold=mode == "serve-hold")
    print(json.dumps(out), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lookalike-scale"))
    ap.add_argument("--backends", default="embedded,faiss-flat,annoy,balltree")
    ap.add_argument("--slow-max", type=int, default=100_000,
                    help="largest size Annoy and BallTree are built for (memory, time)")
    ap.add_argument("--catalog", type=Path, help="also a real catalog folder (ingested)")
    ap.add_argument("--milvus", help="milvus://HOST:PORT: also the Milvus backend")
    ap.add_argument("--milvus-ef", default="",
                    help="also search the Milvus collection with these HNSW ef values (e.g. "
                    "64,128; same collection, built once)")
    ap.add_argument("--pgvector", help="'start' or postgresql://USER@HOST:PORT/DB[?ef=N]: also "
                    "the pgvector backend (HNSW)")
    ap.add_argument("--model", default="lookalike-fashion-int8",
                    help="model recorded in the synthetic catalogs; --processes loads it")
    ap.add_argument("--processes", type=int, default=0,
                    help="also N serving processes at once on the largest catalog (PSS sum)")
    ap.add_argument("--annoy-trees", type=int, default=50)
    ap.add_argument("--annoy-search-k", type=int, default=10_000,
                    help="nodes an Annoy search visits (its default, trees x k, found 41 %%)")
    ap.add_argument("--probes", default="",
                    help="also search the embedded store with these ivf_probe values (e.g. 4,8)")
    ap.add_argument(
        "--serve-nice",
        type=int,
        help="the serving processes' niceness (e.g. 0 when the run itself is under "
        "`nice -n 19` for the data and the builds; lowering it needs root)",
    )
    ap.add_argument("--out", type=Path, default=BENCH / "scale.json")
    ap.add_argument("--plot-from", default="",
                    help="only draw --out's plot from these earlier results (a,b.json), "
                         "e.g. a size measured in a run of its own")
    args = ap.parse_args()
    if args.plot_from:
        earlier = [row for f in args.plot_from.split(",")
                   for row in json.loads(Path(f).read_text())["rows"]]
        plot(earlier, args.out.with_suffix(".png"))
        print(f"wrote {args.out.with_suffix('.png')}")
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    milvus_server = None
    if args.milvus == "start":  # our own server: its memory and disk are measured too
        from lookalike.servers import MilvusServer

        milvus_server = MilvusServer(args.workdir / "milvus").start()
        args.milvus = milvus_server.uri
    pg_server = None
    if args.pgvector == "start":  # PostgreSQL's own durability defaults, as in production
        from lookalike.servers import PostgresServer

        pg_server = PostgresServer(durable=True).start()
        args.pgvector = pg_server.url
    backends = [b for b in args.backends.split(",") if b] + (["milvus"] if args.milvus else [])
    backends += ["pgvector"] if args.pgvector else []
    extra = {"annoy_trees": args.annoy_trees, "annoy_search_k": args.annoy_search_k,
             "balltree_queries": 40,
             "model": args.model, "url": "embedded", "serve_nice": args.serve_nice}
    print(f"start ({_now()})", flush=True)
    datasets = [synthetic(args.workdir, int(s), args.dim, args.model, args.queries)
                for s in args.sizes.split(",")]
    if args.catalog:
        datasets.append(real_catalog(args.catalog, args.queries))
    rows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for ds in datasets:
        print(f"{ds.name} ({ds.dim}-d) ({_now()})", flush=True)
        choose_filters(ds)
        truth = ground_truth(ds)
        from lookalike import Filters
        from lookalike.catalog.store import CatalogStore

        store = CatalogStore(ds.folder / "catalog.sqlite")
        ids = store.vector_rowids()
        np.save(ds.folder / "ids.npy", ids)
        for label, f in ds.filters.items():
            np.save(ds.folder / f"mask-{label}.npy",
                    np.isin(ids, store.filter_rowids(Filters(**f))))
        store.close()
        for backend in backends:
            if backend in ("annoy", "balltree") and ds.n > args.slow_max:
                continue
            opts = extra
            if backend == "milvus":
                opts = {**extra, "url": args.milvus}
                if milvus_server is not None and milvus_server.pid is not None:
                    opts.update(milvus_pid=milvus_server.pid,
                                milvus_data=str(milvus_server.folder / "data"))
            if backend == "pgvector":
                opts = {**extra, "url": args.pgvector}
            try:
                rows.append(measure(ds, backend, opts, truth))
                if backend == "embedded":
                    built = {k: rows[-1][k] for k in ("build_s", "add_s", "disk_bytes",
                                                      "sqlite_bytes")}
                    for probe in filter(None, args.probes.split(",")):
                        rows.append(measure(ds, backend, {**opts, "probe": int(probe)}, truth,
                                            built))
                if backend == "milvus":  # the same collection searched with other HNSW ef
                    built = {k: rows[-1][k] for k in ("build_s", "add_s", "disk_bytes")}
                    same = {k: v for k, v in opts.items()  # memory: measured once, above
                            if k not in ("milvus_pid", "milvus_data")}
                    for ef in filter(None, args.milvus_ef.split(",")):
                        url = f"{args.milvus}{'&' if '?' in args.milvus else '?'}ef={int(ef)}"
                        print(table(rows[-1:]), flush=True)
                        rows.append(measure(ds, backend, {**same, "url": url, "ef": int(ef)},
                                            truth, built))
            except subprocess.CalledProcessError as exc:
                print(f"  {backend} failed: {exc.stderr[-2000:]}", flush=True)
                continue
            print(table(rows[-1:]), flush=True)
        if args.processes and ds is datasets[-1 if not args.catalog else -2]:
            checks.append({"dataset": ds.name, **processes_check(ds, args.processes, extra)})
            print(f"  {checks[-1]}", flush=True)
    print()
    print(table(rows))
    for ds in datasets:
        print(f"{ds.name}: filters {ds.filters} keep {ds.shares}")
    for c in checks:
        print(f"{c['dataset']}: {c['processes']} serving processes (encoder loaded): "
              f"PSS {c['pss_mb']:.0f} MB in total (RSS sum {c['rss_mb']:.0f} MB)")
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": f"{os.cpu_count()} cores, shared with other jobs", "dim": args.dim,
              "rows": rows, "processes": checks,
              "datasets": [{**asdict(d), "folder": str(d.folder), "queries": str(d.queries),
                            "exclude": str(d.exclude)} for d in datasets]}
    args.out.write_text(json.dumps(result, indent=1))
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    if milvus_server is not None:
        milvus_server.stop()
    if pg_server is not None:
        pg_server.stop()


if __name__ == "__main__":
    main()
