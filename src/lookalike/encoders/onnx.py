"""Run any exported encoder (backbone, or backbone + trained head) with ONNX Runtime."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.config import Settings
from lookalike.encoders.base import Encoder, ModelCard, Preprocess, Vectors, l2_normalise
from lookalike.errors import LookalikeError


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(model_path: Path) -> Path:
    """The model card lives beside the model: `x.onnx` → `x.json`."""
    return model_path.with_suffix(".json")


def write_card(model_path: Path, card: dict[str, Any]) -> None:
    """Write the card with the model file's checksum, atomically."""
    card = {**card, "sha256": file_sha256(model_path)}
    target = card_path(model_path)
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2, sort_keys=True))
    tmp.replace(target)


def read_card(model_path: Path, *, verify: bool = True) -> dict[str, Any]:
    """Read the card of `model_path`; with `verify`, check the model file's checksum."""
    cpath = card_path(model_path)
    if not cpath.is_file():
        raise LookalikeError(f"{model_path}: no model card at {cpath}")
    try:
        card: dict[str, Any] = json.loads(cpath.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LookalikeError(f"{cpath}: unreadable model card ({exc})") from None
    if verify and card.get("sha256") != file_sha256(model_path):
        raise LookalikeError(f"{model_path}: checksum does not match its model card")
    return card


def valid_cache(path: Path) -> dict[str, Any] | None:
    """The card of a cached model whose file matches the card's checksum, or None when the file
    is missing, stale or corrupt (the caller builds it again)."""
    if not path.is_file():
        return None
    try:
        return read_card(path, verify=True)
    except LookalikeError:
        return None


def card_from_dict(card: dict[str, Any]) -> ModelCard:
    pre = card.get("preprocess", {})
    known = {"name", "dim", "preprocess", "description"}
    return ModelCard(
        name=str(card["name"]),
        dim=int(card["dim"]),
        preprocess=Preprocess(
            image_size=int(pre.get("image_size", 224)),
            resize_size=int(pre.get("resize_size", 224)),
            mean=tuple(pre.get("mean", (0.485, 0.456, 0.406))),
            std=tuple(pre.get("std", (0.229, 0.224, 0.225))),
        ),
        description=str(card.get("description", "")),
        extra={k: v for k, v in card.items() if k not in known},
    )


def cached_onnx_factory(ensure: Callable[[Settings], Path]) -> Callable[[Settings], Encoder]:
    """A registry factory for an ONNX model that `ensure(settings)` builds or finds in the cache
    (verified by its card's checksum) and returns the path of."""

    def make(settings: Settings) -> Encoder:
        path = ensure(settings)
        return OnnxEncoder(path, card_from_dict(read_card(path)), settings.intra_op_threads)

    return make


class OnnxEncoder(Encoder):
    """An ONNX model whose first input is (n, 3, H, W) and first output is (n, dim)."""

    def __init__(self, model_path: Path, card: ModelCard, threads: int = 0) -> None:
        import onnxruntime as ort

        self.card = card
        self.model_path = model_path
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        # The pool's threads spin between the layers of one run and stop when it ends: woken
        # from sleep at each of ~60 layers instead, one photo took 6.2 ms instead of 4.7 on 2
        # threads (int8 default, decoding between photos; a 2-core Sapphire Rapids VM, Dec
        # 2026), and spinning on after the run burnt 3.3 ms of CPU during a 3 ms pause that
        # decoding threads need (0.08 ms with the stop).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise LookalikeError(f"{model_path}: ONNX Runtime cannot load it ({exc})") from None
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        self._threads = threads
        self._single: OnnxEncoder | None = None

    def for_threads(self) -> OnnxEncoder:
        """A one-thread session over the same model, safe to run from several threads."""
        if self._threads == 1:
            return self
        if self._single is None:
            self._single = OnnxEncoder(self.model_path, self.card, threads=1)
        return self._single

    @classmethod
    def from_file(cls, path: Path, settings: Settings) -> OnnxEncoder:
        card = card_from_dict(read_card(path))
        return cls(path, card, threads=settings.intra_op_threads)

    def encode_batch(self, batch: NDArray[np.float32]) -> Vectors:
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        feed = np.ascontiguousarray(batch, dtype=np.float32)  # no copy when it already is
        out = self._session.run([self._output], {self._input: feed})[0]
        return l2_normalise(np.asarray(out).reshape(batch.shape[0], -1))
