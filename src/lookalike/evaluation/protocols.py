"""Evaluation protocols: what to encode (originals and transformed views) and how to score it.

`plan_evaluation` fixes every image and view of a run from the data set, the split and a seed;
`encode_plan` encodes them (through the feature cache); `score_plan` turns vectors into named
metrics. Keeping the three apart lets training score a candidate embedding on the very same
protocol without re-encoding anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lookalike.config import Settings
from lookalike.encoders.base import Encoder
from lookalike.evaluation.augment import (
    AugmentConfig,
    augment_view,
    background_patch,
    composite,
    crop_zoom,
    garment_mask,
    rng_for,
)
from lookalike.evaluation.colour import dominant_colours
from lookalike.evaluation.datasets import LabelledImages
from lookalike.evaluation.features import ImageTransform, cached_features
from lookalike.evaluation.metrics import (
    DEFAULT_IGNORE,
    DEFAULT_KS,
    classification_f1,
    majority_agreement,
    neighbours,
    pair_topk_accuracy,
    retrieval_metrics,
)
from lookalike.evaluation.splits import GroupSplit
from lookalike.images import load_image

PRIMARY_METRIC = "category/precision@10"
SYNTHETIC = "synthetic"  # every synthetic-pair metric name carries this word


@dataclass
class ViewSet:
    """Transformed queries: `sources[i]` transformed by `transform(i, image)`; the right
    answer is gallery row `targets[i]` (an index into the evaluation images)."""

    name: str
    sources: list[Path]
    targets: list[int]
    transform: ImageTransform
    variant: str


@dataclass
class EvaluationPlan:
    dataset: LabelledImages
    eval_idx: NDArray[np.int64]  # rows of `dataset` evaluated (test split or all)
    train_idx: NDArray[np.int64]  # rows a probe may train on (empty: cross-validated)
    views: list[ViewSet] = field(default_factory=list)
    seed: int = 0
    ignore_labels: tuple[str, ...] = DEFAULT_IGNORE
    use_groups: bool = True


def _backgrounds(paths: list[Path], n: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed + 1000)
    chosen = rng.choice(len(paths), size=min(n, len(paths)), replace=False)
    return [
        background_patch(load_image(paths[int(i)], draft_size=(224, 224)), k % 4)
        for k, i in enumerate(sorted(chosen))
    ]


def plan_evaluation(
    dataset: LabelledImages,
    split: GroupSplit | None,
    *,
    seed: int = 0,
    n_pairs: int = 500,
    n_robust: int = 300,
    background_source: list[Path] | None = None,
) -> EvaluationPlan:
    """Fix every query of a run. With a split, evaluate the test groups and let probes train on
    the rest; without one, evaluate everything (probes are then cross-validated)."""
    n = len(dataset)
    if "dominant_colour" not in dataset.columns:
        dataset.columns["dominant_colour"] = dominant_colours(dataset.paths)
    if split is not None:
        test = split.test_mask(dataset.groups)
        eval_idx, train_idx = np.flatnonzero(test), np.flatnonzero(~test)
    else:
        eval_idx, train_idx = np.arange(n), np.zeros(0, dtype=np.int64)
    white = "product" in dataset.name
    bg_paths = background_source or [
        dataset.paths[i] for i in (train_idx if len(train_idx) else eval_idx)
    ]
    backgrounds = _backgrounds(bg_paths, 16, seed)
    rng = np.random.default_rng(seed)
    pairs = np.sort(rng.choice(len(eval_idx), size=min(n_pairs, len(eval_idx)), replace=False))
    robust = np.sort(rng.choice(len(eval_idx), size=min(n_robust, len(eval_idx)), replace=False))
    pair_paths = [dataset.paths[int(eval_idx[p])] for p in pairs]
    cfg = AugmentConfig()

    def view(which: int) -> ImageTransform:
        def t(i: int, img: Image.Image) -> Image.Image:
            return augment_view(
                img, rng_for(seed * 10 + which, i), backgrounds, cfg, white_background=white
            )

        return t

    n_bg = 3
    swap_src = [int(r) for r in robust for _ in range(n_bg)]

    def swap(i: int, img: Image.Image) -> Image.Image:
        bg = backgrounds[(i // n_bg * 7 + i % n_bg * 5) % len(backgrounds)]
        return composite(img, garment_mask(img, white_background=white), bg)

    def zoom(scale: float) -> ImageTransform:
        def t(i: int, img: Image.Image) -> Image.Image:
            return crop_zoom(img, rng_for(seed + 77, i), scale)

        return t

    bg_hash = hashlib.sha256("\n".join(map(str, bg_paths)).encode()).hexdigest()[:12]
    tag = f"{dataset.name}:v2:seed{seed}:n{len(eval_idx)}:bg{bg_hash}"
    views = [
        ViewSet(
            f"{SYNTHETIC}-view-a", pair_paths, [int(p) for p in pairs], view(1), f"{tag}:pairs-a"
        ),
        ViewSet(
            f"{SYNTHETIC}-view-b", pair_paths, [int(p) for p in pairs], view(2), f"{tag}:pairs-b"
        ),
        ViewSet(
            "background-swap",
            [dataset.paths[int(eval_idx[r])] for r in swap_src],
            swap_src,
            swap,
            f"{tag}:bgswap",
        ),
        ViewSet(
            "crop-zoom-50",
            [dataset.paths[int(eval_idx[r])] for r in robust],
            [int(r) for r in robust],
            zoom(0.5),
            f"{tag}:zoom50",
        ),
        ViewSet(
            "crop-zoom-25",
            [dataset.paths[int(eval_idx[r])] for r in robust],
            [int(r) for r in robust],
            zoom(0.25),
            f"{tag}:zoom25",
        ),
    ]
    return EvaluationPlan(
        dataset, eval_idx, train_idx, views, seed, use_groups="product" not in dataset.name
    )


@dataclass
class PlanFeatures:
    """Vectors of a plan: every dataset row (`all`), and each view set by name."""

    all: NDArray[np.float32]
    ok: NDArray[np.bool_]
    views: dict[str, NDArray[np.float32]]

    def map(self, fn: Callable[[NDArray[np.float32]], NDArray[np.float32]]) -> PlanFeatures:
        return PlanFeatures(fn(self.all), self.ok, {k: fn(v) for k, v in self.views.items()})


def encode_plan(
    encoder: Encoder, plan: EvaluationPlan, settings: Settings | None = None
) -> PlanFeatures:
    vecs, ok = cached_features(encoder, plan.dataset.paths, settings=settings)
    views = {
        v.name: cached_features(
            encoder, v.sources, variant=v.variant, transform=v.transform, settings=settings
        )[0]
        for v in plan.views
    }
    return PlanFeatures(vecs, ok, views)


def _probe_f1(
    x_train: NDArray[Any], y_train: list[str], x_test: NDArray[Any], y_test: list[str]
) -> tuple[dict[str, float], list[str]]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=300, C=1.0)
    clf.fit(x_train, y_train)
    pred = [str(p) for p in clf.predict(x_test)]
    return classification_f1(y_test, pred), pred


@dataclass
class Scores:
    metrics: dict[str, float]
    neighbours: NDArray[np.int64]  # top-10 of each eval row, as eval-row indices
    probe_true: list[str]
    probe_pred: list[str]


def score_plan(
    plan: EvaluationPlan, feats: PlanFeatures, ks: tuple[int, ...] = DEFAULT_KS, probe: bool = True
) -> Scores:
    """Named metrics of one model on one plan (see metrics.py for the exact definitions)."""
    from lookalike.encoders.base import l2_normalise

    d = plan.dataset
    ev = plan.eval_idx[feats.ok[plan.eval_idx]]
    x = l2_normalise(feats.all[ev])
    labels = [d.labels[i] for i in ev]
    groups = [d.groups[i] for i in ev] if plan.use_groups else None
    out: dict[str, float] = {}
    for key, val in retrieval_metrics(x, labels, groups, ks, plan.ignore_labels).items():
        out[f"category/{key}"] = val
    for col in ("colour", "pattern"):
        if col in d.columns:
            vals = [d.columns[col][i] for i in ev]
            for key, val in retrieval_metrics(
                x, vals, groups, ks, ("", *plan.ignore_labels)
            ).items():
                out[f"{col}/{key}"] = val
    valid = np.asarray([lab not in plan.ignore_labels for lab in labels])
    nn = neighbours(x, 10, groups=groups, valid=valid, queries=np.arange(len(ev)))
    if "colour" in d.columns:
        out["colour/top10_majority_agreement"] = majority_agreement(
            nn, range(len(ev)), [d.columns["colour"][i] for i in ev]
        )
    if "dominant_colour" in d.columns:  # pixel-based, model-independent (colour.py)
        out["dominant_colour/top10_majority_agreement"] = majority_agreement(
            nn, range(len(ev)), [d.columns["dominant_colour"][i] for i in ev]
        )
    # view sets: targets are positions in plan.eval_idx; map to positions in `ev`
    pos = {int(r): k for k, r in enumerate(np.flatnonzero(feats.ok[plan.eval_idx]))}
    by_name = {v.name: v for v in plan.views}
    if f"{SYNTHETIC}-view-a" in feats.views:
        a, b = feats.views[f"{SYNTHETIC}-view-a"], feats.views[f"{SYNTHETIC}-view-b"]
        tg = [pos[t] for t in by_name[f"{SYNTHETIC}-view-a"].targets if t in pos]
        keep = np.asarray([t in pos for t in by_name[f"{SYNTHETIC}-view-a"].targets])
        a, b = a[keep], b[keep]
        # gallery: view B of each pair, plus the originals of every other evaluated image
        others = np.setdiff1d(np.arange(len(ev)), tg)
        gallery = np.concatenate([b, x[others]])
        for key, val in pair_topk_accuracy(a, gallery, list(range(len(tg)))).items():
            out[f"{SYNTHETIC}_pairs/{key}"] = val
    for name in ("background-swap", "crop-zoom-50", "crop-zoom-25"):
        if name in feats.views:
            vs = by_name[name]
            keep = np.asarray([t in pos for t in vs.targets])
            q = feats.views[name][keep]
            tg = [pos[t] for t in vs.targets if t in pos]
            for key, val in pair_topk_accuracy(q, x, tg, (1, 10)).items():
                out[f"{name}/{key}"] = val
    probe_true: list[str] = []
    probe_pred: list[str] = []
    if probe:
        probe_true, probe_pred = _probe(plan, feats, out)
    return Scores(out, nn, probe_true, probe_pred)


def _probe(
    plan: EvaluationPlan, feats: PlanFeatures, out: dict[str, float]
) -> tuple[list[str], list[str]]:
    """Category tagger (logistic regression on the embedding): trained on the train split,
    scored on the test split; without a split, trained on even rows and scored on odd ones."""
    from lookalike.encoders.base import l2_normalise

    d = plan.dataset
    ign = set(plan.ignore_labels)
    if len(plan.train_idx):
        tr, te = plan.train_idx, plan.eval_idx
    else:
        tr, te = plan.eval_idx[0::2], plan.eval_idx[1::2]
    tr = np.asarray([i for i in tr if feats.ok[i] and d.labels[i] not in ign], dtype=np.int64)
    te = np.asarray([i for i in te if feats.ok[i] and d.labels[i] not in ign], dtype=np.int64)
    seen = {d.labels[i] for i in tr}
    te = np.asarray([i for i in te if d.labels[i] in seen], dtype=np.int64)
    if len(tr) < 10 or len(te) < 10:
        return [], []
    x = l2_normalise(feats.all)
    f1, pred = _probe_f1(x[tr], [d.labels[i] for i in tr], x[te], [d.labels[i] for i in te])
    out["category_tagger/micro_f1"] = f1["micro_f1"]
    out["category_tagger/macro_f1"] = f1["macro_f1"]
    if "colour" in d.columns:
        ctr = [i for i in tr if d.columns["colour"][i]]
        cte = [i for i in te if d.columns["colour"][i] in {d.columns["colour"][j] for j in ctr}]
        cf1, _ = _probe_f1(
            x[ctr],
            [d.columns["colour"][i] for i in ctr],
            x[cte],
            [d.columns["colour"][i] for i in cte],
        )
        out["colour_tagger/micro_f1"] = cf1["micro_f1"]
        out["colour_tagger/macro_f1"] = cf1["macro_f1"]
    return [d.labels[i] for i in te], pred
