"""Exact search and its scans against a plain reference loop."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.index import ExactIndex, Scanner, top_k


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_search(
    ids: np.ndarray, matrix: np.ndarray, q: np.ndarray, k: int, allowed: set[int] | None = None
) -> list[int]:
    scored = [
        (float(np.dot(q, v)), int(i))
        for i, v in zip(ids, matrix, strict=True)
        if allowed is None or int(i) in allowed
    ]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [i for _, i in scored[:k]]


def test_top_k_pads_when_fewer_than_k() -> None:
    scores, idx = top_k(np.array([[0.1, 0.9, 0.5]], dtype=np.float32), 5)
    assert idx[0].tolist() == [1, 2, 0, -1, -1]
    assert np.isneginf(scores[0, 3:]).all()


def test_exact_matches_reference_loop_with_and_without_filter() -> None:
    rng = np.random.default_rng(1)
    ids = rng.permutation(np.arange(10, 510)).astype(np.int64)
    vecs = unit_rows(500, 16)
    index = ExactIndex(16)
    index.add(ids, vecs)
    order = np.argsort(ids)
    for qi in range(5):
        q = unit_rows(1, 16, seed=100 + qi)[0]
        _, got = index.search(q[None], 7)
        assert got[0].tolist() == reference_search(ids[order], vecs[order], q, 7)
        allowed = rng.choice(ids, size=30, replace=False)
        _, got = index.search(q[None], 7, allowed)
        assert got[0].tolist() == reference_search(ids, vecs, q, 7, set(allowed.tolist()))


@pytest.mark.parametrize("threads", [1, 2])
def test_scanner_matches_the_matrix_product_for_one_and_many_queries(threads: int) -> None:
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((300, 24)).astype(np.float32)
    scan = Scanner(threads)
    for n in (1, 2, 20):
        queries = rng.standard_normal((n, 24)).astype(np.float32)
        got = scan(queries, matrix)
        assert got.shape == (n, 300) and got.dtype == np.float32
        np.testing.assert_allclose(got, queries.astype(np.float64) @ matrix.T.astype(np.float64),
                                   rtol=1e-4, atol=1e-4)
    # a non-contiguous slice of rows (a filtered subset) and empty inputs
    np.testing.assert_allclose(scan(matrix[:1], matrix[::3]), matrix[:1] @ matrix[::3].T,
                               rtol=1e-4, atol=1e-4)
    assert scan(matrix[:2], matrix[:0]).shape == (2, 0)
    assert scan(matrix[:0], matrix).shape == (0, 300)


def test_shipped_scan_graphs_are_the_ones_the_code_builds() -> None:
    pytest.importorskip("onnx")
    from lookalike.index.scan import MODELS, SCAN_FILES, scan_models

    for kind, data in scan_models().items():
        assert (MODELS / SCAN_FILES[kind]).read_bytes() == data, kind


def _hard_rows(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit rows with near-ties: clusters of tiny perturbations around a few centres, exact
    duplicates, and rows dominated by one large component (coarse int8 steps elsewhere)."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(8, dim, seed)
    rows = centres[rng.integers(0, 8, n)] + rng.standard_normal((n, dim)) * 1e-3
    rows[: n // 10] = rows[n // 10 : 2 * (n // 10)]  # duplicates
    spiky = rng.choice(n, n // 20, replace=False)
    rows[spiky, rng.integers(0, dim, len(spiky))] += 5.0
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_stage_int8_scan_returns_the_exact_top_k(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The int8 stage only prunes rows that provably cannot be in the top k: its result has the
    float32 scan's scores, whatever the data (near-ties, duplicates, spiky rows)."""
    from lookalike.index import scan as scan_module

    monkeypatch.setattr(scan_module, "INT8_MIN_ROWS", 1)
    n, dim = 3000, 48
    matrix = _hard_rows(n, dim, seed)
    rows = scan_module.Int8Rows.of(matrix)
    scan = Scanner(2)
    rng = np.random.default_rng(seed)
    queries = np.concatenate([
        matrix[rng.choice(n, 6, replace=False)],  # catalog items ("more like this")
        unit_rows(4, dim, seed + 10),  # unrelated photos
        matrix[:2] * 3.0,  # not unit length (a preference vector)
        np.zeros((1, dim), dtype=np.float32),
    ])
    for k in (1, 10, 57):
        want_s, _ = top_k(scan(queries, matrix), k)
        got_s, got_i = scan.top_k(queries, matrix, rows, k)
        np.testing.assert_allclose(got_s, want_s, rtol=0, atol=1e-6)
        # the returned rows really have those scores, each row once
        exact = (queries.astype(np.float64) @ matrix.T.astype(np.float64))
        np.testing.assert_allclose(np.take_along_axis(exact, got_i, axis=1), got_s, atol=1e-5)
        assert all(len(set(r.tolist())) == k for r in got_i)
        # a filter's subset: indices into the subset, as the float32 scan of the subset
        subset = np.sort(rng.choice(n, 2500, replace=False))
        want_s, _ = top_k(scan(queries, matrix[subset]), k)
        got_s, got_i = scan.top_k(queries, matrix, rows, k, subset)
        np.testing.assert_allclose(got_s, want_s, rtol=0, atol=1e-6)
        np.testing.assert_allclose(
            np.take_along_axis(exact[:, subset], got_i, axis=1), got_s, atol=1e-5)


