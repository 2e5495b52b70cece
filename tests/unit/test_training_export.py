"""The registered `lookalike-fashion` ONNX model equals the torch model built from the
committed head weights (slow: builds the real backbone), and
the cached export is rebuilt when the weights or the card change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lookalike import Settings, create, load_image
from lookalike.demo import sample_images
from lookalike.encoders.onnx import OnnxEncoder
from lookalike.encoders.trained import (
    WEIGHTS_DIR,
    build_torch_model,
    source_digest,
    weights_paths,
)


@pytest.mark.slow
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


def test_cached_export_follows_the_card_too(tmp_path: Path) -> None:
    """Same weights, other combination weights in the card: another model, another export
    (a cache keyed by the weights alone served the old graph after `--w-imagenet` changed)."""
    weights, card_file = tmp_path / "m.npz", tmp_path / "m.json"
    np.savez(weights, w=np.ones(3, np.float32))
    card_file.write_text(json.dumps({"combine": {"w_imagenet": 0.5}}))
    first = source_digest(weights, card_file)
    assert source_digest(weights, card_file) == first
    card_file.write_text(json.dumps({"combine": {"w_imagenet": 0.75}}))
    assert source_digest(weights, card_file) != first
    np.savez(weights, w=np.zeros(3, np.float32))
    card_file.write_text(json.dumps({"combine": {"w_imagenet": 0.5}}))
    assert source_digest(weights, card_file) != first


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["", "-int8"])
def test_compact_model_is_the_full_graph_then_the_projection(suffix: str) -> None:
    """`lookalike-fashion-512` runs the full-width graph, then the committed projection (a MatMul
    + L2 normalisation) inside the same ONNX file: its vectors equal the numpy projection of
    `lookalike-fashion`'s (fp32, and int8 where both trunks are quantised alike)."""
    from lookalike.training.projection import unpack_projection

    weights, card_file = weights_paths("lookalike-fashion-512", WEIGHTS_DIR)
    with np.load(weights) as data:
        proj = unpack_projection({k: np.array(data[k]) for k in data.files})
    assert proj is not None and proj.dim == 512 <= json.loads(card_file.read_text())["dim"]
    compact = create("lookalike-fashion-512" + suffix, Settings())
    full = create("lookalike-fashion" + suffix, Settings())
    assert (compact.dim, full.dim) == (512, 2624)
    # the width is the graph's own: its output is declared 512 wide, one ONNX file
    import onnx

    assert isinstance(compact, OnnxEncoder)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(compact.model_path))).graph
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim][1:] == [512]
    assert [list(t.dims) for t in graph.initializer if t.name == "p_matrix_t"] == [[2624, 512]]
    paths = sorted(sample_images().glob("*.jpg"))[::40]
    batch = np.stack([full.preprocess(load_image(p)) for p in paths])
    got = compact.encode_batch(batch)
    assert got.shape == (len(paths), 512)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(got, proj(full.encode_batch(batch)), atol=2e-4 if suffix else 1e-5)
