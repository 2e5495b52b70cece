"""Scoring a plan: every metric declares the labels it needs and how few examples it accepts.

`METRICS` lists the metric families of an evaluation in report order. Each one is computed when
the data set has the labels it needs (on the evaluated items) and enough examples for a mean
worth printing; otherwise it is skipped with one sentence saying which and why, so a catalog
with any subset of labels (or a tiny one) is scored on whatever it supports, never fails.
`Scores.metrics` holds the named floats (`"category/precision@10"`, ...), `Scores.skipped` the
reasons, `Scores.examples` how many queries / pairs / test items each computed family used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.encoders.base import l2_normalise
from lookalike.evaluation.metrics import (
    DEFAULT_KS,
    FirstStage,
    classification_f1,
    majority_agreement,
    neighbours,
    pair_topk_accuracy,
    relevant_counts,
    retrieval_metrics,
)
from lookalike.evaluation.protocols import SYNTHETIC, EvaluationPlan, PlanFeatures

__all__ = [
    "METRICS",
    "MIN_QUERIES",
    "MIN_TAGGER_ITEMS",
    "MetricSpec",
    "Scores",
    "family_of",
    "score_plan",
]

MIN_QUERIES = 10  # fewer queries (or pairs) than this: the mean is noise, the metric is skipped
MIN_TAGGER_ITEMS = 10  # a tagger needs this many labelled items to train on and to score


@dataclass(frozen=True)
class MetricSpec:
    """One family of metrics: `name` is a metric's name or the prefix of `name/...` metrics.

    `needs`: label columns that must have values on the evaluated items (none: pixels only).
    `min_examples`: the fewest `unit`s (queries, pairs, items) it is computed on.
    """

    name: str
    needs: tuple[str, ...]
    min_examples: int
    unit: str


_RETRIEVED = "queries with another item of their {}"
_TAGGED = "items to train on and to score (each)"

METRICS: tuple[MetricSpec, ...] = (
    # precision@k / map@k of finding items with the query's label
    MetricSpec("category", ("category",), MIN_QUERIES, _RETRIEVED.format("category")),
    MetricSpec("colour", ("colour",), MIN_QUERIES, _RETRIEVED.format("colour")),
    MetricSpec("pattern", ("pattern",), MIN_QUERIES, _RETRIEVED.format("pattern")),
    # the query's colour is the most common one of its top 10 (given, or named from pixels)
    MetricSpec("colour/top10_majority_agreement", ("colour",), MIN_QUERIES, "coloured queries"),
    MetricSpec("dominant_colour/top10_majority_agreement", (), MIN_QUERIES, "decoded queries"),
    # SYNTHETIC: one augmented view of an image finds the other among every evaluated image
    MetricSpec(f"{SYNTHETIC}_pairs", (), MIN_QUERIES, "pairs"),
    # a transformed photo (garment on another background, crop of 1/2 or 1/4) finds its original
    MetricSpec("background-swap", (), MIN_QUERIES, "photos"),
    MetricSpec("crop-zoom-50", (), MIN_QUERIES, "photos"),
    MetricSpec("crop-zoom-25", (), MIN_QUERIES, "photos"),
    # logistic regression on the embedding predicts the label (micro / macro F1)
    MetricSpec("category_tagger", ("category",), MIN_TAGGER_ITEMS, _TAGGED),
    MetricSpec("colour_tagger", ("colour",), MIN_TAGGER_ITEMS, _TAGGED),
)


def family_of(metric: str) -> MetricSpec | None:
    """The spec a metric name belongs to (the longest matching name)."""
    best: MetricSpec | None = None
    for spec in METRICS:
        if (metric == spec.name or metric.startswith(spec.name + "/")) and (
            best is None or len(spec.name) > len(best.name)
        ):
            best = spec
    return best


@dataclass
class Scores:
    metrics: dict[str, float]
    neighbours: NDArray[np.int64]  # top-10 of each eval row, as eval-row indices
    probe_true: list[str]
    probe_pred: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # metric (family) -> why
    examples: dict[str, int] = field(default_factory=dict)  # family -> queries/pairs/items


class _SkippedError(Exception):
    """A family cannot be computed (too few examples...); the message says why."""


@dataclass
class _Run:
    """What every family reads: the evaluated rows that decoded (`ev`), their vectors (`x`)."""

    plan: EvaluationPlan
    feats: PlanFeatures
    ks: tuple[int, ...]
    ev: NDArray[np.int64]
    x: NDArray[np.float32]
    groups: list[str] | None
    nn: NDArray[np.int64]
    first_stage: FirstStage | None = None  # searches ranked through it (`FirstStage`)
    out: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    probe_true: list[str] = field(default_factory=list)
    probe_pred: list[str] = field(default_factory=list)

    def values(self, label: str) -> list[str]:
        """Values of `label` on the evaluated rows ("" where missing)."""
        col = self.plan.dataset.values(label)
        assert col is not None  # checked against the spec's `needs` first
        return [col[i] for i in self.ev]

    def enough(self, spec: MetricSpec, n: int) -> None:
        """Record that `spec` runs on `n` examples, or raise _SkippedError when that is too few."""
        if n < spec.min_examples:
            raise _SkippedError(
                f"only {n} {spec.unit} (needs {spec.min_examples}); {len(self.ev)} items evaluated"
            )
        self.examples[spec.name] = n


def _retrieval(run: _Run, spec: MetricSpec) -> None:
    label = spec.needs[0]
    ignore = ("", *run.plan.ignore_labels)
    vals = run.values(label)
    r = relevant_counts(vals, run.groups, ignore)
    run.enough(spec, int((r > 0).sum()))
    # k results need more than k labelled items: a larger k could never be filled
    usable = int(sum(v not in ignore for v in vals))
    ks = tuple(k for k in run.ks if k < usable)
    for k in run.ks:
        if k >= usable:
            run.skipped[f"{spec.name}/precision@{k}, {spec.name}/map@{k}"] = (
                f"{k} results need more than {k} items with a {label}; {usable} evaluated"
            )
    for key, val in retrieval_metrics(
        run.x, vals, run.groups, ks, ignore, first_stage=run.first_stage
    ).items():
        run.out[f"{spec.name}/{key}"] = val


def _agreement(run: _Run, spec: MetricSpec) -> None:
    column = spec.name.split("/")[0]
    col = run.plan.dataset.values(column)
    if col is None:
        raise _SkippedError(f"no {column} column")
    vals = [col[i] for i in run.ev]
    run.enough(spec, sum(v != "" for v in vals))
    run.out[spec.name] = majority_agreement(run.nn, range(len(run.ev)), vals)


def _targets(run: _Run, view: str) -> tuple[NDArray[np.bool_], list[int]]:
    """Which queries of a view set have a decoded target, and the target's position in `ev`."""
    pos = {int(r): k for k, r in enumerate(np.flatnonzero(run.feats.ok[run.plan.eval_idx]))}
    vs = next((v for v in run.plan.views if v.name == view), None)
    if vs is None or view not in run.feats.views:
        raise _SkippedError(f"the plan has no {view} views")
    keep = np.asarray([t in pos for t in vs.targets], dtype=bool)
    return keep, [pos[t] for t in vs.targets if t in pos]


