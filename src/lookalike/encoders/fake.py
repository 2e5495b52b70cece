"""A deterministic, fast encoder for unit tests: registered like the real ones, not a mock.

It maps an image to a fixed random projection of its coarse colour layout, so images that look
alike (same colours in the same places) get close vectors, as a real encoder would give.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from lookalike.config import Settings
from lookalike.encoders.base import Encoder, ModelCard, Preprocess, Vectors, l2_normalise
from lookalike.encoders.registry import register

FAKE_DIM = 64
_GRID = 4


class FakeEncoder(Encoder):
    def __init__(self, dim: int = FAKE_DIM, seed: int = 0, name: str = "fake") -> None:
        self.card = ModelCard(
            name=name,
            dim=dim,
            preprocess=Preprocess(image_size=32, resize_size=32, mean=(0, 0, 0), std=(1, 1, 1)),
            description="Deterministic colour-layout projection, for tests only.",
        )
        rng = np.random.default_rng(seed)
        self._proj = rng.standard_normal((3 * _GRID * _GRID, dim)).astype(np.float32)

    def encode_batch(self, batch: NDArray[np.float32]) -> Vectors:
        n, c, h, w = batch.shape
        pooled = batch.reshape(n, c, _GRID, h // _GRID, _GRID, w // _GRID).mean(axis=(3, 5))
        centred = pooled.reshape(n, -1) - 0.5
        # One row at a time: BLAS picks another kernel (another rounding) for a matrix than for
        # one row, and an image must get the same vector alone as inside any batch.
        projected = np.empty((n, self._proj.shape[1]), dtype=np.float32)
        for i, row in enumerate(centred):
            projected[i] = row @ self._proj
        return l2_normalise(projected)


@register("fake")
def _make_fake(settings: Settings) -> Encoder:
    return FakeEncoder()


@register("fake-32")
def _make_fake_32(settings: Settings) -> Encoder:
    """Another fake model (32-d, another projection): for tests that switch models."""
    return FakeEncoder(dim=32, seed=1, name="fake-32")
