"""Issue 19 benchmark: the same ingest on the local engine, on Ray with one node and on Ray with
two nodes on loopback (the same two cores: this measures Ray's overhead, not a speed-up), side
by side in one run; then the driver's own ceiling (validate + write, with encoding replayed).

    .venv/bin/python bench/bench_ray.py --dataset ../shared/datasets/clothing-dataset
    .venv/bin/python bench/bench_ray.py --limit 1000 --rounds 2      # quicker

Each ingest is the real command (`lookalike ingest … --map label=category --json`, plus
`--engine ray --ray-address …`) in a fresh process and catalog; each Ray cluster is started
before its run (not timed) and stopped after it. Measured per run:
- photos per second: photos added / the ingest's own seconds (Ray's connect and the actors'
  start included), and / the whole command's wall time;
- CPU seconds per photo, over every process: the command (its rusage) plus the cluster's
  processes, each one's own CPU at its last sample (every 0.25 s, /proc; see `CpuLedger`);
- peak memory of all processes: the sum of their proportional set sizes (shared pages once),
  sampled every 0.25 s, and the idle cluster's share before the run;
- the driver's CPU per photo: what one machine must spend per photo however many encode.
The writer's ceiling: `Catalog.ingest` of `--writer-rows` rows with an engine that replays
ready vectors (no decoding, no model): stages (a) validate and (c) write alone, per store
(SQLite; PostgreSQL and Milvus when this checkout's Settings has `database_url` /
`vector_store`). Targets: Ray on one node >= 80 % of the local engine's photos/s; each store's
writer >= 10x one node's encode rate. Timings on a shared machine are noisy: compare within a
run, rerun when it is quiet.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lookalike import Catalog, Settings, create
from lookalike.catalog.ingest import ImagePreparer, Payload
from lookalike.encoders.base import Encoder
from lookalike.encoders.pipeline import EncodedBatch
from lookalike.ray_cluster import LoopbackRayCluster, cluster_env, process_tree, tree_usage
from lookalike.servers import MilvusServer, PostgresServer

RAY_TARGET = 0.80  # Ray on one node / local engine, photos per second
WRITER_TARGET = 10.0  # writer items/s / one node's encode rate
STARTUP_PHOTOS = 32  # the run that measures a Ray run's fixed cost
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    label: str
    added: int = 0
    seconds: float = 0.0  # the ingest's own
    wall: float = 0.0  # the whole command
    driver_cpu: float = 0.0
    cluster_cpu: float = 0.0
    peak_memory: int = 0
    idle_memory: int = 0  # the cluster's before the run
    min_cosine: float | None = None  # against the local engine's catalog

    @property
    def rate(self) -> float:
        return self.added / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_photo(self) -> float:
        return (self.driver_cpu + self.cluster_cpu) / self.added if self.added else 0.0


@dataclass
class WriterRun:
    store: str
    rows: int
    seconds: float
    cpu: float
    dim: int
    notes: str = ""
    load: float = 0.0  # the 1-minute load average when the run ended

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class Results:
    date: str
    machine: str
    dataset: str
    photos: int
    model: str
    cores: int = 2
    runs: list[Run] = field(default_factory=list)
    writers: list[WriterRun] = field(default_factory=list)


class CpuLedger:
    """The own CPU seconds (user + system) of every process seen in some process trees, each
    counted at its last sample. A Ray node does not wait for its finished workers (they are
    reaped without their times reaching a parent's children times), so the CPU of an actor
    that exits at the end of a job is only ever seen by sampling it while it runs; processes
    living less than one sampling period are missed (a fraction of a second of CPU)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], float] = {}  # (pid, start time) -> CPU seconds

    def observe(self, pids: set[int]) -> None:
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # after the name: index 11, 12 = utime, stime; 19 = start time (clock ticks)
            self.seen[(pid, int(fields[19]))] = (int(fields[11]) + int(fields[12])) / TICKS

    def since(self, before: dict[tuple[int, int], float]) -> float:
        """CPU seconds spent since the snapshot `before` (a copy of `seen`)."""
        return sum(cpu - before.get(key, 0.0) for key, cpu in self.seen.items())


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ingest_run(label: str, dataset: Path, metadata: Path, workdir: Path, env: dict[str, str],
               cluster: LoopbackRayCluster | None) -> Run:
    """One `lookalike ingest` in a fresh process and catalog, measured (see the module doc)."""
    catalog = workdir / label
    cmd = [sys.executable, "-m", "lookalike", "ingest", str(dataset / "images"),
           "--metadata", str(metadata), "--map", "label=category",
           "--catalog", str(catalog), "--json"]
    if cluster is not None:
        cmd += ["--engine", "ray", "--ray-address", cluster.address]
    roots = cluster.pids if cluster is not None else []
    run = Run(label)
    ledger = CpuLedger()
    if roots:
        idle = process_tree(roots)
        run.idle_memory = tree_usage(idle).memory_bytes
        ledger.observe(idle)
    before = dict(ledger.seen)
    cpu0 = children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            use = tree_usage(process_tree([proc.pid, *roots]))
            run.peak_memory = max(run.peak_memory, use.memory_bytes)
            if roots:
                ledger.observe(process_tree(roots))
            done.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    run.wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{label}: ingest failed ({proc.returncode}): {err[-3000:]}")
    run.driver_cpu = children_cpu() - cpu0
    if roots:
        ledger.observe(process_tree(roots))
        run.cluster_cpu = ledger.since(before)
    report = json.loads(out)
    run.added, run.seconds = int(report["added"]), float(report["seconds"])
    return run


