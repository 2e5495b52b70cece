"""Issue 6 benchmark: `POST /search` over HTTP against the library alone, same photos, same
machine, same run.

    .venv/bin/python bench/bench_api.py /tmp/full            # a catalog of the full dataset
    .venv/bin/python bench/bench_api.py CATALOG --clients 16 --seconds 30 --out result.json

1. The catalog is copied into a temporary folder (the server adds its user tables; the
   original is never written).
2. `lookalike serve` starts in its own process (uvicorn, loopback; photo searches in one
   process per core unless `--search-processes` says otherwise, 0 = threads).
3. Rounds (3 by default) alternate the library alone — `search_image(catalog, photo_bytes, k)`
   on the query photos from 1 and from 2 caller threads and from 2 processes, the best of the
   three — and HTTP: 16 keep-alive clients (asyncio, requests pre-encoded so the clients cost
   little CPU) sending multipart `POST /search` (30 s in all). Each round's ratio compares
   phases seconds apart, so a load change on a shared machine does not masquerade as API
   overhead; the median of the rounds is reported. Every non-200 answer, wrong result count
   or broken connection is an error.
4. Whether the machine was otherwise idle: CPU time used by processes other than this one and
   the server during the run, from /proc.

Prints requests/s, p50/p99 latency, errors, the library's searches/s and the ratio (target ≥ 0.70).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lookalike import Catalog, Settings
from lookalike.recommend import search_image

BOUNDARY = "lookalikebench7d1e"
TICKS = os.sysconf("SC_CLK_TCK")


# -- machine load --------------------------------------------------------------------------------


def busy_cpu_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores)."""
    with Path("/proc/stat").open() as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, children included) of one process."""
    try:
        with Path(f"/proc/{pid}/stat").open() as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(parts[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / TICKS


def with_descendants(pids: list[int]) -> list[int]:
    """`pids` and every live process below them (the server's search processes)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat[1])
    out, todo = list(pids), list(pids)
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


@dataclass
class Load:
    seconds: float
    machine_busy: float
    ours: float

    @property
    def others(self) -> float:
        return max(0.0, self.machine_busy - self.ours)

    @property
    def others_cores(self) -> float:
        return self.others / self.seconds if self.seconds else 0.0


class LoadMeter:
    def __init__(self, pids: list[int]) -> None:
        self.pids = with_descendants(pids)

    def __enter__(self) -> LoadMeter:
        self.t0 = time.perf_counter()
        self.busy0 = busy_cpu_seconds()
        self.ours0 = sum(process_cpu_seconds(p) for p in self.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        self.load = Load(
            time.perf_counter() - self.t0,
            busy_cpu_seconds() - self.busy0,
            sum(process_cpu_seconds(p) for p in self.pids) - self.ours0,
        )


def top_others(exclude: set[int], n: int = 3) -> list[str]:
    """The busiest other processes right now (over one second), for the note."""
    def snapshot() -> dict[int, tuple[float, str]]:
        out = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) not in exclude:
                pid = int(entry.name)
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                out[pid] = (process_cpu_seconds(pid), cmd.decode(errors="replace")[:80])
        return out

    a = snapshot()
    time.sleep(1.0)
    b = snapshot()
    used = sorted(((b[p][0] - a[p][0], b[p][1]) for p in b if p in a), reverse=True)
    return [f"{cpu:.2f} cores: {cmd}" for cpu, cmd in used[:n] if cpu > 0.05]


# -- catalog and photos --------------------------------------------------------------------------


def copy_catalog(src: Path, dst: Path) -> None:
    """A consistent copy (SQLite backup API, WAL included) plus any index files."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith("catalog.sqlite"):
            shutil.copy2(f, dst / f.name)
    source = sqlite3.connect(f"file:{src / 'catalog.sqlite'}?mode=ro", uri=True)
    target = sqlite3.connect(dst / "catalog.sqlite")
    with target:
        source.backup(target)
    source.close()
    target.close()


def query_photos(catalog_dir: Path, n: int, seed: int) -> list[bytes]:
    con = sqlite3.connect(f"file:{catalog_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    paths = [Path(r[0]) for r in con.execute("SELECT image_path FROM items ORDER BY rowid")]
    con.close()
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise SystemExit(f"no item images found for the catalog in {catalog_dir}")
    random.Random(seed).shuffle(paths)
    return [p.read_bytes() for p in paths[:n]]


# -- library alone -------------------------------------------------------------------------------


def library_rate(catalog: Catalog, photos: list[bytes], k: int, threads: int,
                 seconds: float) -> float:
    """Searches per second from `threads` caller threads for `seconds`."""
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(t: int) -> None:
        i = t
        while time.perf_counter() < stop:
            search_image(catalog, photos[i % len(photos)], k)
            counts[t] += 1
            i += threads

    start = time.perf_counter()
    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return sum(counts) / (time.perf_counter() - start)


def _library_process(catalog_dir: str, photos: list[bytes], k: int, offset: int, seconds: float,
                     barrier: Any, out: Any) -> None:
    catalog = Catalog.open(Settings(catalog_dir=Path(catalog_dir), intra_op_threads=1))
    for p in photos[:5]:
        search_image(catalog, p, k)
    barrier.wait()
    n, i = 0, offset
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        search_image(catalog, photos[i % len(photos)], k)
        n += 1
        i += 2
    out.put(n / (time.perf_counter() - start))
    catalog.close()


def library_rate_processes(catalog_dir: Path, photos: list[bytes], k: int, processes: int,
                           seconds: float) -> float:
    """Searches per second of the library in `processes` processes at once (one ONNX thread
    each, as the server's search processes run), started together after their warm-up."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_library_process,
                         args=(str(catalog_dir), photos, k, p, seconds, barrier, out))
             for p in range(processes)]
    for pr in procs:
        pr.start()
    rates = [out.get(timeout=seconds + 120) for _ in procs]
    for pr in procs:
        pr.join()
    return float(sum(rates))


