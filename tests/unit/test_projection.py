"""The compact projection: hand-checkable PCA / whitening cases, its int8 round trip, and the
torch module the ONNX graph is exported from."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.training.projection import (
    Projection,
    as_committed,
    learn_projection,
    pack_projection,
    projected_module,
    unpack_projection,
)


def _features(n: int = 5000, seed: int = 0) -> np.ndarray:
    """4-D points around (1, 1, 1, 1) with standard deviations 4, 2, 1, 0.1 along the axes."""
    rng = np.random.default_rng(seed)
    return (1.0 + rng.standard_normal((n, 4)) * np.array([4.0, 2.0, 1.0, 0.1])).astype(np.float32)


def test_plain_pca_keeps_the_largest_components_centred() -> None:
    x = _features()
    proj = learn_projection(x, 2, power=0.0)
    assert proj.matrix.shape == (2, 4) and proj.dim == 2
    np.testing.assert_allclose(proj.mean, x.mean(axis=0), atol=1e-5)
    # rows = the two largest principal axes (x and y), signs fixed to positive
    np.testing.assert_allclose(proj.matrix, [[1, 0, 0, 0], [0, 1, 0, 0]], atol=0.02)
    out = proj(x)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    expected = (x - x.mean(axis=0))[:, :2]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.mean(np.sum(out * expected, axis=1)) > 0.999  # the same directions


def test_whitening_power_and_shrink_scale_the_components() -> None:
    x = _features()
    full = learn_projection(x, 3, power=1.0)  # variances 16, 4, 1 → scales 1/4, 1/2, 1
    np.testing.assert_allclose(np.abs(full.matrix).max(axis=1), [0.25, 0.5, 1.0], rtol=0.03)
    half = learn_projection(x, 3, power=0.5)  # λ^-1/4: 1/2, 1/√2, 1
    np.testing.assert_allclose(np.abs(half.matrix).max(axis=1), [0.5, 0.7071, 1.0], rtol=0.03)
    # shrink 1: add the mean kept eigenvalue (21 / 3 = 7) before the inverse square root
    shrunk = learn_projection(x, 3, power=1.0, shrink=1.0)
    expected = 1 / np.sqrt(np.array([16.0, 4.0, 1.0]) + 7.0)
    np.testing.assert_allclose(np.abs(shrunk.matrix).max(axis=1), expected, rtol=0.03)


def test_projection_round_trips_through_int8() -> None:
    proj = learn_projection(np.random.default_rng(2).standard_normal((300, 40)), 16, power=0.5)
    packed = pack_projection(proj)
    assert packed["project.matrix::q"].dtype == np.int8
    assert packed["project.matrix::scale"].shape == (16, 1)  # one scale per output row
    back = unpack_projection(packed)
    assert isinstance(back, Projection)
    np.testing.assert_allclose(back.mean, proj.mean)
    tol = np.abs(proj.matrix).max(axis=1, keepdims=True) / 254 + 1e-7
    assert np.all(np.abs(back.matrix - proj.matrix) <= tol)
    np.testing.assert_array_equal(as_committed(proj).matrix, back.matrix)
    assert unpack_projection({"whiten.proj::q": packed["project.matrix::q"]}) is None


def test_torch_module_equals_the_numpy_reference() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    proj = learn_projection(rng.standard_normal((200, 12)).astype(np.float32), 5, shrink=0.5)
    inner = torch.nn.Linear(7, 12)
    module = projected_module(inner, proj)
    x = rng.standard_normal((6, 7)).astype(np.float32)
    with torch.no_grad():
        full = inner(torch.from_numpy(x)).numpy()
        out = module(torch.from_numpy(x)).numpy()
    assert out.shape == (6, 5)
    np.testing.assert_allclose(out, proj(full), atol=1e-5)


def test_bad_arguments_are_refused() -> None:
    x = _features(50)
    with pytest.raises(ValueError, match="dim must be"):
        learn_projection(x, 5)
    with pytest.raises(ValueError, match="dim must be"):
        learn_projection(x, 0)
    with pytest.raises(ValueError, match="power"):
        learn_projection(x, 2, power=1.5)
    with pytest.raises(ValueError, match="shrink"):
        learn_projection(x, 2, shrink=-1)
    with pytest.raises(ValueError, match="n >= 2"):
        learn_projection(x[:1], 1)
