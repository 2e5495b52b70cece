"""Metrics against hand-computed small cases and a plain reference loop."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.evaluation.metrics import (
    classification_f1,
    majority_agreement,
    neighbours,
    pair_topk_accuracy,
    retrieval_metrics,
)


def _line(angles: list[float]) -> np.ndarray:
    """Unit vectors on a circle: cosine order = angular distance order."""
    a = np.radians(angles)
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)


def test_precision_and_map_hand_computed() -> None:
    # items at 0, 10, 20, 30 degrees; labels A A B A
    x = _line([0, 10, 20, 30])
    labels = ["A", "A", "B", "A"]
    m = retrieval_metrics(x, labels, ks=(1, 2, 3))
    # query 0: ranking 1(A) 2(B) 3(A) -> P@1=1, P@2=.5, P@3=2/3; R=2; AP@3=(1+2/3)/2
    # query 1: ranking 0(A)/2(B) tie at 10 deg -> lower index first: 0(A), 2(B), 3(A)
    #          P@1=1 P@2=.5 P@3=2/3; AP@3=(1 + 2/3)/2
    # query 2 (B): no other B -> R=0, left out
    # query 3: ranking 2(B) 1(A) 0(A): P@1=0 P@2=.5 P@3=2/3; AP@3=(1/2+2/3)/2
    assert m["queries"] == 3
    assert m["precision@1"] == pytest.approx(2 / 3)
    assert m["precision@2"] == pytest.approx(0.5)
    assert m["precision@3"] == pytest.approx(2 / 3)
    assert m["map@1"] == pytest.approx(2 / 3)  # AP@1 = rel_1 / min(1, R)
    # AP@2: q0 (1)/2, q1 (1)/2, q3 (1/2)/2
    assert m["map@2"] == pytest.approx(((1 / 2) + (1 / 2) + (1 / 4)) / 3)
    ap3 = [(1 + 2 / 3) / 2, (1 + 2 / 3) / 2, (1 / 2 + 2 / 3) / 2]
    assert m["map@3"] == pytest.approx(sum(ap3) / 3)


def test_group_exclusion_and_ignored_labels() -> None:
    x = _line([0, 5, 10, 40, 80])
    labels = ["A", "A", "Skip", "A", "B"]
    groups = ["g1", "g1", "g2", "g2", "g3"]
    m = retrieval_metrics(x, labels, groups, ks=(1,), ignore_labels=("Skip",))
    # query 0 (g1): own group item 1 excluded, item 2 ignored -> ranking 3(A) 4(B): P@1 = 1
    # query 1: same -> 1; query 3 (g2): ranking 1(A)... -> 1; query 4 (B): R=0 -> left out
    assert m["queries"] == 3
    assert m["precision@1"] == 1.0
    nn = neighbours(x, 2, groups=groups, valid=np.array([True, True, False, True, True]))
    assert nn[0].tolist() == [3, 4]
    assert 2 not in nn.ravel()


def test_fewer_candidates_than_k_count_as_misses() -> None:
    x = _line([0, 10])
    m = retrieval_metrics(x, ["A", "A"], ks=(1, 5))
    assert m["precision@1"] == 1.0
    assert m["precision@5"] == pytest.approx(1 / 5)
    assert m["map@5"] == 1.0  # AP normalised by min(k, R) = 1


def test_matches_reference_loop_on_random_data() -> None:
    rng = np.random.default_rng(0)
    n = 60
    x = rng.standard_normal((n, 8)).astype(np.float32)
    labels = [str(v) for v in rng.integers(0, 4, n)]
    groups = [str(v) for v in rng.integers(0, 10, n)]
    got = retrieval_metrics(x, labels, groups, ks=(5,), ignore_labels=("3",))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    precs, aps = [], []
    for q in range(n):
        if labels[q] == "3":
            continue
        cands = [j for j in range(n) if j != q and groups[j] != groups[q] and labels[j] != "3"]
        r = sum(labels[j] == labels[q] for j in cands)
        if r == 0:
            continue
        ranked = sorted(cands, key=lambda j: (-float(xn[q] @ xn[j]), j))[:5]
        rel = [labels[j] == labels[q] for j in ranked]
        precs.append(sum(rel) / 5)
        aps.append(sum(sum(rel[: i + 1]) / (i + 1) for i in range(5) if rel[i]) / min(5, r))
    assert got["precision@5"] == pytest.approx(np.mean(precs), abs=1e-6)
    assert got["map@5"] == pytest.approx(np.mean(aps), abs=1e-6)


def test_pair_topk_accuracy() -> None:
    gallery = _line([0, 30, 60, 90])
    queries = _line([1, 50, 89])  # nearest: 0, 60, 90
    acc = pair_topk_accuracy(queries, gallery, [0, 1, 3], ks=(1, 2))
    # q0 target 0 rank 0; q1 target 1 (30 deg, 20 away; 60 is 10 away) rank 1; q2 rank 0
    assert acc == {"top1": pytest.approx(2 / 3), "top2": 1.0}


def test_majority_agreement_ties_go_to_higher_rank() -> None:
    values = ["red", "red", "blue", "blue", "", "red"]
    nn = np.array([[2, 1, 3, 5], [4, 0, -1, -1], [0, 1, 3, 5]])
    # q0 red: neighbours blue red blue red -> tie 2/2, blue reached first -> disagree
    # q1 red: "" ignored, red -> agree; q2 blue: red red blue red -> red -> disagree
    assert majority_agreement(nn, [0, 1, 2], values) == pytest.approx(1 / 3)


def test_classification_f1() -> None:
    f1 = classification_f1(["a", "a", "b", "c"], ["a", "b", "b", "b"])
    # a: tp1 fp0 fn1 -> 2/3; b: tp1 fp2 fn0 -> 1/2; c: 0
    assert f1["micro_f1"] == pytest.approx(0.5)
    assert f1["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
