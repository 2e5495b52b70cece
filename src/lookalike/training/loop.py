"""What every training loop here shares: a resumable per-epoch checkpoint and progress reports.

A checkpoint belongs to one configuration and one training set (`key`: the config's
fingerprint and `data_fingerprint` of the features); a checkpoint of anything else is ignored
and training starts over. It holds the state of every part (model, loss, optimiser,
scheduler...), both random generators, the loss history and the epoch reached, and is written
to a temporary file then renamed, so a run killed while saving leaves the previous epoch's
checkpoint intact.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Checkpoint", "EpochClock", "EpochReport", "data_fingerprint"]


def data_fingerprint(views: NDArray[np.float32], labels: NDArray[np.int64]) -> str:
    """What a checkpoint was trained on: shapes and bytes of the features and labels."""
    h = hashlib.sha256(repr((views.shape, labels.shape)).encode())
    h.update(np.ascontiguousarray(views, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    loss: float
    seconds: float
    eta_seconds: float


@dataclass
class Resumed:
    rng: np.random.Generator
    history: list[float]
    epoch: int  # epochs already done


class Checkpoint:
    """The training state of `parts` (name → object with state_dict/load_state_dict) at `path`
    (None = no checkpointing), valid for `key` only."""

    def __init__(self, path: Path | None, key: Mapping[str, str], parts: Mapping[str, Any]):
        self.path, self.key, self.parts = path, dict(key), dict(parts)

    def resume(self, rng: np.random.Generator) -> Resumed:
        """Load the saved state into the parts when it matches the key; else the fresh start
        (`rng`, no history, epoch 0)."""
        import torch

        if self.path is None or not self.path.is_file():
            return Resumed(rng, [], 0)
        state = torch.load(self.path, weights_only=False)
        if any(state.get(k) != v for k, v in self.key.items()):
            return Resumed(rng, [], 0)
        for name, part in self.parts.items():
            part.load_state_dict(state[name])
        torch.set_rng_state(state["torch_rng"])
        return Resumed(state["rng"], list(state["history"]), int(state["epoch"]))

    def save(self, rng: np.random.Generator, history: list[float], epoch: int) -> None:
        import torch

        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save({**self.key, **{n: p.state_dict() for n, p in self.parts.items()},
                    "rng": rng, "torch_rng": torch.get_rng_state(), "history": history,
                    "epoch": epoch}, tmp)
        tmp.replace(self.path)


class EpochClock:
    """Times the epochs of one run (from `first`, the epoch it resumed at, to `epochs`) and
    reports each with an ETA from the mean epoch time so far."""

    def __init__(self, first: int, epochs: int) -> None:
        self.first, self.epochs = first, epochs
        self.start = self.epoch_start = time.monotonic()

    def begin(self) -> None:
        self.epoch_start = time.monotonic()

    def report(self, epoch: int, loss: float) -> EpochReport:
        """`epoch` = epochs done (1-based number of the one just finished)."""
        now = time.monotonic()
        per_epoch = (now - self.start) / max(epoch - self.first, 1)
        return EpochReport(epoch, self.epochs, loss, now - self.epoch_start,
                           per_epoch * (self.epochs - epoch))
