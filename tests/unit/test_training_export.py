"""The registered `lookalike-fashion` ONNX model equals the torch model built from the
committed head weights (slow: builds the real backbone)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lookalike import Settings, create, load_image
from lookalike.demo import sample_images
from lookalike.encoders.trained import WEIGHTS_DIR, build_torch_model, weights_paths

pytestmark = pytest.mark.slow


def test_trained_onnx_matches_torch_from_committed_weights() -> None:
    torch = pytest.importorskip("torch")
    weights, card_file = weights_paths("lookalike-fashion", WEIGHTS_DIR)
    card = json.loads(card_file.read_text())
    enc = create("lookalike-fashion", Settings())
    assert enc.dim == card["dim"]
    paths = sorted(sample_images().glob("*.jpg"))[:3]
    batch = np.stack([enc.preprocess(load_image(p)) for p in paths])
    with torch.no_grad():
        ref = build_torch_model(card, weights)(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(enc.encode_batch(batch), ref, atol=1e-4)
