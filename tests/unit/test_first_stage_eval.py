"""Ranking through the store's first stage (`metrics.FirstStage`): the same ranking as the full
width when every row is rescored, a different one when few are and the projection loses what
decides, masks applied before the rows to rescore are chosen, the default path unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.evaluation.datasets import LabelledImages
from lookalike.evaluation.metrics import (
    FirstStage,
    neighbours,
    pair_topk_accuracy,
    retrieval_metrics,
)
from lookalike.evaluation.protocols import EvaluationPlan, PlanFeatures
from lookalike.evaluation.scoring import score_plan


def _random(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _lossy(n: int, seed: int = 0) -> np.ndarray:
    """Rows sharing one dominant direction (what a 1-d projection keeps) and told apart only
    by small parts in 7 others (what it loses)."""
    rng = np.random.default_rng(seed)
    x = 0.3 * rng.standard_normal((n, 8))
    x[:, 0] = 10.0 + rng.standard_normal(n)
    return x.astype(np.float32)


def _circle(degrees: list[float]) -> np.ndarray:
    a = np.radians(degrees)
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)


def test_every_row_rescored_is_the_full_width_ranking() -> None:
    x = _random(60, 16)
    groups = [str(i // 3) for i in range(60)]
    valid = np.arange(60) % 7 != 0
    everything = FirstStage(code_dim=4, rescore=60)
    full = neighbours(x, 10, groups=groups, valid=valid)
    staged = neighbours(x, 10, groups=groups, valid=valid, first_stage=everything)
    assert np.array_equal(full, staged)
    q, t = _random(25, 16, seed=1), list(range(25))
    assert pair_topk_accuracy(q, x, t, first_stage=everything) == pair_topk_accuracy(q, x, t)
    # vectors no wider than the codes are searched at full width
    assert np.array_equal(
        full,
        neighbours(
            x, 10, groups=groups, valid=valid, first_stage=FirstStage(code_dim=16, rescore=1)
        ),
    )


def test_a_lossy_projection_and_few_rows_rescored_lose_quality() -> None:
    g = _lossy(200)
    q = g + 0.01 * _random(200, 8, seed=3)  # each query's target: its own gallery row
    t = list(range(200))
    full = pair_topk_accuracy(q, g, t, (1, 5))
    assert full["top1"] == 1.0
    few = pair_topk_accuracy(q, g, t, (1, 5), first_stage=FirstStage(code_dim=1, rescore=2))
    assert few["top1"] < 0.5
    # a target the first stage did not pick is in no top k (k <= rescore... and here beyond)
    assert few["top5"] < 0.5
    assert (
        pair_topk_accuracy(q, g, t, (1, 5), first_stage=FirstStage(code_dim=1, rescore=200)) == full
    )
    labels = [str(i % 2) for i in range(200)]
    g[:, 1] += np.where(np.arange(200) % 2 == 0, 0.5, -0.5)  # the label: a lost direction
    good = retrieval_metrics(g, labels, ks=(5,))["precision@5"]
    bad = retrieval_metrics(g, labels, ks=(5,), first_stage=FirstStage(1, 2))["precision@5"]
    assert good > bad + 0.2


def test_masked_rows_take_no_rescore_slot() -> None:
    # query: the row at 20 degrees; the learnt 1-d projection lies near 3 degrees, so the
    # first stage ranks its group mate (4) > A (9) > B (18) > the query itself > ... while at
    # full width B is nearest. Two rescore slots: A and B when the group mate and the query
    # are left out first (B returned); the group mate and A otherwise (A returned).
    x = _circle([20, 4, 9, 18, -20, -15])
    groups = ["q", "q", "a", "b", "c", "d"]
    nn = neighbours(
        x, 1, groups=groups, queries=np.array([0]), first_stage=FirstStage(code_dim=1, rescore=2)
    )
    assert nn[0].tolist() == [3]
    full = neighbours(x, 1, groups=groups, queries=np.array([0]))
    assert full[0].tolist() == [3]
    # one slot: the best allowed row by the first stage, A, not the group mate
    one = neighbours(
        x, 1, groups=groups, queries=np.array([0]), first_stage=FirstStage(code_dim=1, rescore=1)
    )
    assert one[0].tolist() == [2]


@pytest.mark.parametrize("rescore", [1, 2, 5, 100])
def test_self_group_and_invalid_rows_never_returned(rescore: int) -> None:
    x = _lossy(50, seed=4)
    groups = [str(i // 4) for i in range(50)]
    valid = np.arange(50) % 5 != 1
    nn = neighbours(
        x, 20, groups=groups, valid=valid, first_stage=FirstStage(code_dim=2, rescore=rescore)
    )
    q_idx = np.flatnonzero(valid)
    for qi, row in zip(q_idx, nn, strict=True):
        got = row[row >= 0]
        assert qi not in got
        assert not any(groups[j] == groups[qi] for j in got)
        assert valid[got].all()
        assert len(set(got.tolist())) == len(got)
        # every allowed row is ranked: the first stage leaves none out
        allowed = sum(valid[j] and groups[j] != groups[qi] for j in range(50))
        assert len(got) == min(20, allowed)


def test_default_path_unchanged() -> None:
    """Without a first stage: the plain ranking (cosine, ties to the lower index)."""
    x = _random(40, 6, seed=5)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    nn = neighbours(x, 5)
    for i in range(40):
        sims = u[i] @ u.T
        sims[i] = -np.inf
        order = sorted(range(40), key=lambda j: (-sims[j], j))[:5]
        assert nn[i].tolist() == order


def test_score_plan_through_the_first_stage() -> None:
    n = 40
    data = LabelledImages(
        name="hand-made",
        root=Path(),
        paths=[Path(f"{i}.jpg") for i in range(n)],
        labels=[str(i % 3) for i in range(n)],
        groups=[str(i) for i in range(n)],
        columns={},
        label_columns=("category",),
        group_column=None,
        metadata=Path("items.csv"),
    )
    plan = EvaluationPlan(
        data, np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64), [], use_groups=False
    )
    feats = PlanFeatures(_random(n, 8), np.ones(n, dtype=bool), {})
    full = score_plan(plan, feats, probe=False)
    assert score_plan(plan, feats, probe=False, first_stage=FirstStage(4, 40)).metrics == (
        full.metrics
    )
    few = score_plan(plan, feats, probe=False, first_stage=FirstStage(2, 1))
    assert set(few.metrics) == set(full.metrics)
    assert few.metrics != full.metrics


def test_first_stage_needs_positive_sizes() -> None:
    with pytest.raises(ValueError):
        FirstStage(code_dim=0)
    with pytest.raises(ValueError):
        FirstStage(rescore=0)
