"""score_plan on hand-made plans (no images): each metric family is computed exactly when the
data set has its labels and enough examples, and skipped with the reason otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.evaluation.datasets import LabelledImages
from lookalike.evaluation.metrics import DEFAULT_IGNORE, retrieval_metrics
from lookalike.evaluation.protocols import EvaluationPlan, PlanFeatures
from lookalike.evaluation.scoring import METRICS, MIN_QUERIES, family_of, score_plan


def plan_of(
    labels: list[str],
    columns: dict[str, list[str]] | None = None,
    *,
    label_columns: tuple[str, ...] = ("category",),
    train: int = 0,
    seed: int = 0,
) -> tuple[EvaluationPlan, PlanFeatures]:
    """A data set of len(labels) items with random vectors; the first `train` rows train."""
    n = len(labels)
    data = LabelledImages(
        name="hand-made",
        root=Path(),
        paths=[Path(f"{i}.jpg") for i in range(n)],
        labels=labels,
        groups=[str(i) for i in range(n)],
        columns=columns or {},
        label_columns=label_columns,
        group_column=None,
        metadata=Path("items.csv"),
    )
    idx = np.arange(n, dtype=np.int64)
    plan = EvaluationPlan(data, idx[train:], idx[:train], [], use_groups=False)
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, 8)).astype(np.float32)
    return plan, PlanFeatures(vecs, np.ones(n, dtype=bool), {})


@pytest.mark.parametrize("k", [MIN_QUERIES - 1, MIN_QUERIES])
def test_retrieval_needs_enough_queries_with_a_relevant_item(k: int) -> None:
    # k items share a label; 20 others have a label of their own (never a relevant result)
    labels = ["a"] * k + [f"u{i}" for i in range(20)]
    plan, feats = plan_of(labels)
    scores = score_plan(plan, feats, probe=False)
    if k < MIN_QUERIES:
        assert "category/precision@1" not in scores.metrics
        assert scores.skipped["category"] == (
            f"only {k} queries with another item of their category (needs {MIN_QUERIES}); "
            f"{k + 20} items evaluated"
        )
    else:
        assert "category" not in scores.skipped
        assert scores.examples["category"] == k
        expected = retrieval_metrics(feats.all, labels, None, ignore_labels=("", *DEFAULT_IGNORE))
        for key, val in expected.items():
            assert scores.metrics[f"category/{key}"] == pytest.approx(val)


def test_k_results_need_more_than_k_items() -> None:
    labels = ["a", "b", "c"] * 5  # 15 items
    plan, feats = plan_of(labels)
    scores = score_plan(plan, feats, probe=False)
    assert "category/precision@10" in scores.metrics
    assert "category/precision@20" not in scores.metrics
    assert scores.skipped["category/precision@20, category/map@20"] == (
        "20 results need more than 20 items with a category; 15 evaluated"
    )


def test_labels_missing_or_empty_are_named() -> None:
    n = 30
    plan, feats = plan_of(
        [""] * n,
        {"colour": [""] * n, "pattern": ["solid", "striped"] * 15},
        label_columns=("colour", "pattern"),
    )
    scores = score_plan(plan, feats)
    sk = scores.skipped
    assert sk["category"] == "needs a category label: items.csv has no category column"
    assert sk["category_tagger"] == sk["category"]
    assert sk["colour"] == "needs a colour label: the colour column of items.csv is empty"
    assert sk["colour_tagger"] == sk["colour"]
    assert scores.examples["pattern"] == n
    assert "pattern/precision@10" in scores.metrics
    # every family is either computed or skipped, never silently missing
    for spec in METRICS:
        assert (spec.name in scores.examples) != (spec.name in sk)


def test_tagger_without_split_takes_every_other_item_of_each_label() -> None:
    """Labels alternating a, b, a, b: even/odd rows would train on a and score only b."""
    labels = ["a", "b"] * 20
    plan, feats = plan_of(labels)
    scores = score_plan(plan, feats)
    assert scores.examples["category_tagger"] == 20
    assert sorted(set(scores.probe_true)) == ["a", "b"]
    assert 0.0 <= scores.metrics["category_tagger/micro_f1"] <= 1.0


def test_tagger_with_a_split_and_one_class_is_skipped() -> None:
    labels = ["a"] * 20 + ["a", "b"] * 10
    plan, feats = plan_of(labels, train=20)  # the training part only has "a"
    scores = score_plan(plan, feats)
    assert scores.skipped["category_tagger"] == "its 20 training items all have the same category"


def test_family_of() -> None:
    assert family_of("category/precision@10").name == "category"  # type: ignore[union-attr]
    spec = family_of("colour/top10_majority_agreement")
    assert spec is not None and spec.name == "colour/top10_majority_agreement"
    assert family_of("synthetic_pairs/top1").name == "synthetic_pairs"  # type: ignore[union-attr]
    assert family_of("nothing/at_all") is None