def min_cosine(a: Path, b: Path) -> float:
    """Lowest cosine between the two catalogs' vectors of one item (the same ids required)."""
    def load(folder: Path) -> dict[str, np.ndarray]:
        with Catalog.open(Settings(catalog_dir=folder), create=False) as cat:
            ids, vecs = cat.store.vectors()
            return {it.id: v for it, v in zip(cat.store.get_many(ids.tolist()), vecs,
                                              strict=True)}
    va, vb = load(a), load(b)
    if va.keys() != vb.keys():
        raise SystemExit(f"{a} and {b} hold different items")
    return min(float(va[k] @ vb[k]) for k in va)


def autogroup() -> str:
    """Linux's per-session CPU groups, when on, share the cores between sessions before any
    `nice` counts: Milvus's own low-priority index builds then take its session's full share
    beside the writer. Printed with the machine, as it changes the Milvus writer's reading."""
    try:
        flag = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return ""
    return ", autogroup " + ("on" if flag == "1" else "off")


# -- the writer's ceiling -------------------------------------------------------------------

@dataclass(frozen=True)
class ReplayEngine:
    """An encode engine that costs nothing: ready unit vectors for every photo, unique fake
    content and perceptual hashes (so the repost check runs as on real photos), no file
    opened. What is left of an ingest is the driver's own work."""

    vectors: np.ndarray
    batch: int = 32
    #: photos replayed by earlier calls: an ingest calls `encode` once per window of
    #: WINDOW_ROWS rows, and each window's photos must stay unique against the earlier ones
    replayed: list[int] = field(default_factory=lambda: [0])

    def encode(self, encoder: Encoder, images: Sequence[str],
               prepare: ImagePreparer) -> Iterator[EncodedBatch[int, Payload]]:
        root = prepare.root or Path("/")
        base = self.replayed[0]
        self.replayed[0] += len(images)
        for start in range(0, len(images), self.batch):
            index = list(range(start, min(start + self.batch, len(images))))
            yield EncodedBatch(
                items=index,
                payloads=[(digest, {}, str(root / images[i]),
                           (int(digest[:16], 16), int(digest[16:32], 16)))
                          for i in index
                          for digest in [hashlib.sha256(str(base + i).encode()).hexdigest()]],
                vectors=self._vectors([base + i for i in index]),
            )

    def _vectors(self, photos: list[int]) -> np.ndarray:
        """The vectors of these photos: the pool's in turn, each pass with the coordinates
        rotated by its number (a rotated random vector is nearly orthogonal to the original:
        no photo repeats another's vector, so no replayed photo is taken for a repost)."""
        n = len(self.vectors)
        out = self.vectors[[p % n for p in photos]]
        for row, p in enumerate(photos):
            if p >= n:
                out[row] = np.roll(out[row], p // n)
        return out


def writer_rows(metadata: Path, rows: int, workdir: Path) -> Path:
    """The data set's rows repeated (with new ids) up to `rows` rows."""
    with metadata.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        source = list(reader)
    out = workdir / f"writer-{rows}.csv"
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["id", *header])
        writer.writeheader()
        for i in range(rows):
            row = source[i % len(source)]
            writer.writerow({"id": f"{row['image']}-{i // len(source)}", **row})
    return out


