"""The Ray engine: stage (b) of an ingest or a re-embedding on a Ray cluster, through Ray Data.

    engine = RayEngine.from_settings(Settings(engine="ray", ray_address="10.0.0.1:6379"))
    ingest(store, encoder, photos, metadata, engine=engine)      # or Catalog.ingest

The driver (this process) validates the rows and writes the results exactly as the local
engine does (`lookalike.catalog.ingest`); only decoding and encoding move to the cluster:

    from_items(rows) ─▶ map_batches(encoder actor pool) ─▶ iter_batches ─▶ writer (this process)

Each actor holds one ONNX encoder, rebuilt from the driver's model file (shipped once through
the object store, so every node runs the very same model), and runs on each batch what a
worker of the local engine runs on each chunk (`encode_chunk` over `ImagePreparer`). Results
come back in input order (Ray Data's `preserve_order`), streaming, so the writer's dedupe by
bytes keeps the first row and the progress bar moves as batches land.

How photos reach the actors (`Settings.ray_read`):
- `paths` (default): rows carry the image's name, the actor resolves, checks and reads the
  file. A few bytes per photo cross the cluster, the reading is spread over every node; every
  node must see the images folder at the same path (a shared file system).
- `bytes`: the driver reads each file (same checks) and ships its bytes, a window of up to
  `BYTES_WINDOW` at a time (each window starts its actor pool again). No shared folder, but the
  driver's disk and network carry every byte.

Faults: actors are restarted by Ray and their batches retried (`max_restarts` /
`max_task_retries` = `Settings.ray_retries`). A killed driver loses at most the items not yet
committed; a rerun skips what is stored, as with the local engine.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.catalog.ingest import (
    DuplicateImageError,
    ImagePreparer,
    Payload,
)
from lookalike.catalog.schema import Tag
from lookalike.config import Settings
from lookalike.encoders.base import Encoder, ModelCard
from lookalike.encoders.onnx import OnnxEncoder
from lookalike.encoders.pipeline import EncodedBatch, encode_chunk
from lookalike.errors import ImageLoadError, LookalikeError

__all__ = ["BYTES_WINDOW", "EncoderSpec", "RayEngine", "actor_count", "connect"]

#: Most photo bytes the driver holds and ships at once with `ray_read="bytes"`.
BYTES_WINDOW = 256 * 1024 * 1024
#: Most blocks the input rows are cut into (each one object in Ray's store): a block holds
#: one Ray Data batch of photos, or more when there are more than this many batches.
MAX_BLOCKS = 2000
#: Seconds the whole encoder pool has to come up before the first photo is sent. Ray Data's
#: default starts on the first ready actor, which then takes every batch of a short run while
#: its peers still load their models; a pool that cannot be placed in time is a clear error.
ACTOR_START_S = 300

log = logging.getLogger(__name__)


def _ray() -> Any:
    """The `ray` module, or a clear error when the extra is not installed."""
    # no usage statistics leave the machine (read by Ray when it starts a local cluster)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data
    except ImportError:
        raise LookalikeError(
            "the ray engine needs Ray Data: pip install 'lookalike[ray]'"
        ) from None
    return ray


def connect(address: str | None) -> bool:
    """Connect this process to Ray (the cluster at `address`, else $RAY_ADDRESS, else a new
    local Ray on this machine's cores); True if this call started it (the caller shuts it
    down). Already connected: nothing happens."""
    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs["include_dashboard"] = False  # a local Ray: nothing listens beyond what it needs
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise LookalikeError(f"cannot connect to Ray at {address or 'a new local Ray'}: "
                             f"{exc}") from None
    return True


def actor_count(cpus_per_actor: float) -> int:
    """How many actors of `cpus_per_actor` CPUs the live nodes of the connected cluster hold."""
    ray = _ray()
    fits = 0
    for node in ray.nodes():
        if node.get("Alive"):
            cpus = float(node.get("Resources", {}).get("CPU", 0.0))
            fits += math.floor(cpus / cpus_per_actor + 1e-9)
    if fits < 1:
        raise LookalikeError(
            f"no Ray node has {cpus_per_actor} CPUs for an encoder actor: lower "
            "LOOKALIKE_RAY_CPUS_PER_ACTOR"
        )
    return fits


def _first_lines(exc: BaseException, limit: int = 600) -> str:
    """The gist of a Ray error: its message's first non-empty lines, up to `limit` characters."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class EncoderSpec:
    """How an actor rebuilds the driver's encoder: an ONNX model from the file's bytes (a Ray
    object: sent once per node) and card, so every node runs the driver's very model; any
    other encoder (the fake one of the tests) pickled whole."""

    card: ModelCard | None = None
    model: Any = None  # a list holding the ObjectRef of the model file's bytes (not resolved)
    pickled: Encoder | None = None

    @classmethod
    def of(cls, encoder: Encoder) -> EncoderSpec:
        if isinstance(encoder, OnnxEncoder):
            ray = _ray()
            return cls(card=encoder.card, model=[ray.put(encoder.model_path.read_bytes())])
        return cls(pickled=encoder)

    def build(self, threads: int) -> Encoder:
        if self.pickled is not None:
            return self.pickled
        assert self.card is not None and self.model is not None
        ray = _ray()
        data: bytes = ray.get(self.model[0])
        with tempfile.TemporaryDirectory(prefix="lookalike-model-") as folder:
            path = Path(folder) / "model.onnx"
            path.write_bytes(data)
            return OnnxEncoder(path, self.card, threads=threads)  # loaded: the file may go