def _pairs(run: _Run, spec: MetricSpec) -> None:
    keep, tg = _targets(run, f"{SYNTHETIC}-view-a")
    run.enough(spec, len(tg))
    a = run.feats.views[f"{SYNTHETIC}-view-a"][keep]
    b = run.feats.views[f"{SYNTHETIC}-view-b"][keep]
    # gallery: view B of each pair, plus the originals of every other evaluated image
    others = np.setdiff1d(np.arange(len(run.ev)), tg)
    gallery = np.concatenate([b, run.x[others]])
    for key, val in pair_topk_accuracy(
        a, gallery, list(range(len(tg))), first_stage=run.first_stage
    ).items():
        run.out[f"{spec.name}/{key}"] = val


def _robustness(run: _Run, spec: MetricSpec) -> None:
    keep, tg = _targets(run, spec.name)
    run.enough(spec, len(set(tg)))  # photos: background-swap has several queries per photo
    q = run.feats.views[spec.name][keep]
    for key, val in pair_topk_accuracy(q, run.x, tg, (1, 10), first_stage=run.first_stage).items():
        run.out[f"{spec.name}/{key}"] = val


def _probe_f1(
    x_train: NDArray[Any], y_train: list[str], x_test: NDArray[Any], y_test: list[str]
) -> tuple[dict[str, float], list[str]]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=300, C=1.0)
    clf.fit(x_train, y_train)
    pred = [str(p) for p in clf.predict(x_test)]
    return classification_f1(y_test, pred), pred


