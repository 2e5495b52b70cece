"""Batched encoding with image decoding overlapped with inference.

One worker per core takes a whole chunk: decodes and preprocesses its images (Pillow, OpenCV and
numpy release the GIL), then runs a one-thread inference on it in batches, while the other
workers do the same with the next chunks. Results come back in input order. On a 2-core machine
this keeps both cores busy without the thread contention of a 2-thread model beside decoding
threads.

Chunks are larger than the model's batches because switching between decoding and inference
costs each time (each evicts the other's data from the core's caches): one thread decoding 8
photos then encoding them as one batch spent 7.29-7.32 ms of CPU per photo with the default
model, decoding 32 then encoding them in batches of 4 spent 6.78-6.92 ms (alone: 5.4 ms model
at batch 4 + 1.3 ms decode; 2-core Sapphire Rapids VM, 2026-12-03; development notes of
issue 3).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Generic, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from lookalike.encoders.base import Encoder, Vectors
from lookalike.errors import ImageLoadError

T = TypeVar("T")
P = TypeVar("P")


@dataclass
class EncodedBatch(Generic[T, P]):
    """One batch out of `encode_stream`: what encoded, their vectors and payloads, what failed."""

    items: list[T] = field(default_factory=list)
    payloads: list[P] = field(default_factory=list)
    vectors: Vectors = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    failures: list[tuple[T, Exception]] = field(default_factory=list)


def encode_chunk(
    encoder: Encoder,
    chunk: Sequence[T],
    prepare: Callable[[T], tuple[NDArray[np.float32] | NDArray[np.uint8], P]],
    *,
    batch_size: int = 4,
    expected: tuple[type[Exception], ...] = (ImageLoadError,),
) -> EncodedBatch[T, P]:
    """One worker's step, on this thread: `prepare` every item of `chunk`, then run `encoder`
    on the prepared pixels in model batches of `batch_size`. What `encode_stream` runs in each
    of its workers, and an encoder actor of the Ray engine on each of its batches."""
    pre = encoder.preprocess
    size = pre.image_size
    step = max(1, batch_size)
    batch: EncodedBatch[T, P] = EncodedBatch()
    pixels = np.empty((len(chunk), 3, size, size), dtype=np.float32)
    for item in chunk:
        try:
            tensor, payload = prepare(item)
        except expected as exc:
            batch.failures.append((item, exc))
            continue
        slot = pixels[len(batch.items)]
        if tensor.dtype == np.uint8:
            pre.normalise_into(cast(NDArray[np.uint8], tensor), slot)
        else:
            slot[...] = tensor
        batch.items.append(item)
        batch.payloads.append(payload)
    n = len(batch.items)
    batch.vectors = (
        np.concatenate([encoder.encode_batch(pixels[i : min(i + step, n)])
                        for i in range(0, n, step)])
        if n
        else np.zeros((0, encoder.dim), dtype=np.float32)
    )
    return batch


def encode_stream(
    encoder: Encoder,
    items: Iterable[T],
    prepare: Callable[[T], tuple[NDArray[np.float32] | NDArray[np.uint8], P]],
    *,
    batch_size: int = 4,
    chunk_size: int = 32,
    decode_threads: int = 2,
    prefetch_chunks: int = 2,
    expected: tuple[type[Exception], ...] = (ImageLoadError,),
) -> Iterator[EncodedBatch[T, P]]:
    """Encode `items` in order: `decode_threads` workers each decode a chunk of `chunk_size`
    items, then encode it in model batches of `batch_size`; one `EncodedBatch` per chunk.

    `prepare(item)` returns (pixels, payload) or raises one of the `expected` exceptions
    (default `ImageLoadError`); those are reported in the batch, never raised. Pixels are the
    encoder's (3, S, S) float tensor, or better the (S, S, 3) uint8 crop of
    `Preprocess.resize_crop`: it is normalised straight into the batch (no float copy per image).
    """
    workers = max(1, decode_threads)
    model = encoder.for_threads() if workers > 1 else encoder
    chunk_size = max(chunk_size, max(1, batch_size))

    def run(chunk: list[T]) -> EncodedBatch[T, P]:
        return encode_chunk(model, chunk, prepare, batch_size=batch_size, expected=expected)

    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="encode") as pool:
        pending: deque[Future[EncodedBatch[T, P]]] = deque()

        def fill() -> None:
            while len(pending) < workers + prefetch_chunks:
                chunk = list(islice(source, chunk_size))
                if not chunk:
                    return
                pending.append(pool.submit(run, chunk))

        fill()
        while pending:
            done = pending.popleft().result()
            fill()
            yield done
