"""`lookalike ingest --engine ray` on a two-node Ray cluster on loopback (1 CPU per node, started
and stopped by this module): the same catalog as the local engine with encoder actors on both
nodes, and a driver SIGKILLed in the middle of an ingest whose rerun completes it without
duplicates. Stopping the cluster leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike.ray_cluster import LoopbackRayCluster, process_tree
from ray_world import (
    GOOD,
    Photos,
    Snapshot,
    assert_same,
    need_ray,
    snapshot,
    stored_rows,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

need_ray()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackRayCluster]:
    started = LoopbackRayCluster(nodes=2, cpus_per_node=1).start()
    try:
        yield started
    finally:
        started.stop()
        assert started.leftovers() == [], "processes of the cluster outlived its stop"


def ingest_cmd(photos: Photos, catalog: Path, cluster: LoopbackRayCluster) -> list[str]:
    return [sys.executable, "-m", "lookalike", "ingest", str(photos.images),
            "--metadata", str(photos.metadata), "--catalog", str(catalog),
            "--engine", "ray", "--ray-address", cluster.address, "--json"]


def actors_per_node(cluster: LoopbackRayCluster) -> list[int]:
    """Encoder actor processes in each node's process tree."""
    counts = []
    for pid in cluster.pids:
        n = 0
        for child in process_tree([pid]):
            try:
                title = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            n += title.startswith(b"ray::MapWorker") and b"EncodeActor" in title
        counts.append(n)
    return counts


@pytest.mark.timeout(500)
def test_cli_ingest_on_two_nodes_equals_the_local_engine(
    cluster: LoopbackRayCluster, ray_photos: Photos, local_reference: Snapshot, tmp_path: Path,
) -> None:
    catalog = tmp_path / "cat"
    proc = subprocess.Popen(ingest_cmd(ray_photos, catalog, cluster), env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    busiest = [0, 0]
    stop = threading.Event()

    def watch() -> None:  # which nodes run encoder actors while the ingest runs
        while not stop.is_set():
            busiest[:] = [max(a, b) for a, b in zip(busiest, actors_per_node(cluster),
                                                    strict=True)]
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=450)
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, err
    assert busiest == [1, 1], f"encoder actors per node: {busiest}"
    report = json.loads(out)
    assert_same(snapshot(catalog, report), local_reference)


@pytest.mark.timeout(800)
def test_a_driver_killed_mid_ingest_resumes_without_duplicates(
    cluster: LoopbackRayCluster, ray_photos: Photos, local_reference: Snapshot, tmp_path: Path,
) -> None:
    catalog = tmp_path / "cat"
    # small batches and commits, so the kill lands between two commits, mid-run
    env = {**cluster.env, "LOOKALIKE_RAY_BATCH_SIZE": "2", "LOOKALIKE_COMMIT_EVERY": "4"}
    proc = subprocess.Popen(ingest_cmd(ray_photos, catalog, cluster), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 400
    while stored_rows(catalog)[0] < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    partial = stored_rows(catalog)[0]
    assert 0 < partial < GOOD, f"the kill must land midway (had {partial} items)"

    rerun = subprocess.run(ingest_cmd(ray_photos, catalog, cluster), env=env,
                           capture_output=True, text=True, timeout=450)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["added"] == GOOD - partial
    assert stored_rows(catalog) == (GOOD, GOOD, GOOD)  # no item and no photo twice
    got = snapshot(catalog)
    want = local_reference
    # the rerun reports only its own part; the stored catalog is the local engine's
    assert_same(Snapshot(got.items, got.vectors, got.rejected, {}),
                Snapshot(want.items, want.vectors, want.rejected, {}))