def _tagger_rows(run: _Run, label: str) -> tuple[list[int], list[int]]:
    """Dataset rows a tagger of `label` trains and is scored on: the train split and the
    evaluated part; without a split, every other evaluated item of each `label` value (so each
    value with two items is on both sides, however the file is sorted). Only rows that decoded,
    have a `label` and are usable photos (category not "Not sure"...) count, and test rows only
    with a value some training row has."""
    d, ok = run.plan.dataset, run.feats.ok
    col = d.values(label)
    assert col is not None
    ign = set(run.plan.ignore_labels)

    def usable(rows: NDArray[np.int64]) -> list[int]:
        return [int(i) for i in rows if ok[i] and col[i] and d.labels[i] not in ign]

    if len(run.plan.train_idx):
        tr, te = usable(run.plan.train_idx), usable(run.plan.eval_idx)
    else:
        tr, te, seen = [], [], Counter[str]()
        for i in usable(run.plan.eval_idx):
            (tr if seen[col[i]] % 2 == 0 else te).append(i)
            seen[col[i]] += 1
    classes = {col[i] for i in tr}
    return tr, [i for i in te if col[i] in classes]


def _tagger(run: _Run, spec: MetricSpec) -> None:
    """Logistic regression on the embedding, trained on one part, scored on the other."""
    label = spec.needs[0]
    col = run.plan.dataset.values(label)
    assert col is not None
    tr, te = _tagger_rows(run, label)
    if min(len(tr), len(te)) < spec.min_examples:
        raise _SkippedError(
            f"only {len(tr)} items to train on and {len(te)} to score with a {label} (needs "
            f"{spec.min_examples} each); {len(run.ev)} items evaluated"
        )
    if len({col[i] for i in tr}) < 2:
        raise _SkippedError(f"its {len(tr)} training items all have the same {label}")
    run.examples[spec.name] = len(te)  # scored items
    x = l2_normalise(run.feats.all)
    f1, pred = _probe_f1(x[tr], [col[i] for i in tr], x[te], [col[i] for i in te])
    run.out[f"{spec.name}/micro_f1"] = f1["micro_f1"]
    run.out[f"{spec.name}/macro_f1"] = f1["macro_f1"]
    if label == "category":
        run.probe_true, run.probe_pred = [col[i] for i in te], pred


_SCORERS: dict[str, Callable[[_Run, MetricSpec], None]] = {
    "category": _retrieval,
    "colour": _retrieval,
    "pattern": _retrieval,
    "colour/top10_majority_agreement": _agreement,
    "dominant_colour/top10_majority_agreement": _agreement,
    f"{SYNTHETIC}_pairs": _pairs,
    "background-swap": _robustness,
    "crop-zoom-50": _robustness,
    "crop-zoom-25": _robustness,
    "category_tagger": _tagger,
    "colour_tagger": _tagger,
}


def _missing_label(run: _Run, spec: MetricSpec) -> str | None:
    """Why the data set cannot give `spec` the labels it needs, or None when it can."""
    d = run.plan.dataset
    source = d.metadata.name if d.metadata is not None else d.name
    for label in spec.needs:
        col = d.values(label)
        if col is None:
            return f"needs a {label} label: {source} has no {label} column"
        if not any(col[i] for i in run.ev):
            return f"needs a {label} label: the {label} column of {source} is empty"
    return None


def score_plan(
    plan: EvaluationPlan,
    feats: PlanFeatures,
    ks: tuple[int, ...] = DEFAULT_KS,
    probe: bool = True,
    first_stage: FirstStage | None = None,
) -> Scores:
    """Named metrics of one model on one plan (see metrics.py for the exact definitions), and
    the families skipped with their reason. `probe=False` leaves the taggers out.
    `first_stage`: every search (neighbours, retrieval, pairs, robustness) ranked through it
    (`metrics.FirstStage`), each gallery's projection learnt from that gallery; the taggers
    search nothing and are unchanged."""
    d = plan.dataset
    ev = plan.eval_idx[feats.ok[plan.eval_idx]]
    x = l2_normalise(feats.all[ev])
    groups = [d.groups[i] for i in ev] if plan.use_groups else None
    # neighbours of every evaluated item among the usable photos (category not "Not sure"...)
    valid = np.asarray([d.labels[i] not in plan.ignore_labels for i in ev], dtype=bool)
    nn = neighbours(
        x, 10, groups=groups, valid=valid, queries=np.arange(len(ev)), first_stage=first_stage
    )
    run = _Run(plan, feats, ks, ev, x, groups, nn, first_stage)
    for spec in METRICS:
        if spec.name.endswith("_tagger") and not probe:
            continue
        why = _missing_label(run, spec)
        if why is not None:
            run.skipped[spec.name] = why
            continue
        try:
            _SCORERS[spec.name](run, spec)
        except _SkippedError as exc:
            run.skipped[spec.name] = str(exc)
    return Scores(run.out, nn, run.probe_true, run.probe_pred, run.skipped, run.examples)
