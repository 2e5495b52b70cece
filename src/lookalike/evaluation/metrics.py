"""Retrieval and agreement metrics on L2-normalised vectors, returned as named floats.

Exact choices (tests pin them against hand-computed cases):

* Similarity is the inner product of L2-normalised vectors (cosine); ties keep the lower index.
* Every item whose label is not ignored queries all *other* non-ignored items, minus the items
  of its own group (e.g. the contributor `sender_id`): those are neither results nor relevant.
  Items with an ignored label are neither queries nor results.
* precision@k = (relevant items in the top k) / k. If fewer than k candidates exist the missing
  slots count as misses.
* AP@k = (1 / min(k, R)) * sum_{i<=k} precision@i * rel_i, with R the number of relevant
  candidates of that query; map@k is its mean.
* Queries with no relevant candidate at all (R = 0) are left out of every mean; `queries`
  reports how many counted.

`first_stage=FirstStage(...)` (optional; without it every ranking is the full-width one above)
ranks instead as the embedded store searches a clustered catalog wider than its code width:
see `FirstStage`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.encoders.base import l2_normalise
from lookalike.index.scan import QueryCodes, Scanner
from lookalike.index.segments import learn_projection, projected_codes, projection_sample

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20)
DEFAULT_IGNORE: tuple[str, ...] = ("Not sure", "Skip", "Other")
_BLOCK = 1024

IntArray = NDArray[np.int64]


def _codes(values: Sequence[str]) -> IntArray:
    index: dict[str, int] = {}
    return np.asarray([index.setdefault(v, len(index)) for v in values], dtype=np.int64)


@dataclass(frozen=True)
class FirstStage:
    """Rank as the embedded store searches a clustered catalog whose vectors are wider than
    `code_dim` (`Settings.index_code_dim`): a first stage on int8 codes of each row's
    projection onto the gallery's top `code_dim` principal directions, then the best
    `rescore` rows by that approximate score rescored at full width.

    Exactly, for a gallery G (the rows searched, L2-normalised) and each query q:

    * the projection is learnt from G's own rows (`segments.learn_projection`, from at most
      `segments.PROJECTION_SAMPLE` rows, `segments.projection_sample`); rows are coded by
      `segments.projected_codes`, queries by `scan.QueryCodes.projected`; the approximate
      score is the int8 dot product times the row's and the query's scales, as the store's;
    * rows a ranking may never return (invalid rows, the query itself, its group) are dropped
      before the first stage picks its rows, as a store filters before ranking, so they
      never take a rescore slot;
    * the best `rescore` remaining rows by approximate score get their exact (full-width,
      float32) score; every other row ranks after all of them, among themselves by their
      approximate score. So a target outside the rescored rows has a rank of at least
      `rescore`: for any k <= rescore it is not in the top k, as a store asked for k results
      never returns it.

    The store rescores `Settings.index_rescore` (16) rows per 10 results, and more
    when the first stage's error on those leaves further rows in reach
    (`index.scan.rescore_depth`); here `rescore` is fixed, the store's floor, so a smaller one
    shows the margin. Not modelled: which inverted lists
    a search reads (the store's probing, measured as recall by `bench/bench_scale.py`).
    Vectors no wider than `code_dim` are ranked at full width (the store scores them with
    full-width codes and an exact bound).
    """

    code_dim: int = 512
    rescore: int = 16

    def __post_init__(self) -> None:
        if self.code_dim < 1 or self.rescore < 1:
            raise ValueError(f"{self}: code_dim and rescore must be at least 1")


class _Staged:
    """A gallery's first stage (`FirstStage`): its projection and projected codes."""

    def __init__(self, gallery: NDArray[np.float32], stage: FirstStage) -> None:
        self.rescore = stage.rescore
        n, dim = gallery.shape
        self.projection: NDArray[np.float32] | None = None
        if stage.code_dim < dim and n > 0:
            # the rows the store learns its projection from (`segments._projection_for`)
            self.projection = learn_projection(gallery[projection_sample(n)], stage.code_dim)
            self.codes = projected_codes(gallery, self.projection)
            self.scanner = Scanner(threads=1)

    def scores(
        self,
        queries: NDArray[np.float32],
        exact: NDArray[np.float32],
    ) -> NDArray[Any]:
        """(m, n) scores whose order is the two-stage ranking: `exact` (the full-width
        scores) on each query's rescored rows, every other row below them all (its
        approximate score minus a per-query shift), -inf where `exact` is -inf (rows the
        caller has masked: they never take a rescore slot)."""
        m, n = exact.shape
        if self.projection is None or m == 0 or n == 0:
            return exact
        q = QueryCodes.projected(queries, queries @ self.projection.T)
        dots = self.scanner.int8_dots(self.codes.codes, q)  # (n, m)
        # as `QueryCodes.candidates` computes it, query by query
        approx = dots.T.astype(np.float32) * (self.codes.scale[None, :] * q.scale[:, None])
        approx[~np.isfinite(exact)] = -np.inf
        r = min(self.rescore, n)
        chosen = np.zeros((m, n), dtype=bool)
        top = np.argpartition(-approx, r - 1, axis=1)[:, :r] if r < n else np.arange(n)[None]
        np.put_along_axis(chosen, np.broadcast_to(top, (m, r)), True, axis=1)
        chosen &= np.isfinite(approx)
        others = ~chosen & np.isfinite(approx)
        out = approx.astype(np.float64)
        lowest = np.where(chosen, exact, np.inf).min(axis=1)
        highest = np.where(others, approx, -np.inf).max(axis=1)
        shift = np.where(
            np.isfinite(lowest) & np.isfinite(highest),
            np.maximum(highest.astype(np.float64) - lowest, 0.0) + 1.0,
            0.0,
        )
        out -= shift[:, None]
        out[chosen] = exact[chosen]
        out[~np.isfinite(approx)] = -np.inf
        return out


def neighbours(
    vectors: NDArray[Any],
    k: int,
    *,
    groups: Sequence[str] | None = None,
    valid: NDArray[np.bool_] | None = None,
    queries: IntArray | None = None,
    first_stage: FirstStage | None = None,
) -> IntArray:
    """Indices of the `k` nearest other items of each query (rows), best first; -1 pads.

    Self, items of the query's group and items where `valid` is False are never returned.
    `queries` picks the query rows (default: all valid items). Blocked, so n x n never lives in
    memory at once. `first_stage`: ranked through it, the gallery being every row (`FirstStage`).
    """
    x = l2_normalise(vectors)
    n = x.shape[0]
    ok = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    q_idx = np.flatnonzero(ok) if queries is None else np.asarray(queries, dtype=np.int64)
    g = _codes(groups) if groups is not None else None
    staged = None if first_stage is None else _Staged(x, first_stage)
    out = np.full((len(q_idx), k), -1, dtype=np.int64)
    kk = min(k, n)
    for start in range(0, len(q_idx), _BLOCK):
        rows = q_idx[start : start + _BLOCK]
        sims = x[rows] @ x.T
        sims[:, ~ok] = -np.inf
        sims[np.arange(len(rows)), rows] = -np.inf
        if g is not None:
            sims[g[rows][:, None] == g[None, :]] = -np.inf
        if staged is not None:  # masked first, so masked rows take no rescore slot
            sims = staged.scores(x[rows], sims)
        if kk < n:
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        else:
            part = np.tile(np.arange(n), (len(rows), 1))
        part_sims = np.take_along_axis(sims, part, axis=1)
        # sort by similarity desc, then index asc (stable tie-break)
        order = np.lexsort((part, -part_sims), axis=1)
        best = np.take_along_axis(part, order, axis=1)
        best_sims = np.take_along_axis(part_sims, order, axis=1)
        best[~np.isfinite(best_sims)] = -1
        out[start : start + len(rows), :kk] = best
    return out


def relevant_counts(
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
    ignore_labels: Sequence[str] = DEFAULT_IGNORE,
) -> NDArray[np.float64]:
    """For every query (each item whose label is not ignored, in order): how many candidates
    are relevant to it, i.e. have its label and are neither itself nor of its group."""
    ignored = set(ignore_labels)
    q_idx = [i for i, lab in enumerate(labels) if lab not in ignored]
    per_label = Counter(labels[i] for i in q_idx)
    total = np.asarray([per_label[labels[i]] for i in q_idx], dtype=np.float64)
    if groups is None:
        return total - 1  # only the query itself is left out
    per_label_group = Counter((labels[i], groups[i]) for i in q_idx)
    own_group = np.asarray([per_label_group[(labels[i], groups[i])] for i in q_idx], np.float64)
    return total - own_group


def retrieval_metrics(
    vectors: NDArray[Any],
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    ignore_labels: Sequence[str] = DEFAULT_IGNORE,
    first_stage: FirstStage | None = None,
) -> dict[str, float]:
    """precision@k and map@k of retrieving items with the query's label (see module doc),
    ranked through `first_stage` when given."""
    n = len(labels)
    if vectors.shape[0] != n:
        raise ValueError(f"{vectors.shape[0]} vectors but {n} labels")
    ignored = set(ignore_labels)
    valid = np.asarray([lab not in ignored for lab in labels], dtype=bool)
    kmax = max(ks)
    nn = neighbours(vectors, kmax, groups=groups, valid=valid, first_stage=first_stage)
    q_idx = np.flatnonzero(valid)
    lab = _codes(labels)
    r = relevant_counts(labels, groups, ignore_labels)
    rel = (nn >= 0) & (lab[np.maximum(nn, 0)] == lab[q_idx][:, None])
    keep = r > 0
    rel, r = rel[keep].astype(np.float64), r[keep]
    out: dict[str, float] = {"queries": float(keep.sum())}
    if not keep.any():
        for k in ks:
            out[f"precision@{k}"] = 0.0
            out[f"map@{k}"] = 0.0
        return out
    hits = np.cumsum(rel, axis=1)
    prec_at_i = hits / np.arange(1, kmax + 1)
    for k in ks:
        out[f"precision@{k}"] = float((hits[:, k - 1] / k).mean())
        ap = (prec_at_i[:, :k] * rel[:, :k]).sum(axis=1) / np.minimum(k, r)
        out[f"map@{k}"] = float(ap.mean())
    return out


def pair_topk_accuracy(
    queries: NDArray[Any],
    gallery: NDArray[Any],
    targets: Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
    first_stage: FirstStage | None = None,
) -> dict[str, float]:
    """Fraction of queries whose target gallery row is within the top k (cosine).

    Rank = number of gallery rows strictly more similar than the target, so a tie with the
    target does not push it down. Keys: `top1`, `top5`, ...

    `first_stage`: ranked through it (`FirstStage`), the gallery's projection learnt from the
    gallery. Nothing is masked; a target the first stage does not pick ranks after every
    rescored row (rank >= rescore), so it is in no top k for k <= rescore.
    """
    q = l2_normalise(queries)
    g = l2_normalise(gallery)
    t = np.asarray(targets, dtype=np.int64)
    staged = None if first_stage is None else _Staged(g, first_stage)
    ranks = np.empty(len(t), dtype=np.int64)
    for start in range(0, len(t), _BLOCK):
        sims = q[start : start + _BLOCK] @ g.T
        if staged is not None:
            sims = staged.scores(q[start : start + _BLOCK], sims)
        own = sims[np.arange(sims.shape[0]), t[start : start + _BLOCK]]
        ranks[start : start + _BLOCK] = (sims > own[:, None]).sum(axis=1)
    return {f"top{k}": float((ranks < k).mean()) if len(t) else 0.0 for k in ks}


def majority_agreement(
    neighbour_idx: IntArray,
    query_idx: Sequence[int],
    values: Sequence[str],
    ignore: Sequence[str] = ("",),
) -> float:
    """Fraction of queries whose value (e.g. colour) is the most frequent one among their
    neighbours. Ties go to the value reached first in rank order. Queries with an ignored value
    are skipped; ignored neighbour values are not counted."""
    skip = set(ignore)
    agree = total = 0
    for row, qi in zip(neighbour_idx, query_idx, strict=True):
        own = values[qi]
        if own in skip:
            continue
        counts = Counter(values[j] for j in row if j >= 0 and values[j] not in skip)
        total += 1
        if counts and counts.most_common(1)[0][0] == own:
            agree += 1
    return agree / total if total else 0.0


def classification_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float]:
    """micro F1 (= accuracy for single-label tagging) and macro F1 over the true labels."""
    labels = sorted(set(y_true))
    if not labels:
        return {"micro_f1": 0.0, "macro_f1": 0.0}
    micro = sum(a == b for a, b in zip(y_true, y_pred, strict=True)) / len(y_true)
    f1s = []
    for lab in labels:
        tp = sum(a == lab and b == lab for a, b in zip(y_true, y_pred, strict=True))
        fp = sum(a != lab and b == lab for a, b in zip(y_true, y_pred, strict=True))
        fn = sum(a == lab and b != lab for a, b in zip(y_true, y_pred, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"micro_f1": float(micro), "macro_f1": float(np.mean(f1s))}
