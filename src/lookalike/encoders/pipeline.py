"""Batched encoding with image decoding overlapped with inference.

Decoding + preprocessing runs in a thread pool (Pillow and numpy release the GIL) while ONNX
Runtime encodes the previous batch, so both cores stay busy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

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
    failures: list[tuple[T, ImageLoadError]] = field(default_factory=list)


Prepared = tuple[NDArray[np.float32], "P"]


def encode_stream(
    encoder: Encoder,
    items: Iterable[T],
    prepare: Callable[[T], tuple[NDArray[np.float32], P]],
    *,
    batch_size: int = 32,
    decode_threads: int = 2,
    prefetch_batches: int = 2,
) -> Iterator[EncodedBatch[T, P]]:
    """Encode `items` in order. `prepare(item)` returns (preprocessed tensor, payload) or raises
    `ImageLoadError`; failures are reported in the batch, never raised."""
    window = batch_size * (prefetch_batches + 1)
    with ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode") as pool:
        pending: deque[tuple[T, Future[tuple[NDArray[np.float32], P]]]] = deque()
        source = iter(items)
        exhausted = False

        def fill() -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < window:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    return
                pending.append((item, pool.submit(prepare, item)))

        fill()
        while pending:
            batch: EncodedBatch[T, P] = EncodedBatch()
            tensors: list[NDArray[np.float32]] = []
            while pending and len(tensors) < batch_size:
                item, fut = pending.popleft()
                try:
                    tensor, payload = fut.result()
                except ImageLoadError as exc:
                    batch.failures.append((item, exc))
                    continue
                batch.items.append(item)
                batch.payloads.append(payload)
                tensors.append(tensor)
            fill()  # keep decoders busy while we encode
            batch.vectors = (
                encoder.encode_batch(np.stack(tensors))
                if tensors
                else np.zeros((0, encoder.dim), dtype=np.float32)
            )
            yield batch
