"""The Ray engine on a local Ray of 2 CPUs (started once for this module, in this process):
the same catalog as the local engine (items, tags, vectors at cosine >= 0.9999, rejects,
counts) with the default settings — so a 2-core run finishes —, with the photos' bytes shipped
by the driver, and with an encoder actor killed in the middle of the run; and a re-embedding's
encode step on Ray equal to the local one."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lookalike import Catalog, Settings, create
from lookalike.attributes import default_taggers
from lookalike.catalog.ingest import IngestProgress, LocalEngine, encode_stored
from lookalike.catalog.ray_engine import RayEngine
from lookalike.ray_cluster import process_tree, processes_mentioning
from ray_world import (
    GOOD,
    Photos,
    Snapshot,
    assert_same,
    need_ray,
    snapshot,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ray = need_ray()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray with 2 CPUs, like the 2-core machines the hang was seen on."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    folder = tempfile.mkdtemp(prefix="lkr-", dir="/tmp")  # short: Ray's socket paths
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=folder, logging_level="warning")
    try:
        yield
    finally:
        ours = ray_processes(folder)
        ray.shutdown()
    assert ours, "no process of the local Ray found"

    def left() -> set[int]:  # its processes still alive, or any naming its folder
        alive = {pid for pid in ours if Path(f"/proc/{pid}").exists()}
        return alive | set(processes_mentioning(Path(folder)))

    deadline = time.monotonic() + 30
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left(), "processes of the local Ray outlived ray.shutdown()"


def ray_processes(folder: str) -> set[int]:
    """This process's descendants that belong to Ray (workers are titled `ray::…`; its
    servers run from the ray package or name the session folder)."""
    found = set()
    for pid in process_tree([os.getpid()]) - {os.getpid()}:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if (command.startswith(b"ray::") or b"/site-packages/ray/" in command
                or folder.encode() in command):
            found.add(pid)
    return found


def ingest_with(settings: Settings, photos: Photos,
                progress: list[IngestProgress] | None = None) -> Snapshot:
    with Catalog.open(settings, taggers=default_taggers) as cat:
        report = cat.ingest(photos.images, photos.metadata,
                            report_path=Path(settings.catalog_dir) / "rejected.csv",
                            progress=None if progress is None else progress.append)
    return snapshot(Path(settings.catalog_dir), report.as_dict())


@pytest.mark.timeout(400)  # a hang (actors holding every CPU) fails here instead of stalling
def test_default_ray_engine_on_two_cpus_equals_the_local_engine(
    local_ray: None, ray_photos: Photos, local_reference: Snapshot, tmp_path: Path,
) -> None:
    seen: list[IngestProgress] = []
    got = ingest_with(Settings(catalog_dir=tmp_path / "cat", engine="ray"), ray_photos, seen)
    assert_same(got, local_reference)
    assert seen and seen[-1].done == seen[-1].total == GOOD + 3  # + a duplicate, 2 unreadable
    assert [p.done for p in seen] == sorted(p.done for p in seen)


@pytest.mark.timeout(400)
def test_bytes_shipped_by_the_driver_give_the_same_catalog(
    local_ray: None, ray_photos: Photos, local_reference: Snapshot, tmp_path: Path,
) -> None:
    settings = Settings(catalog_dir=tmp_path / "cat", engine="ray", ray_read="bytes")
    assert_same(ingest_with(settings, ray_photos), local_reference)


def encoder_actors() -> list[int]:
    """The encoder actors' processes (Ray names them after the map_batches class)."""
    found = []
    for pid in process_tree([os.getpid()]):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::MapWorker") and b"EncodeActor" in title:
            found.append(pid)
    return found


