"""Feature cache: encode image paths once per (model, checksum, file list, variant), reuse after.

Vectors live under `Settings().cache_dir / "features"` as `.npz` files named by a hash of the
model name, the model file's checksum, the ordered file list and a variant tag (e.g. a seeded
augmentation), so a second `evaluate` run does not touch the images at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lookalike.config import Settings
from lookalike.encoders.base import Encoder, Vectors
from lookalike.encoders.pipeline import encode_stream
from lookalike.images import ImageLimits, load_image

ImageTransform = Callable[[int, Image.Image], Image.Image]


def model_fingerprint(encoder: Encoder) -> str:
    """Name + checksum (from its card) of an encoder: changes whenever the weights change."""
    sha = str(encoder.card.extra.get("sha256", ""))
    return f"{encoder.name}:{sha}"


def cache_key(encoder: Encoder, paths: Sequence[Path], variant: str = "") -> str:
    h = hashlib.sha256()
    h.update(model_fingerprint(encoder).encode())
    h.update(b"\0" + variant.encode() + b"\0")
    for p in paths:
        h.update(str(p).encode() + b"\n")
    return h.hexdigest()[:32]


def encode_paths(
    encoder: Encoder,
    paths: Sequence[Path],
    *,
    transform: ImageTransform | None = None,
    settings: Settings | None = None,
) -> tuple[Vectors, NDArray[np.bool_]]:
    """Encode images (optionally transformed: `transform(index, image)`) → (vectors, ok).

    Rows that fail to decode are zero vectors with ok=False.
    """
    settings = settings or Settings()
    limits = ImageLimits(settings.max_image_pixels, settings.max_image_bytes)
    pre = encoder.preprocess
    draft = (pre.resize_size, pre.resize_size)

    def prepare(i: int) -> tuple[NDArray[np.uint8], int]:
        img = load_image(paths[i], limits=limits, draft_size=draft)
        if transform is not None:
            img = transform(i, img)
        return pre.resize_crop(img), i

    out = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    for batch in encode_stream(
        encoder,
        range(len(paths)),
        prepare,
        batch_size=settings.batch_size,
        chunk_size=settings.chunk_size,
        decode_threads=settings.decode_threads,
    ):
        if batch.items:
            out[batch.payloads] = batch.vectors
            ok[batch.payloads] = True
    return out, ok


def cached_features(
    encoder: Encoder,
    paths: Sequence[Path],
    *,
    variant: str = "",
    transform: ImageTransform | None = None,
    settings: Settings | None = None,
) -> tuple[Vectors, NDArray[np.bool_]]:
    """`encode_paths` through the on-disk cache. `variant` must name any `transform`."""
    if transform is not None and not variant:
        raise ValueError("a transform needs a variant name so its features are cached apart")
    settings = settings or Settings()
    target = settings.cache_dir / "features" / f"{cache_key(encoder, paths, variant)}.npz"
    if target.is_file():
        try:
            with np.load(target) as data:
                return data["vectors"].astype(np.float32), data["ok"].astype(bool)
        except (OSError, KeyError, ValueError):
            pass  # corrupt cache: encode again
    vectors, ok = encode_paths(encoder, paths, transform=transform, settings=settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.stem + ".tmp.npz")
    np.savez(tmp, vectors=vectors, ok=ok)
    tmp.replace(target)
    return vectors, ok
