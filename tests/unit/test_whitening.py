"""Learned whitening: hand-checkable cases, and its int8 round trip."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.training.whitening import (
    Whitening,
    as_committed,
    learn_whitening,
    pack_whitening,
    unpack_whitening,
)


def _pairs(n: int = 4000, seed: int = 0) -> np.ndarray:
    """Two views of n items in 2-D; views differ by noise of std 2 on x and 0.5 on y."""
    rng = np.random.default_rng(seed)
    items = rng.standard_normal((n, 2))
    noise = rng.standard_normal((2, n, 2)) * np.array([2.0, 0.5]) / np.sqrt(2)
    return (items[None] + noise).astype(np.float32)


def test_full_whitening_makes_pair_differences_isotropic() -> None:
    views = _pairs()
    white = learn_whitening(views, shrink=0.0)
    # difference covariance diag(4, 0.25) → P = diag(1/2, 2) (symmetric inverse square root)
    np.testing.assert_allclose(white.proj, np.diag([0.5, 2.0]), atol=0.03)
    d = (views[0] - views[1]) @ white.proj
    np.testing.assert_allclose(d.T @ d / len(d), np.eye(2), atol=0.05)
    np.testing.assert_allclose(white.mean, views.reshape(-1, 2).mean(axis=0), atol=1e-6)


def test_shrink_regularises_towards_plain_features() -> None:
    views = _pairs()
    # shrink s adds s · mean eigenvalue (s · 2.125) to each eigenvalue before the inverse root
    white = learn_whitening(views, shrink=1.0)
    np.testing.assert_allclose(
        np.diag(white.proj), [1 / np.sqrt(4 + 2.125), 1 / np.sqrt(0.25 + 2.125)], rtol=0.03
    )
    out = white(views[0])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_whitening_ranks_the_twin_first_where_plain_cosine_does_not() -> None:
    """Two views of one item differ mostly along 4 of 16 directions; whitening scales those down,
    so the twin becomes the nearest neighbour."""
    rng = np.random.default_rng(1)
    n, dim = 300, 16
    items = rng.standard_normal((n, dim))
    noise = np.full(dim, 0.2)
    noise[:4] = 4.0  # the nuisance directions
    views = (items[None] + rng.standard_normal((2, n, dim)) * noise).astype(np.float32)

    def twin_top1(a: np.ndarray, b: np.ndarray) -> float:
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return float(np.mean(np.argmax(a @ b.T, axis=1) == np.arange(len(a))))

    white = learn_whitening(views, shrink=0.0)
    plain, whitened = twin_top1(views[0], views[1]), twin_top1(white(views[0]), white(views[1]))
    assert plain < 0.5 < 0.9 < whitened


def test_packed_whitening_round_trips() -> None:
    white = learn_whitening(_pairs(500), shrink=1.0)
    packed = pack_whitening(white)
    assert packed["whiten.proj::q"].dtype == np.int8
    back = unpack_whitening(packed)
    assert isinstance(back, Whitening)
    np.testing.assert_allclose(back.proj, white.proj, atol=np.abs(white.proj).max() / 200)
    np.testing.assert_allclose(as_committed(white).proj, back.proj)
    assert unpack_whitening({"head.weight::q": packed["whiten.proj::q"]}) is None


def test_bad_views_are_refused() -> None:
    with pytest.raises(ValueError, match="views >= 2"):
        learn_whitening(np.zeros((1, 5, 3), np.float32))
    with pytest.raises(ValueError, match="shrink"):
        learn_whitening(_pairs(10), shrink=-1)