class EncodeActor:
    """One Ray Data actor: an encoder, and the photo preparation of the ingest. Called on a
    batch of rows (`seq`, `image`, and with bytes shipped `data`, `digest`, `path`), it returns
    one result row per input row: `seq`, `ok`, `vector`, `phash` (the photo's and its
    mirror's perceptual hashes), `digest`, `path`, `tags` (JSON), `error` and `error_file`
    (the failed image's reason and file)."""

    def __init__(
        self, spec: EncoderSpec, prepare: ImagePreparer, batch_size: int, threads: int,
        version: str,
    ) -> None:
        from lookalike import __version__

        if version != __version__:  # another preprocessing could give other vectors
            raise LookalikeError(
                f"this Ray node runs lookalike {__version__}, the driver {version}: install "
                "the same version on every node"
            )
        self.encoder = spec.build(threads)
        self.prepare = prepare
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        seqs = [int(s) for s in batch["seq"]]
        images = [str(i) for i in batch["image"]]
        shipped = "data" in batch
        n = len(seqs)

        def prep(i: int) -> tuple[NDArray[np.uint8], Payload]:
            if not shipped:
                return self.prepare(images[i])
            crop, tags, hashes = self.prepare.decode(images[i], bytes(batch["data"][i]))
            return crop, (str(batch["digest"][i]), tags, str(batch["path"][i]), hashes)

        done = encode_chunk(self.encoder, range(n), prep, batch_size=self.batch_size)
        vectors = np.zeros((n, self.encoder.dim), dtype=np.float32)
        ok = np.zeros(n, dtype=bool)
        digest, path, tags, error, error_file = ([""] * n for _ in range(5))
        phash = np.zeros((n, 2), dtype=np.uint64)  # the photo's and its mirror's
        for pos, (i, (dig, pixel_tags, real, hashes)) in enumerate(
            zip(done.items, done.payloads, strict=True)
        ):
            ok[i] = True
            vectors[i] = done.vectors[pos]
            digest[i], path[i] = dig, real
            phash[i] = hashes
            tags[i] = json.dumps({k: t.model_dump() for k, t in pixel_tags.items()})
        for i, exc in done.failures:
            failure = exc if isinstance(exc, ImageLoadError) else ImageLoadError(
                images[i], str(exc))
            error[i], error_file[i] = failure.reason, failure.source
        return {
            "seq": np.asarray(seqs, dtype=np.int64),
            "ok": ok,
            "vector": vectors,
            "phash": phash,
            **{name: np.asarray(col, dtype=object) for name, col in (
                ("digest", digest), ("path", path), ("tags", tags), ("error", error),
                ("error_file", error_file))},
        }


def results(columns: dict[str, NDArray[Any]]) -> EncodedBatch[int, Payload]:
    """An actor's result rows as the writer's batch (items are the rows' `seq`)."""
    batch: EncodedBatch[int, Payload] = EncodedBatch()
    keep = []
    for pos, (seq, ok) in enumerate(zip(columns["seq"], columns["ok"], strict=True)):
        if ok:
            tags = {k: Tag.model_validate(v) for k, v in json.loads(columns["tags"][pos]).items()}
            batch.items.append(int(seq))
            hashes = columns["phash"][pos]
            batch.payloads.append((str(columns["digest"][pos]), tags, str(columns["path"][pos]),
                                   (int(hashes[0]), int(hashes[1]))))
            keep.append(pos)
        else:
            batch.failures.append((int(seq), ImageLoadError(
                str(columns["error_file"][pos]), str(columns["error"][pos]))))
    vectors = np.asarray(columns["vector"], dtype=np.float32)
    batch.vectors = vectors[keep] if len(keep) < len(vectors) else vectors
    return batch


