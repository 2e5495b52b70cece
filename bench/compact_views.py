"""Vectors the compact-projection search learns and selects on, from TRAIN contributors only.

    nice -n 19 python bench/compact_views.py --clothing ../shared/datasets/clothing-dataset

The clothing-dataset's saved contributor split (the one `train`, `evaluate`, `project` and
bench_quality use) holds out half the contributors for testing. This script splits the OTHER
half again by `sender_id` (never by image): `--val-fraction` of the train contributors are a
validation set, the rest are the fit set. It encodes with the full-width model, through the
feature cache:

- a validation plan: `plan_evaluation` on the train photos with the validation contributors as
  its "test" side (synthetic pairs, background swap, crop-zoom on validation photos; backgrounds
  from fit photos), scored with the very checks bench_quality uses;
- augmented views of fit photos made by the same functions (`augment_view`, `composite` with a
  garment mask, `crop_zoom`), for an augmentation-invariance term.

Nothing of the held-out contributors or the product sample is read. The arrays are saved to
`--out` (npz) for `bench/compact_learn.py`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from lookalike import Settings, create
from lookalike.evaluation.datasets import LabelledImages, load_dataset
from lookalike.evaluation.features import cached_features
from lookalike.evaluation.protocols import plan_evaluation
from lookalike.evaluation.report import choose_part
from lookalike.evaluation.splits import GroupSplit, group_split


def validation_split(
    data: LabelledImages, settings: Settings, fraction: float
) -> tuple[NDArray[np.intp], LabelledImages, GroupSplit, NDArray[np.bool_], list[str]]:
    """The train contributors' photos split again by `sender_id` (seed 1), the same in every
    script that reads the views file: (their rows in `data`, them, the split, which of them
    are validation photos, the fit photos' paths)."""
    part = choose_part(data, settings)
    assert part.split is not None
    train_rows = np.flatnonzero(~part.split.test_mask(data.groups))
    sub = data.subset([int(i) for i in train_rows])  # train contributors only
    val_split = group_split(sub.groups, fraction, seed=1, column="sender_id")
    is_val = val_split.test_mask(sub.groups)
    fit_paths = [sub.paths[i] for i in np.flatnonzero(~is_val)]
    return train_rows, sub, val_split, is_val, fit_paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clothing", type=Path, required=True)
    ap.add_argument("--full", default="lookalike-fashion")
    ap.add_argument("--val-fraction", type=float, default=0.4)
    ap.add_argument("--fit-views", type=int, default=800, help="fit photos given views")
    ap.add_argument("--out", type=Path, default=Path("bench-quality/compact-views.npz"))
    args = ap.parse_args()
    settings = Settings()
    encoder = create(args.full, settings)
    data = load_dataset(args.clothing)
    train_rows, sub, val_split, is_val, fit_paths = validation_split(
        data, settings, args.val_fraction)
    print(f"{len(sub)} train photos of {len(set(sub.groups))} contributors: "
          f"{int(is_val.sum())} validation ({len(val_split.test_groups)} contributors), "
          f"{int((~is_val).sum())} fit", flush=True)
    t0 = time.monotonic()
    plan = plan_evaluation(sub, val_split, seed=0, background_source=fit_paths)
    plan.views = [v for v in plan.views if v.name != "crop-zoom-25"]
    full, _ = cached_features(encoder, data.paths, settings=settings)  # cached by bench_quality
    for v in plan.views:
        cached_features(encoder, v.sources, variant=v.variant, transform=v.transform,
                        settings=settings)
        print(f"validation views {v.name}: {len(v.sources)}", flush=True)
    del full
    print(f"validation plan encoded in {time.monotonic() - t0:.0f} s", flush=True)
    # augmented views of fit photos: the validation-plan machinery run on the fit photos alone
    fit_sub = sub.subset([int(i) for i in np.flatnonzero(~is_val)])
    fit_plan = plan_evaluation(
        fit_sub, None, seed=5, n_pairs=args.fit_views, n_robust=args.fit_views // 2,
        background_source=fit_paths,
    )
    fit_views: dict[str, np.ndarray] = {}
    fit_targets: dict[str, np.ndarray] = {}
    for v in fit_plan.views:
        if v.name == "crop-zoom-25":
            continue
        t0 = time.monotonic()
        vec, _ok = cached_features(
            encoder, v.sources, variant=v.variant + ":fitviews", transform=v.transform,
            settings=settings,
        )
        fit_views[v.name] = vec
        fit_targets[v.name] = np.asarray(v.targets)
        print(f"fit views {v.name}: {len(v.sources)} in {time.monotonic() - t0:.0f} s",
              flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out,
        train_rows=train_rows,
        is_val=is_val,
        **{f"fitview/{k}": v for k, v in fit_views.items()},
        **{f"fittarget/{k}": v for k, v in fit_targets.items()},
    )
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