#: distinct vectors a writer run replays at most (400,000 x 2,624 float32: 4.2 GB)
VECTOR_POOL = 400_000


def writer_run(store: str, overrides: dict[str, Any], dataset: Path, rows_csv: Path,
               rows: int, encoder: Encoder, workdir: Path) -> WriterRun:
    # distinct unit vectors (float32 from the start: a million at 2,624 dims is 10.5 GB), at
    # most `VECTOR_POOL` of them: a larger ingest replays the pool's vectors rotated
    # (`ReplayEngine._vectors`)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((min(rows, VECTOR_POOL), encoder.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    settings = Settings(catalog_dir=workdir / f"writer-{store}", model=encoder.name,
                        **overrides)
    with Catalog.open(settings, encoder=encoder) as cat:
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        report = cat.ingest(dataset / "images", rows_csv, columns={"label": "category"},
                            engine=ReplayEngine(vectors))
        seconds = time.perf_counter() - started
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
    if report.added != rows:
        raise SystemExit(f"writer {store}: added {report.added} of {rows}")
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return WriterRun(store, rows, seconds, cpu, encoder.dim, load=os.getloadavg()[0])


def store_slots(workdir: Path, stores: Sequence[str]) -> list[tuple[str, dict[str, Any], Any]]:
    """(name, Settings overrides, server to stop) of each of `stores` this checkout can write
    to."""
    fields = Settings.model_fields
    slots: list[tuple[str, dict[str, Any], Any]] = []
    if "sqlite" in stores:
        slots.append(("sqlite", {}, None))
    if "database_url" in fields and "postgresql" in stores:
        pg = PostgresServer(durable=True)
        pg.start()
        slots.append(("postgresql", {"database_url": pg.url}, pg))
    if "vector_store" in fields and "milvus" in stores:
        mv = MilvusServer(workdir / "milvus")
        mv.start()
        slots.append(("milvus", {"vector_store": mv.uri}, mv))
    return slots


# -- report ---------------------------------------------------------------------------------