@dataclass(frozen=True)
class RayEngine:
    """Stage (b) on a Ray cluster: Ray Data `from_items` → `map_batches` over a pool of
    `EncodeActor`s → `iter_batches`, in input order, streaming. See the module's doc."""

    address: str | None = None
    actors: int = 0  # 0: as many as the cluster holds
    cpus_per_actor: float = 0.75
    batch_size: int = 32  # photos per Ray Data batch
    model_batch: int = 4  # photos per model run inside an actor
    read: str = "paths"  # or "bytes"
    retries: int = 3
    actor_start_s: int = ACTOR_START_S

    @classmethod
    def from_settings(cls, settings: Settings) -> RayEngine:
        return cls(
            address=settings.ray_address,
            actors=settings.ray_actors,
            cpus_per_actor=settings.ray_cpus_per_actor,
            batch_size=settings.ray_batch_size,
            model_batch=settings.batch_size,
            read=settings.ray_read,
            retries=settings.ray_retries,
        )

    def encode(
        self, encoder: Encoder, images: Sequence[str], prepare: ImagePreparer
    ) -> Iterator[EncodedBatch[int, Payload]]:
        if not images:
            return
        ray = _ray()
        started = connect(self.address)
        quiet = logging.getLogger("ray.data")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # no execution plans and progress notes on the console
        try:
            spec = EncoderSpec.of(encoder)
            actors = self.actors or actor_count(self.cpus_per_actor)
            # `seen` is the writer's live set: it cannot travel; the writer's check decides
            remote = replace(prepare, seen=None)
            if self.read == "bytes":
                yield from self._bytes(ray, spec, actors, images, prepare, remote)
            else:
                rows = [{"seq": i, "image": name} for i, name in enumerate(images)]
                yield from self._run(ray, spec, actors, rows, remote)
        finally:
            quiet.setLevel(level)
            if started:
                ray.shutdown()

    def _bytes(
        self, ray: Any, spec: EncoderSpec, actors: int, images: Sequence[str],
        prepare: ImagePreparer, remote: ImagePreparer,
    ) -> Iterator[EncodedBatch[int, Payload]]:
        """`ray_read="bytes"`: read here (the same checks, and the early duplicate exit against
        the writer's live set), ship a window of bytes, encode it there; window after window."""
        position = 0
        while position < len(images):
            window: list[dict[str, Any]] = []
            failed: EncodedBatch[int, Payload] = EncodedBatch()
            size = 0
            while position < len(images) and size < BYTES_WINDOW:
                try:
                    data, digest, path = prepare.read(images[position])
                except (ImageLoadError, DuplicateImageError) as exc:
                    failed.failures.append((position, exc))
                else:
                    window.append({"seq": position, "image": images[position], "data": data,
                                   "digest": digest, "path": path})
                    size += len(data)
                position += 1
            if failed.failures:
                failed.vectors = np.zeros((0, spec.card.dim if spec.card else 0), np.float32)
                yield failed
            if window:
                yield from self._run(ray, spec, actors, window, remote)

    def _run(
        self, ray: Any, spec: EncoderSpec, actors: int, rows: list[dict[str, Any]],
        prepare: ImagePreparer,
    ) -> Iterator[EncodedBatch[int, Payload]]:
        # blocks of about one batch (at most MAX_BLOCKS of them), at least one per actor
        per_block = max(self.batch_size, math.ceil(len(rows) / MAX_BLOCKS))
        blocks = min(len(rows), max(actors, math.ceil(len(rows) / per_block)))
        actors = min(actors, blocks)
        with warnings.catch_warnings():
            # Ray's own deprecated settings (copied with the DataContext), and max_restarts /
            # max_task_retries, which have no named parameter yet (Ray 2.60-2.63)
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ray.data.from_items(rows, override_num_blocks=blocks)
            context = ds.context  # this dataset's own copy of the DataContext
            context.execution_options.preserve_order = True  # the first of two copies wins
            context.enable_progress_bars = False  # the caller shows progress
            context.print_on_execution_start = False
            context.wait_for_min_actors_s = self.actor_start_s
            ds = self._map(ray, ds, spec, actors, prepare)
        batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy"))
        while True:
            try:
                columns = next(batches)
            except StopIteration:
                return
            except (ray.exceptions.RayError, ray.data.exceptions.SystemException) as exc:
                raise LookalikeError(
                    f"the Ray run failed ({type(exc).__name__}: {_first_lines(exc)}); the "
                    "items stored so far are kept: run the same command again to go on"
                ) from exc
            yield results(columns)

    def _map(self, ray: Any, ds: Any, spec: EncoderSpec, actors: int,
             prepare: ImagePreparer) -> Any:
        from lookalike import __version__

        return ds.map_batches(
            EncodeActor,
            fn_constructor_kwargs={
                "spec": spec,
                "prepare": prepare,
                "batch_size": self.model_batch,
                "threads": max(1, int(self.cpus_per_actor)),
                "version": __version__,
            },
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=self.cpus_per_actor,
            max_restarts=self.retries,
            max_task_retries=self.retries,
        )
