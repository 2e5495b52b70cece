"""The encoder contract: images in, L2-normalised float32 vectors out."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lookalike.errors import ImageLoadError

Vectors = NDArray[np.float32]

#: Longer strips are cropped before they are resized (`Preprocess.resize_crop`).
MAX_RESIZED_ASPECT = 16


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

    def resize_crop(self, img: Image.Image) -> NDArray[np.uint8]:
        """RGB image → (S, S, 3) uint8: shorter side resized (area filter), centre cropped.

        The resized image is bounded: up to `MAX_RESIZED_ASPECT` (long side / short side) the
        whole picture is resized, then cropped (as every stored vector was computed); a longer
        strip is cropped to its centre square first, so a 40,000 x 1 image costs what a square
        does instead of gigabytes. A library error becomes an `ImageLoadError`.
        """
        w, h = img.size
        if max(w, h) > MAX_RESIZED_ASPECT * min(w, h):
            img = img.crop(self.crop_box(w, h))
            w, h = img.size
        if img.mode != "RGB":
            img = img.convert("RGB")
        arr: NDArray[np.uint8] = np.asarray(img, dtype=np.uint8)
        scale = self.resize_size / min(w, h)
        nw, nh = max(self.image_size, round(w * scale)), max(self.image_size, round(h * scale))
        if (nw, nh) != (w, h):
            # bilinear is 5x faster than the area filter and alias-free down to half size
            interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
            try:
                arr = np.asarray(cv2.resize(arr, (nw, nh), interpolation=interpolation), np.uint8)
            except cv2.error as exc:
                raise ImageLoadError("image", f"cannot resize {w}x{h} ({exc})") from None
        top, left = (nh - self.image_size) // 2, (nw - self.image_size) // 2
        return arr[top : top + self.image_size, left : left + self.image_size]

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The centre square of a `width` x `height` picture that `resize_crop` keeps (up to
        rounding): what resizing the shorter side to `resize_size` then cropping keeps."""
        side = max(1, min(width, height, round(min(width, height) * self.image_size
                                               / self.resize_size)))
        left, top = (width - side) // 2, (height - side) // 2
        return left, top, left + side, top + side

    def __call__(self, img: Image.Image) -> NDArray[np.float32]:
        """RGB image → (3, S, S) float32 tensor, normalised with the encoder's mean and std."""
        out = np.empty((3, self.image_size, self.image_size), dtype=np.float32)
        self.normalise_into(self.resize_crop(img), out)
        return out

    def normalise_into(self, crop: NDArray[np.uint8], out: NDArray[np.float32]) -> None:
        """(S, S, 3) uint8 crop → `out`, a (3, S, S) float32 slot (e.g. a row of a batch)."""
        for c in range(3):
            scale = 1.0 / (255.0 * self.std[c])
            np.multiply(crop[:, :, c], np.float32(scale), out=out[c], casting="unsafe")
            out[c] -= np.float32(self.mean[c] / self.std[c])

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
    out: Vectors = (x / np.maximum(norms, eps)).astype(np.float32, copy=False)
    return out


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

    def for_threads(self) -> Encoder:
        """An encoder to call from several threads at once, each call on one core.

        Batched ingest runs one decode+encode worker per core: on a small machine that beats
        one multi-threaded inference overlapped with decoding. Default: this encoder.
        """
        return self

    def encode_images(self, images: list[Image.Image]) -> Vectors:
        """RGB images → (n, dim) L2-normalised vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = np.stack([self.preprocess(img) for img in images])
        return self.encode_batch(batch)