def summarise(res: Results) -> str:
    lines = [f"{res.date}  {res.machine}  {res.photos} photos  model {res.model}", ""]
    lines.append(f"{'run':<12}{'photos/s':>9}{'(wall)':>8}{'CPU s/photo':>12}"
                 f"{'driver ms/photo':>16}{'peak MB':>9}{'idle MB':>9}{'min cos':>9}")
    by: dict[str, list[Run]] = {}
    for run in res.runs:
        by.setdefault(run.label, []).append(run)
        cos = "" if run.min_cosine is None else f"{run.min_cosine:.5f}"
        lines.append(
            f"{run.label:<12}{run.rate:>9.1f}{run.added / run.wall:>8.1f}"
            f"{run.cpu_per_photo * 1000:>10.2f}ms{run.driver_cpu / run.added * 1000:>16.2f}"
            f"{run.peak_memory / 2**20:>9.0f}{run.idle_memory / 2**20:>9.0f}{cos:>9}")

    def median_rate(label: str) -> float:
        return statistics.median(r.rate for r in by.get(label, [])) if label in by else 0.0

    local, ray1, ray2 = median_rate("local"), median_rate("ray-1-node"), median_rate("ray-2-nodes")
    lines.append("")
    if local and ray1:
        ratio = ray1 / local
        lines.append(f"Ray 1 node / local: {ratio:.2f}  (target >= {RAY_TARGET:.2f}: "
                     f"{'PASS' if ratio >= RAY_TARGET else 'FAIL'})")
    if local and ray2:
        lines.append(f"Ray 2 nodes (loopback, same cores) / local: {ray2 / local:.2f}")
    node_rate = ray1 or local
    for w in res.writers:
        ratio = w.rate / node_rate if node_rate else 0.0
        lines.append(
            f"writer {w.store:<11}{w.rate:>9.0f} items/s ({w.rate * w.dim * 4 / 2**20:.0f} MB/s "
            f"of vectors, {w.cpu / w.rows * 1000:.2f} ms CPU/item, load {w.load:.1f}) = "
            f"{ratio:.1f}x one node "
            f"(target >= {WRITER_TARGET:.0f}x: {'PASS' if ratio >= WRITER_TARGET else 'FAIL'})")
    if res.writers and node_rate:
        ceiling = min(w.rate for w in res.writers)
        lines.append(f"machines before the slowest writer limits: about {ceiling / node_rate:.0f}"
                     f" (one node encodes {node_rate:.0f} photos/s here)")
    startup = by.get("ray-startup", [])
    if startup and "ray-1-node" in by:
        fixed = startup[0]
        full = by["ray-1-node"]
        extra = statistics.median(r.added for r in full) - fixed.added
        steady = extra / (statistics.median(r.seconds for r in full) - fixed.seconds)
        driver = (statistics.median(r.driver_cpu for r in full) - fixed.driver_cpu) / extra
        total_cpu = (statistics.median(r.driver_cpu + r.cluster_cpu for r in full)
                     - fixed.driver_cpu - fixed.cluster_cpu) / extra
        local_cpu = statistics.median(r.cpu_per_photo for r in by.get("local", []) or [fixed])
        lines.append(f"a Ray run's fixed cost ({fixed.added} photos): {fixed.seconds:.1f} s, "
                     f"{fixed.driver_cpu + fixed.cluster_cpu:.1f} CPU s; beyond it one node "
                     f"encodes {steady:.1f} photos/s"
                     + (f" = {steady / local:.2f} x local" if local else "")
                     + f"; the driver spends {driver * 1000:.2f} ms CPU per photo "
                     f"(at most {1 / driver:.0f} photos/s on one core)")
        if "local" in by:
            lines.append(f"  beyond the fixed cost, Ray spends {total_cpu * 1000:.2f} ms CPU per "
                         f"photo over every process: local / Ray by CPU = "
                         f"{local_cpu / total_cpu:.2f} (what an idle, CPU-bound node would see "
                         "on a large ingest)")
    # The same by CPU time, which a busy machine distorts less than wall time: one node at
    # all its cores vs. a writer on one core, and the driver's own cost per photo.
    ray_runs = by.get("ray-1-node") or by.get("local") or []
    if ray_runs:
        cpu = statistics.median(r.cpu_per_photo for r in ray_runs)
        node_cpu_rate = res.cores / cpu
        lines.append(f"by CPU time: one node of {res.cores} cores encodes at most "
                     f"{node_cpu_rate:.0f} photos/s ({cpu * 1000:.2f} ms CPU per photo)")
        for w in res.writers:
            per_core = w.rows / w.cpu if w.cpu else 0.0
            lines.append(f"  writer {w.store}: {per_core:.0f} items per CPU second = "
                         f"{per_core / node_cpu_rate:.1f}x one node")
        ray_driven = [r for r in by.get("ray-1-node", []) + by.get("ray-2-nodes", [])]
        if ray_driven:
            per_photo = statistics.median(r.driver_cpu / r.added for r in ray_driven)
            lines.append(f"  the Ray driver: {per_photo * 1000:.2f} ms CPU per photo (start-up "
                         f"included) = at most {1 / per_photo:.0f} photos/s on one core")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=Path("../shared/datasets/clothing-dataset"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N rows")
    ap.add_argument("--rounds", type=int, default=1, help="each run N times, alternating")
    ap.add_argument("--runs", default="local,ray-1-node,ray-2-nodes")
    ap.add_argument("--writer-rows", type=int, default=20_000)
    ap.add_argument("--stores", default="sqlite,postgresql,milvus",
                    help="the writers' stores to measure (comma-separated)")
    ap.add_argument("--no-writers", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("artifacts/bench_ray.json"))
    ap.add_argument("--summary", type=Path, metavar="JSON",
                    help="print the summary of an earlier run's --out file, measure nothing")
    args = ap.parse_args()
    if args.summary:
        data = json.loads(args.summary.read_text())
        data.pop("summary", None)
        res = Results(**{**data, "runs": [Run(**r) for r in data["runs"]],
                         "writers": [WriterRun(**w) for w in data["writers"]]})
        print(summarise(res))
        return

    cores = os.cpu_count() or 1
    model = Settings().model
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        workdir = Path(tmp)
        metadata = args.dataset / "images.csv"
        if args.limit:
            with metadata.open(encoding="utf-8") as f:
                lines = f.readlines()[: args.limit + 1]
            metadata = workdir / "images.csv"
            metadata.write_text("".join(lines), encoding="utf-8")
        with metadata.open(encoding="utf-8") as f:
            photos = sum(1 for _ in f) - 1
        res = Results(
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            machine=f"{platform.processor() or platform.machine()}, {cores} cores, "
                    f"load {os.getloadavg()[0]:.1f}{autogroup()}",
            dataset=str(args.dataset), photos=photos, model=model, cores=cores,
        )
        env = cluster_env()
        wanted = [label for label in args.runs.split(",") if label]  # "" runs writers only
        shapes = {"ray-1-node": (1, cores), "ray-2-nodes": (2, max(1, cores // 2))}
        for rnd in range(args.rounds):
            for label in wanted:
                folder = workdir / f"round{rnd}"
                folder.mkdir(exist_ok=True)
                if label == "local":
                    run = ingest_run(label, args.dataset, metadata, folder, env, None)
                else:
                    nodes, cpus = shapes[label]
                    with LoopbackRayCluster(nodes=nodes, cpus_per_node=cpus) as cluster:
                        time.sleep(2)  # the cluster settles: its start is not measured
                        run = ingest_run(label, args.dataset, metadata, folder, env, cluster)
                    if (folder / "local").exists():
                        run.min_cosine = min_cosine(folder / "local", folder / label)
                res.runs.append(run)
                print(f"round {rnd + 1} {label}: {run.rate:.1f} photos/s, "
                      f"{run.cpu_per_photo * 1000:.2f} ms CPU/photo", flush=True)
                for path in folder.glob(f"{label}/*"):  # keep the disk small
                    if label != "local" and path.is_file():
                        path.unlink()

        if "ray-1-node" in wanted:  # the fixed cost of a Ray run: the same, on 32 photos
            small = workdir / "startup.csv"
            with metadata.open(encoding="utf-8") as f:
                small.write_text("".join(f.readlines()[:STARTUP_PHOTOS + 1]), encoding="utf-8")
            folder = workdir / "startup"
            folder.mkdir()
            with LoopbackRayCluster(nodes=1, cpus_per_node=cores) as cluster:
                time.sleep(2)
                run = ingest_run("ray-1-node", args.dataset, small, folder, env, cluster)
            run.label = "ray-startup"
            res.runs.append(run)
            print(f"ray start-up: {run.seconds:.1f} s, {run.driver_cpu:.1f} s driver CPU, "
                  f"{run.cluster_cpu:.1f} s cluster CPU", flush=True)

        if not args.no_writers:
            encoder = create(model, Settings(model=model))
            rows_csv = writer_rows(metadata, args.writer_rows, workdir)
            slots = store_slots(workdir, args.stores.split(","))
            try:
                for store, overrides, _ in slots:
                    res.writers.append(writer_run(store, overrides, args.dataset, rows_csv,
                                                  args.writer_rows, encoder, workdir))
                    w = res.writers[-1]
                    print(f"writer {store}: {w.rate:.0f} items/s, {w.cpu:.1f} s CPU "
                          f"({w.cpu / w.rows * 1000:.2f} ms/item), load {w.load:.1f}",
                          flush=True)
            finally:
                for _, _, server in slots:
                    if server is not None:
                        server.stop()

    print()
    print(summarise(res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(res)
    data["summary"] = summarise(res).splitlines()
    args.out.write_text(json.dumps(data, indent=2))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