# -- HTTP ----------------------------------------------------------------------------------------


def multipart_request(photo: bytes, k: int, port: int) -> bytes:
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"q.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + photo + (
        f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n{k}\r\n"
        f"--{BOUNDARY}--\r\n"
    ).encode()
    head = (
        f"POST /search HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


@dataclass
class HttpRun:
    seconds: float
    ok: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)


async def _client(port: int, requests: list[bytes], offset: int, stop: float, run: HttpRun,
                  k: int) -> None:
    i = offset
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    loop = asyncio.get_running_loop()
    while loop.time() < stop:
        req = requests[i % len(requests)]
        i += 1
        t0 = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            writer.write(req)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                elif name.strip().lower() == b"connection" and b"close" in value.lower():
                    close = True
            body = await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:120]!r}")
            if body.count(b'"item"') != k:
                raise RuntimeError(f"expected {k} results")
            run.ok += 1
            run.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if close:
                writer.close()
                writer = None
        except Exception as exc:  # every failure is counted, none stops the run
            run.errors += 1
            kind = type(exc).__name__ + (f" {exc}"[:60] if isinstance(exc, RuntimeError) else "")
            run.error_kinds[kind] = run.error_kinds.get(kind, 0) + 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _http(port: int, requests: list[bytes], clients: int, seconds: float,
                k: int) -> HttpRun:
    loop = asyncio.get_running_loop()
    run = HttpRun(seconds)
    start = time.perf_counter()
    stop = loop.time() + seconds
    await asyncio.gather(*(
        _client(port, requests, c * 7, stop, run, k) for c in range(clients)
    ))
    run.seconds = time.perf_counter() - start
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(
    catalog_dir: Path, port: int, extra_env: dict[str, str]
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **extra_env}
    cmd = [sys.executable, "-m", "lookalike", "serve", "--catalog", str(catalog_dir),
           "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/catalog", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not start within 120 s")


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog", type=Path, help="catalog folder (e.g. of the full dataset)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30.0,
                    help="total length of the HTTP load, split over the rounds")
    ap.add_argument("--rounds", type=int, default=3,
                    help="library and HTTP phases alternate this many times")
    ap.add_argument("--library-seconds", type=float, default=6.0,
                    help="length of each library-alone measurement (per thread count)")
    ap.add_argument("--queries", type=int, default=200, help="distinct query photos")
    ap.add_argument("--search-processes", type=int, default=None,
                    help="the server's search processes (default: what `lookalike serve` "
                    "picks, one per core; 0 = threads)")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the results as JSON")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lookalike-bench-api-"))
    rounds: list[dict[str, object]] = []
    runs: list[HttpRun] = []
    me = os.getpid()
    try:
        work = tmp / "catalog"
        copy_catalog(args.catalog, work)
        photos = query_photos(work, args.queries, args.seed)
        print(f"catalog {args.catalog} copied to {work}; {len(photos)} query photos, "
              f"mean {np.mean([len(p) for p in photos]) / 1024:.0f} KiB")
        busy_now = top_others({me})
        print("busiest other processes before the run:", busy_now or "none (idle)")

        settings = Settings(catalog_dir=work)
        port = free_port()
        extra_env = ({} if args.search_processes is None
                     else {"LOOKALIKE_SEARCH_PROCESSES": str(args.search_processes)})
        server = start_server(work, port, extra_env)  # adds its user tables before the library
        try:
            catalog = Catalog.open(settings)
            print(f"items: {len(catalog)}, model: {catalog.store.model_name}, "
                  f"index: {catalog.info()['index']}")
            for p in photos[:10]:  # warm up (model load, caches)
                search_image(catalog, p, args.k)
            requests = [multipart_request(p, args.k, port) for p in photos]
            asyncio.run(_http(port, requests[:20], args.clients, 3.0, args.k))  # warm up
            slice_s = args.seconds / args.rounds
            for r in range(args.rounds):
                with LoadMeter([me]) as lib_meter:
                    rates = {f"{t}_thread": library_rate(catalog, photos, args.k, t,
                                                         args.library_seconds) for t in (1, 2)}
                    rates["2_processes"] = library_rate_processes(
                        work, photos, args.k, 2, args.library_seconds)
                with LoadMeter([me, server.pid]) as http_meter:
                    run = asyncio.run(_http(port, requests, args.clients, slice_s, args.k))
                runs.append(run)
                best = max(rates.values())
                rps = run.ok / run.seconds
                rounds.append({
                    "library": {k: round(v, 2) for k, v in rates.items()},
                    "http_requests_per_s": round(rps, 2), "http_errors": run.errors,
                    "ratio": round(rps / best, 3),
                    "others_cores_library": round(lib_meter.load.others_cores, 2),
                    "others_cores_http": round(http_meter.load.others_cores, 2),
                })
                print(f"round {r + 1}: library {rates['1_thread']:.1f}/s (1 thread), "
                      f"{rates['2_thread']:.1f}/s (2 threads), {rates['2_processes']:.1f}/s "
                      f"(2 processes); HTTP {rps:.1f}/s, "
                      f"{run.errors} errors; ratio {rps / best:.2f}; other processes "
                      f"{lib_meter.load.others_cores:.2f} / {http_meter.load.others_cores:.2f}"
                      " cores")
            catalog.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    seconds = sum(r.seconds for r in runs)
    ok = sum(r.ok for r in runs)
    errors = sum(r.errors for r in runs)
    kinds: dict[str, int] = {}
    for r in runs:
        for k, v in r.error_kinds.items():
            kinds[k] = kinds.get(k, 0) + v
    lat = np.concatenate([np.asarray(r.latencies_ms) for r in runs])
    rps = ok / seconds
    baseline = float(np.mean([max(r["library"].values()) for r in rounds]))  # type: ignore[attr-defined]
    ratios = [float(r["ratio"]) for r in rounds]  # type: ignore[arg-type]
    ratio = float(np.median(ratios))
    others = max(max(float(r["others_cores_library"]), float(r["others_cores_http"]))  # type: ignore[arg-type]
                 for r in rounds)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "catalog": str(args.catalog),
        "clients": args.clients,
        "server_search_processes": ("serve default (one per core)"
                                    if args.search_processes is None else args.search_processes),
        "http": {
            "seconds": round(seconds, 2), "requests": ok, "errors": errors, "error_kinds": kinds,
            "requests_per_s": round(rps, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p90_ms": round(float(np.percentile(lat, 90)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
        },
        "library_baseline_per_s": round(baseline, 2),
        "rounds": rounds,
        "ratio_median_of_rounds": round(ratio, 3),
        "ratio_overall": round(rps / baseline, 3),
        "target": 0.70,
        "max_other_processes_cores": round(others, 2),
        "busy_other_processes_at_start": busy_now,
    }
    print()
    print(f"HTTP POST /search, {args.clients} clients, {seconds:.1f} s in {args.rounds} rounds: "
          f"{rps:.1f} requests/s, p50 {result['http']['p50_ms']} ms, "
          f"p99 {result['http']['p99_ms']} ms, errors {errors}" + (f" {kinds}" if errors else ""))
    print(f"library alone (best of 1 thread / 2 threads / 2 processes, mean of rounds): "
          f"{baseline:.1f} searches/s")
    print(f"ratio HTTP / library: {ratio:.2f} (median of rounds; overall {rps / baseline:.2f}; "
          f"target >= 0.70)  {'OK' if ratio >= 0.70 and errors == 0 else 'BELOW TARGET'}")
    print(f"other processes on the machine used up to {others:.2f} cores during the "
          f"measurements: {'otherwise idle' if others < 0.1 else 'NOT idle'}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