def test_two_stage_scan_survives_a_non_finite_row(monkeypatch: pytest.MonkeyPatch) -> None:
    from lookalike.index import scan as scan_module

    monkeypatch.setattr(scan_module, "INT8_MIN_ROWS", 1)
    matrix = unit_rows(500, 16, seed=4)
    broken = np.arange(7, 500, 50)  # more broken rows than k: no k-th finite bound
    matrix[broken] = np.nan
    scan = Scanner(1)
    q = matrix[3:4]
    with np.errstate(invalid="ignore"):
        rows = scan_module.Int8Rows.of(matrix)
    _, got_i = scan.top_k(q, matrix, rows, 5)
    finite = np.delete(np.arange(500), broken)
    _, want_i = top_k(q @ matrix[finite].T, 5)
    assert got_i[0].tolist() == finite[want_i[0]].tolist()


def test_exact_index_keeps_its_int8_rows_in_step_with_its_matrix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lookalike.index import scan as scan_module

    monkeypatch.setattr(scan_module, "INT8_MIN_ROWS", 1)
    index = ExactIndex(16)
    vecs = unit_rows(400, 16, seed=3)
    ids = np.random.default_rng(3).permutation(np.arange(1000, 1400))
    index.add(ids[:300], vecs[:300])
    index.add(ids[250:], vecs[250:] [::-1].copy())  # re-added ids get new vectors
    index.remove(ids[::7])
    for i, row in zip(index.ids, index.matrix, strict=True):
        assert i not in set(ids[::7].tolist())
        np.testing.assert_allclose(index.get(np.array([i]))[0], row)
    fresh = scan_module.Int8Rows.of(index.matrix)
    for field in ("codes", "scale", "error", "norm"):
        np.testing.assert_array_equal(getattr(index._data[2], field), getattr(fresh, field))
    q = unit_rows(1, 16, seed=9)[0]
    _, got = index.search(q[None], 9)
    assert got[0].tolist() == reference_search(index.ids, index.matrix, q, 9)


def test_exact_remove_and_readd() -> None:
    index = ExactIndex(4)
    vecs = unit_rows(3, 4)
    index.add(np.array([1, 2, 3]), vecs)
    index.remove(np.array([2]))
    assert index.ids.tolist() == [1, 3]
    index.add(np.array([2]), vecs[1:2])
    assert index.ids.tolist() == [1, 2, 3]
    np.testing.assert_allclose(index.get(np.array([2]))[0], vecs[1])