@pytest.mark.timeout(400)
def test_a_killed_encoder_actor_is_restarted_and_its_batches_retried(
    local_ray: None, ray_photos: Photos, local_reference: Snapshot, tmp_path: Path,
) -> None:
    killed: list[int] = []

    def kill_one(progress: IngestProgress) -> None:
        if not killed and progress.done < progress.total:
            actors = encoder_actors()
            assert actors, "no encoder actor process found"
            os.kill(actors[0], signal.SIGKILL)
            killed.append(actors[0])

    settings = Settings(catalog_dir=tmp_path / "cat", engine="ray", ray_batch_size=4)
    with Catalog.open(settings, taggers=default_taggers) as cat:
        report = cat.ingest(ray_photos.images, ray_photos.metadata,
                            report_path=tmp_path / "cat" / "rejected.csv", progress=kill_one)
    assert killed, "the run ended before an actor could be killed"
    assert_same(snapshot(tmp_path / "cat", report.as_dict()), local_reference)


@pytest.mark.timeout(400)
def test_re_embedding_stored_photos_on_ray_equals_the_local_engine(
    local_ray: None, local_reference: Snapshot,
) -> None:
    """The re-embedding's encode step (`encode_stored`, another model) gives the same vectors
    on both engines; a photo gone since the ingest is a failure on both."""
    stored = [(i, str(item["image_path"]), str(item["image_hash"]))
              for i, item in enumerate(local_reference.items.values())]
    stored.append((len(stored), "/nonexistent/photo.jpg", "0" * 64))
    encoder = create("efficientnet-lite0-int8")
    results = {}
    for name, engine in (("local", LocalEngine()), ("ray", RayEngine(batch_size=16))):
        batches = list(encode_stored(engine, encoder, stored))
        results[name] = (
            [r for b in batches for r in b.rowids],
            np.concatenate([b.vectors for b in batches]),
            [f for b in batches for f in b.failures],
        )
    (local_ids, local_vecs, local_failed), (ray_ids, ray_vecs, ray_failed) = (
        results["local"], results["ray"])
    assert local_ids == ray_ids == list(range(GOOD))
    assert local_failed == ray_failed and [r for r, _ in ray_failed] == [GOOD]
    assert local_vecs.shape == (GOOD, encoder.dim)
    assert float(np.min(np.sum(local_vecs * ray_vecs, axis=1))) >= 0.9999


@pytest.mark.timeout(400)
def test_reembed_on_ray_switches_to_the_same_vectors_as_the_local_engine(
    local_ray: None, ray_photos: Photos, tmp_path: Path,
) -> None:
    """`reembed` with the Ray engine (what `lookalike reembed --engine ray` runs): the same
    items switched to the new model, vectors at cosine >= 0.9999 to the local engine's."""
    from lookalike.catalog.reembed import reembed

    switched = {}
    for name, engine in (("local", LocalEngine()), ("ray", RayEngine(batch_size=16))):
        settings = Settings(catalog_dir=tmp_path / name, model="fake")
        with Catalog.open(settings, taggers=default_taggers) as cat:
            assert cat.ingest(ray_photos.images, ray_photos.metadata).added == GOOD
            report = reembed(cat, "fake-32", engine=engine)
            assert report.switched and report.encoded == GOOD and not report.failed
            assert (cat.store.model_name, cat.store.dim) == ("fake-32", 32)
            ids, vectors = cat.store.vectors()
            items = cat.store.get_many(ids.tolist())
            switched[name] = {it.id: v for it, v in zip(items, vectors, strict=True)}
    assert switched["local"].keys() == switched["ray"].keys()
    assert len(switched["ray"]) == GOOD
    for key, vector in switched["local"].items():
        assert float(vector @ switched["ray"][key]) >= 0.9999, key


@pytest.mark.timeout(200)
def test_an_encoder_pool_the_cluster_cannot_place_is_a_clear_error(
    local_ray: None, local_reference: Snapshot,
) -> None:
    """The whole pool comes up before the first photo is sent (so a short run is spread over
    every actor); three 1-CPU actors never fit on 2 CPUs: a clear error after the wait, not a
    run on whatever actors happened to start."""
    from lookalike.errors import LookalikeError

    stored = [(i, str(item["image_path"]), str(item["image_hash"]))
              for i, item in enumerate(local_reference.items.values())]
    engine = RayEngine(actors=3, cpus_per_actor=1.0, actor_start_s=5)
    started = time.monotonic()
    with pytest.raises(LookalikeError, match="Timed out while starting actors"):
        list(encode_stored(engine, create("fake"), stored))
    assert time.monotonic() - started < 120
