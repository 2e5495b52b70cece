"""The feature probe: backbone features + garment weights + colour cells, cached for training.

Exported once to ONNX (like the backbone) and run with ONNX Runtime, so caching the training
features of thousands of images (and their augmented views) takes about a minute, not ten.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from lookalike.config import Settings
from lookalike.encoders.base import Vectors
from lookalike.encoders.efficientnet import (
    LITE_MEAN,
    LITE_STD,
    ensure_backbone,
    export_onnx,
    load_torch_backbone,
    preprocess_for,
)
from lookalike.encoders.onnx import OnnxEncoder, card_from_dict, read_card, valid_cache, write_card
from lookalike.encoders.salient import PROBE_DIM, PROBE_LAYOUT, probe_module

BACKBONE = "efficientnet-lite0"
PROBE_NAME = "lite0-probe"


class RawOnnxEncoder(OnnxEncoder):
    """An ONNX model whose output rows are returned as they are (not normalised)."""

    def for_threads(self) -> RawOnnxEncoder:
        """A one-thread raw session (the parent's would L2-normalise the rows)."""
        if self._threads == 1:
            return self
        if self._raw_single is None:
            self._raw_single = RawOnnxEncoder(self.model_path, self.card, threads=1)
        return self._raw_single

    _raw_single: RawOnnxEncoder | None = None

    def encode_batch(self, batch: NDArray[np.float32]) -> Vectors:
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._session.run([self._output], {self._input: batch.astype(np.float32)})[0]
        return np.asarray(out, dtype=np.float32).reshape(batch.shape[0], -1)


def ensure_probe(settings: Settings, tuned: dict[str, NDArray[np.float32]] | None = None) -> Path:
    """The probe's cached export, named after the backbone export's checksum so a change in how
    the backbone is built (e.g. its activation) re-exports the probe too. With `tuned` (weights
    of a fine-tuned top, `finetune.top_state`), the probe of that fine-tuned backbone, named
    after the weights' digest too."""
    backbone_card = read_card(ensure_backbone(BACKBONE, settings), verify=False)
    name = PROBE_NAME
    if tuned is not None:
        digest = hashlib.sha256()
        for key in sorted(tuned):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(tuned[key], dtype=np.float32).tobytes())
        name = f"{PROBE_NAME}-tuned-{digest.hexdigest()[:12]}"
    path = settings.models_dir / f"{name}-{str(backbone_card['sha256'])[:12]}.onnx"
    if valid_cache(path) is not None:
        return path
    pre = preprocess_for(BACKBONE)
    backbone = load_torch_backbone(BACKBONE)
    if tuned is not None:
        from lookalike.encoders.efficientnet import load_top

        load_top(backbone, tuned)
    export_onnx(probe_module(backbone, LITE_MEAN, LITE_STD), pre.image_size, path)
    write_card(
        path,
        {
            "name": name,
            "dim": PROBE_DIM,
            "preprocess": pre.as_dict(),
            "description": "lite0 GAP | attention-pooled features | spatial weights | colour cells"
            + (" (fine-tuned top)" if tuned is not None else ""),
            "layout": {k: list(v) for k, v in PROBE_LAYOUT.items()},
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return path


def probe_encoder(
    settings: Settings, tuned: dict[str, NDArray[np.float32]] | None = None
) -> RawOnnxEncoder:
    path = ensure_probe(settings, tuned)
    return RawOnnxEncoder(path, card_from_dict(read_card(path)), settings.intra_op_threads)


def part(rows: NDArray[np.float32], name: str) -> NDArray[np.float32]:
    a, b = PROBE_LAYOUT[name]
    return rows[:, a:b]
