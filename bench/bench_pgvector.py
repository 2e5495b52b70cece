"""pgvector's filtered recall where filters keep more rows than its exact path takes: recall@10
and latency of the pgvector backend under category filters of several shares (items of one
category sit together in the vector space: the hard case for a filtered graph walk), a
filter that does not follow the vectors (second-hand, 40 %) and none, for several search
settings side by side in one serving process.

    .venv/bin/python bench/bench_pgvector.py --size 100000 --dim 512 --pgvector start \\
        --configs 'ef=100&filtered_ef=400,exact_max=0,exact_max=0&max_scan=100000'

Reuses `bench_scale`'s machinery: its synthetic catalogs (same folder, same items) and its
exact ground truth (SQLite's vectors and SQL). The table is built once (in a subprocess at the
priority this script runs at; run it at `nice -n 19` and the searches are timed in a child at
normal priority when started as root, else at the same priority); every configuration is a URL
option of the same table. Each configuration's searches go through `Catalog.search_vectors`,
one query at a time; the method PostgreSQL used (exact subset or HNSW) is read from one more
`VectorStore.search` per filter (for the first query). `uptime`'s load is printed beside the
numbers, and the CPU time per query (mean, the client's and its PostgreSQL backend's, from
/proc: a local server), which a busy machine inflates far less than wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scale

K = bench_scale.K
#: label -> filter (as Filters keyword arguments); categories by rank of size
SHARES = {"none": 0, "50% cat": 10, "25% cat": 5, "10% cat": 2, "40% second-hand": -1}


def filters_for(folder: Path) -> dict[str, dict[str, Any]]:
    """The filters, categories picked by size (largest first) so the shares are near their
    labels."""
    from lookalike.catalog.store import CatalogStore

    store = CatalogStore(folder / "catalog.sqlite")
    with store.connection() as conn:
        cats = [r[0] for r in conn.execute(
            "SELECT lower(category) c FROM items GROUP BY c ORDER BY count(*) DESC")]
    store.close()
    out: dict[str, dict[str, Any]] = {}
    for label, n in SHARES.items():
        if n > 0:
            out[label] = {"category": cats[:n]}
        elif n < 0:
            out[label] = {"second_hand": True}
    return out


def build(folder: Path, url: str) -> dict[str, Any]:
    from lookalike import Catalog

    bench_scale._drop_pgvector(folder, {"url": url})
    t = time.perf_counter()
    catalog = Catalog.open(bench_scale._settings(folder, {"url": url}))
    out = {"build_s": time.perf_counter() - t, "disk_bytes": bench_scale._pgvector_bytes(catalog)}
    catalog.close()
    return out


def serve(folder: Path, url: str, configs: list[str], filters: dict[str, dict[str, Any]],
          queries: Path, renice: list[int]) -> list[dict[str, Any]]:
    from lookalike import Catalog, Filters

    for pid in renice:  # the server's processes back at normal priority for the timed part
        subprocess.run(["renice", "-n", "0", "-p", str(pid)], capture_output=True)
    q = np.load(queries)
    rows = []
    for config in configs:
        sep = "&" if "?" in url else "?"
        catalog = Catalog.open(bench_scale._settings(folder, {
            "url": url + (sep + config if config else "")}))
        catalog.search_vectors(q[:5], K)  # warm: the connection, the planner's caches
        for label, spec in {"none": {}, **filters}.items():
            f = Filters(**spec) if spec else None
            plan = catalog.index.search(q[:1], K, f).plan
            lat, cpu, got = [], [], []
            server = backend_cpu(catalog)
            for j in range(len(q)):
                t, c = time.perf_counter(), time.process_time()
                hits = [r for r, _ in catalog.search_vectors(q[j][None], K, f)[0]]
                lat.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
                got.append((hits + [-1] * K)[:K])
            server = backend_cpu(catalog) - server
            rows.append({"config": config or "(defaults)", "filter": label,
                         "method": plan.method, "latency_ms": lat, "ids": got,
                         "cpu_ms": (sum(cpu) + server) / len(q),
                         "client_cpu_ms": sum(cpu) / len(q), "server_cpu_ms": server / len(q),
                         "load": os.getloadavg()})
        catalog.close()
    return rows


def backend_cpu(catalog: Any) -> float:
    """CPU ms the catalog's PostgreSQL backend process has used (user + system, from
    /proc: the server must run on this machine; 10 ms ticks, so summed over many queries)."""
    with catalog.index._lock:
        pid = catalog.index._conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def server_pids(port: int) -> list[int]:
    """The PostgreSQL processes listening on (or forked from the postmaster of) `port`."""
    out = subprocess.run(["pgrep", "-f", "--", f"-p {port} "], capture_output=True, text=True)
    parents = [int(p) for p in out.stdout.split()]
    pids = set(parents)
    for parent in parents:
        kids = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
        pids.update(int(p) for p in kids.stdout.split())
    return sorted(pids)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        spec = json.loads(sys.argv[3])
        if sys.argv[2] == "build":
            out: Any = build(Path(spec["folder"]), spec["url"])
        else:
            out = serve(Path(spec["folder"]), spec["url"], spec["configs"], spec["filters"],
                        Path(spec["queries"]), spec["renice"])
        print(json.dumps(out), flush=True)
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lookalike-scale"))
    ap.add_argument("--pgvector", default="start",
                    help="'start' or postgresql://USER@HOST:PORT/DB")
    ap.add_argument("--configs", default="",
                    help="comma-separated URL options to compare ('' = the defaults)")
    ap.add_argument("--keep", action="store_true", help="keep the table (no build next time)")
    ap.add_argument("--out", type=Path, default=bench_scale.BENCH / "pgvector.json")
    args = ap.parse_args()
    server = None
    url = args.pgvector
    if url == "start":
        from lookalike.servers import PostgresServer

        server = PostgresServer(durable=True).start()
        url = server.url
    ds = bench_scale.synthetic(args.workdir, args.size, args.dim, "lookalike-fashion-int8",
                               args.queries)
    ds.filters = filters_for(ds.folder)
    # a queries file of its own: bench_scale's ground-truth cache is keyed by its mtime
    key = hashlib.sha256(json.dumps(ds.filters, sort_keys=True).encode()).hexdigest()[:8]
    mine = ds.folder / f"queries-pgvector-{key}.npy"
    if not mine.exists():
        np.save(mine, np.load(ds.queries))
    ds.queries = mine
    truth = bench_scale.ground_truth(ds)
    from lookalike import Filters
    from lookalike.catalog.store import CatalogStore

    store = CatalogStore(ds.folder / "catalog.sqlite")
    kept = {label: store.count(Filters(**f)) for label, f in ds.filters.items()}
    store.close()
    spec = {"folder": str(ds.folder), "url": url, "configs": args.configs.split(","),
            "filters": ds.filters, "queries": str(ds.queries), "renice": []}
    me = [sys.executable, str(Path(__file__).resolve()), "child"]
    start_nice = os.nice(0)
    port = urlsplit(url).port
    pids = server_pids(port) if port and os.geteuid() == 0 else []
    for pid in pids:  # the server builds at this script's priority
        subprocess.run(["renice", "-n", str(start_nice), "-p", str(pid)], capture_output=True)
    built = None
    if not args.keep or server is not None:
        print("building", flush=True)
        done = subprocess.run([*me, "build", json.dumps(spec)], check=True,
                              capture_output=True, text=True)
        built = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"built in {built['build_s']:.1f} s, {built['disk_bytes'] / ds.n:.0f} B/item",
              flush=True)
    child = me
    if start_nice and os.geteuid() == 0:  # the timed part at normal priority
        child = ["nice", "-n", str(-start_nice), *me]
        spec["renice"] = pids
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    done = subprocess.run([*child, "serve", json.dumps(spec)], check=True,
                          capture_output=True, text=True)
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{when}; {ds.n:,} x {ds.dim}-d; {len(np.load(ds.queries))} queries, k={K}")
    print(f"load before: {uptime}\nload after:  {after}")
    print(f"{'config':>34} {'filter':>16} {'kept':>7} {'method':>22} {'p50':>7} {'p99':>7} "
          f"{'cpu ms':>7} {'server':>7} {'R@10':>6} {'min':>5}")
    for row in rows:
        got = np.asarray(row["ids"])
        t = truth[row["filter"]] if row["filter"] != "none" else truth["none"]
        per = [len(set(a[a >= 0].tolist()) & set(b.tolist())) / max(1, (a >= 0).sum())
               for a, b in zip(t, got, strict=True)]
        row["recall"] = float(np.mean(per))
        row["recall_min"] = float(np.min(per))
        row["p50"] = float(np.percentile(row["latency_ms"], 50))
        row["p99"] = float(np.percentile(row["latency_ms"], 99))
        row["kept"] = kept.get(row["filter"], ds.n)
        print(f"{row['config']:>34} {row['filter']:>16} {row['kept']:>7} {row['method']:>22} "
              f"{row['p50']:7.1f} {row['p99']:7.1f} {row['cpu_ms']:7.1f} "
              f"{row['server_cpu_ms']:7.1f} {row['recall']:6.3f} "
              f"{row['recall_min']:5.2f}", flush=True)
        del row["ids"]
    args.out.write_text(json.dumps({"when": when, "n": ds.n, "dim": ds.dim, "load": [uptime, after],
                                    "built": built, "rows": rows}, indent=1))
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
