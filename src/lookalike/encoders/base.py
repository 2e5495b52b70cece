"""The encoder contract: images in, L2-normalised float32 vectors out."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

Vectors = NDArray[np.float32]


@dataclass(frozen=True)
class Preprocess:
    """How an encoder wants its pixels: comes from the encoder's config, never from call sites.

    The image's shorter side is resized to `resize_size`, then the centre `image_size` square is
    cropped (resize_size == image_size keeps as much of the garment as a square allows).
    """

    image_size: int = 224
    resize_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def resize_crop(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        scale = self.resize_size / min(w, h)
        nw, nh = max(self.image_size, round(w * scale)), max(self.image_size, round(h * scale))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=2.0)
        left, top = (nw - self.image_size) // 2, (nh - self.image_size) // 2
        return img.crop((left, top, left + self.image_size, top + self.image_size))

    def __call__(self, img: Image.Image) -> NDArray[np.float32]:
        """RGB image → (3, H, W) float32 normalised tensor."""
        arr = np.asarray(self.resize_crop(img), dtype=np.float32) * (1.0 / 255.0)
        arr = (arr - np.asarray(self.mean, dtype=np.float32)) / np.asarray(
            self.std, dtype=np.float32
        )
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def as_dict(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "resize_size": self.resize_size,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def l2_normalise(x: NDArray[np.floating[Any]], eps: float = 1e-12) -> Vectors:
    """Row-wise L2 normalisation to float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)


@dataclass
class ModelCard:
    """What a model is: name, dimension, preprocessing, provenance and measured metrics."""

    name: str
    dim: int
    preprocess: Preprocess
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dim": self.dim,
            "preprocess": self.preprocess.as_dict(),
            "description": self.description,
            **self.extra,
        }


class Encoder(abc.ABC):
    """An image encoder. Subclasses implement `encode_batch` on preprocessed tensors."""

    card: ModelCard

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def dim(self) -> int:
        return self.card.dim

    @property
    def preprocess(self) -> Preprocess:
        return self.card.preprocess

    @abc.abstractmethod
    def encode_batch(self, batch: NDArray[np.float32]) -> Vectors:
        """(n, 3, H, W) preprocessed tensors → (n, dim) L2-normalised vectors."""

    def encode_images(self, images: list[Image.Image]) -> Vectors:
        """RGB images → (n, dim) L2-normalised vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = np.stack([self.preprocess(img) for img in images])
        return self.encode_batch(batch)
