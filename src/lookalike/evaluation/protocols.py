"""Evaluation protocols: what to encode (originals and transformed views).

`plan_evaluation` fixes every image and view of a run from the data set, the split and a seed;
`encode_plan` encodes them (through the feature cache); `scoring.score_plan` turns vectors into
named metrics. Keeping the three apart lets training score a candidate embedding on the very
same protocol without re-encoding anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lookalike.config import Settings
from lookalike.encoders.base import Encoder
from lookalike.errors import ImageLoadError
from lookalike.evaluation.augment import (
    AugmentConfig,
    augment_view,
    background_patch,
    composite,
    crop_zoom,
    garment_mask,
    on_white_background,
    rng_for,
)
from lookalike.evaluation.colour import dominant_colours
from lookalike.evaluation.datasets import LabelledImages
from lookalike.evaluation.features import ImageTransform, cached_features
from lookalike.evaluation.metrics import DEFAULT_IGNORE
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
    train_idx: NDArray[np.int64]  # rows a tagger may train on (empty: half of each label)
    views: list[ViewSet] = field(default_factory=list)
    seed: int = 0
    ignore_labels: tuple[str, ...] = DEFAULT_IGNORE
    use_groups: bool = True  # False: each item is its own group (only the query is left out)
    white_background: bool = False  # views cut garments out of white (catalogue shots)


def _backgrounds(paths: list[Path], n: int, seed: int) -> list[Image.Image]:
    """Corners of `n` seeded photos as backgrounds (photos that do not decode are left out;
    a plain grey patch if none does)."""
    rng = np.random.default_rng(seed + 1000)
    chosen = rng.choice(len(paths), size=min(n, len(paths)), replace=False)
    out = []
    for k, i in enumerate(sorted(chosen)):
        try:
            img = load_image(paths[int(i)], draft_size=(224, 224))
        except ImageLoadError:
            continue
        out.append(background_patch(img, k % 4))
    return out or [Image.new("RGB", (78, 78), (128, 128, 128))]


def plan_evaluation(
    dataset: LabelledImages,
    split: GroupSplit | None,
    *,
    seed: int = 0,
    n_pairs: int = 500,
    n_robust: int = 300,
    background_source: list[Path] | None = None,
) -> EvaluationPlan:
    """Fix every query of a run. With a split, evaluate the test groups and let the taggers
    train on the rest; without one, evaluate everything (the taggers then train on every other
    item of each label, see scoring.py)."""
    n = len(dataset)
    if "dominant_colour" not in dataset.columns:
        dataset.columns["dominant_colour"] = dominant_colours(dataset.paths)
    if split is not None:
        test = split.test_mask(dataset.groups)
        eval_idx, train_idx = np.flatnonzero(test), np.flatnonzero(~test)
    else:
        eval_idx, train_idx = np.arange(n), np.zeros(0, dtype=np.int64)
    white = dataset.white_background
    if white is None:
        white = on_white_background(dataset.paths)
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
        dataset,
        eval_idx,
        train_idx,
        views,
        seed,
        use_groups=dataset.group_column is not None,
        white_background=white,
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
