"""Training on random features lowers the loss; the folded ONNX graph matches torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")
pytest.importorskip("onnx")

from lookalike.encoders.salient import fashion_module  # noqa: E402
from lookalike.training.head import HeadConfig, build_head, train_head  # noqa: E402


def _clustered(n_per: int = 24, classes: int = 4, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((classes, dim))
    y = np.repeat(np.arange(classes), n_per)
    x = centres[y] + 1.5 * rng.standard_normal((len(y), dim))
    views = np.stack([x, x + 0.1 * rng.standard_normal(x.shape)])
    views /= np.linalg.norm(views, axis=2, keepdims=True)
    return views.astype(np.float32), y.astype(np.int64)


@pytest.mark.parametrize("loss", ["triplet", "multi-similarity", "proxy-anchor"])
def test_tiny_training_lowers_loss_and_resumes(loss: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    views, y = _clustered()
    cfg = HeadConfig(
        in_dim=32,
        hidden=32,
        out_dim=8,
        loss=loss,
        epochs=6,
        batch_items=32,
        identity_weight=0.5,
        distill_weight=0.1,
        lr=3e-3,
    )
    ckpt = tmp_path / "head.pt"
    reports: list[int] = []
    head, history = train_head(
        views, y, cfg, checkpoint=ckpt, progress=lambda r: reports.append(r.epoch)
    )
    assert reports == list(range(1, 7))
    assert history[-1] < history[0]
    assert train_head(views, y, cfg)[1] == pytest.approx(history)  # seeded: reproducible
    # resumable: the checkpoint says all epochs are done, so nothing is redone
    reports.clear()
    resumed_head, resumed = train_head(
        views, y, cfg, checkpoint=ckpt, progress=lambda r: reports.append(r.epoch)
    )
    assert reports == []
    assert resumed == pytest.approx(history)
    x = torch.from_numpy(views[0])
    with torch.no_grad():
        np.testing.assert_allclose(resumed_head(x).numpy(), head(x).numpy(), atol=1e-6)


def test_checkpoint_of_other_data_is_not_resumed(tmp_path: Path) -> None:
    """Same config, other features (e.g. another backbone): train anew, never reuse the head."""
    torch.set_num_threads(1)
    views, y = _clustered()
    cfg = HeadConfig(in_dim=32, hidden=32, out_dim=8, epochs=2, batch_items=32)
    ckpt = tmp_path / "head.pt"
    train_head(views, y, cfg, checkpoint=ckpt)
    other = np.ascontiguousarray(views[:, ::-1])  # the same items in another order
    fresh = train_head(other, y, cfg)[1]
    reports: list[int] = []
    _, history = train_head(other, y, cfg, checkpoint=ckpt, progress=lambda r: reports.append(1))
    assert reports == [1, 1]  # both epochs trained again
    assert history == pytest.approx(fresh)


class _TinyBackbone(torch.nn.Module):  # type: ignore[misc]
    """Stands in for EfficientNet: (n, 3, 32, 32) → (n, 16, 4, 4) feature map (colour at 32 px)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, kernel_size=8, stride=8)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.relu6(self.conv(x))


def _spec(**weights: object) -> dict[str, object]:
    """A `fashion_module` spec for the tiny backbone: GAP, colour power 1, mean = std = 0.5."""
    return {"pooling": "gap", "colour_power": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3, **weights}


@pytest.mark.parametrize(("pooling", "w_head"), [("gap", 1.0), ("attn", 1.0), ("gap", 0.0)])
def test_export_matches_torch(pooling: str, w_head: float, tmp_path: Path) -> None:
    import onnxruntime as ort

    from lookalike.encoders.efficientnet import export_onnx

    head = build_head(HeadConfig(in_dim=16, hidden=8, out_dim=4)).eval()
    spec = _spec(pooling=pooling, w_head=w_head, w_backbone=0.7, w_colour=0.5)
    model = fashion_module(_TinyBackbone().eval(), head, spec)
    target = tmp_path / "m.onnx"
    export_onnx(model, 32, target)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(x).numpy()
    sess = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == (3, (4 if w_head else 0) + 16 + 64)  # w_head 0: no head part at all
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_whitened_graph_matches_the_numpy_reference(tmp_path: Path) -> None:
    """The exported graph's whitening path computes what training measured in numpy:
    [w_head · head(W(b)) | w_white · W(b)], b = normalised GAP, W = the learnt whitening."""
    import onnxruntime as ort

    from lookalike.encoders.base import l2_normalise
    from lookalike.encoders.efficientnet import export_onnx
    from lookalike.training.head import apply_head
    from lookalike.training.whitening import learn_whitening

    rng = np.random.default_rng(0)
    views = rng.standard_normal((3, 50, 16)).astype(np.float32)
    white = learn_whitening(views / np.linalg.norm(views, axis=2, keepdims=True), shrink=0.5)
    head = build_head(HeadConfig(in_dim=16, hidden=8, out_dim=4)).eval()
    spec = _spec(w_head=0.6, w_backbone=0.0, w_white=1.0, w_colour=0.0)
    backbone = _TinyBackbone().eval()
    model = fashion_module(backbone, head, spec, (white.mean, white.proj))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        b = l2_normalise(backbone.extract_features(x).mean(dim=(2, 3)).numpy())
        got = model(x).numpy()
    w = white(b)
    expected = l2_normalise(np.concatenate([0.6 * apply_head(head, w), 1.0 * w], axis=1))
    assert got.shape == (4, 4 + 16)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    target = tmp_path / "m.onnx"
    export_onnx(model, 32, target)
    sess = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(onnx_out, expected, atol=1e-5)
