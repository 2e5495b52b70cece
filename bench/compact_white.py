"""Catalogue-style views of the TRAIN contributors' photos, for the compact-projection search.

    nice -n 19 python bench/compact_white.py --clothing ../shared/datasets/clothing-dataset

The projection loses most on the product sample (catalogue shots on white), a domain the
clothing photos it is learnt from do not show. This script cuts the garment out of every train
contributor's photo (bench_quality's own `garment_mask` + `composite`) and pastes it on plain
white, then encodes the result with the full-width model through the feature cache. Those
vectors serve twice in `compact_learn.py`, split as `compact_views.validation_split` does:

- the fit photos' white versions widen what the projection is learnt from;
- the validation photos' white versions give a validation check for the catalogue domain
  (category precision@10 among the validation contributors' white versions), so a projection
  can be chosen for it without looking at the product sample.

Nothing of the held-out contributors or the product sample is read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from compact_views import validation_split
from lookalike import Settings, create
from lookalike.evaluation.augment import composite, garment_mask
from lookalike.evaluation.datasets import load_dataset
from lookalike.evaluation.features import cached_features

VARIANT = "compact:white-cutout:v1"
WHITE_BG = Image.new("RGB", (8, 8), (255, 255, 255))


def on_white(_i: int, img: Image.Image) -> Image.Image:
    """The garment (GrabCut mask, as bench_quality's background swap finds it) on white."""
    return composite(img, garment_mask(img), WHITE_BG)


def white_features(
    encoder_name: str, clothing: Path, settings: Settings, val_fraction: float = 0.4
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, ok) of the white versions of the train contributors' photos, in the order of
    `validation_split`'s train rows."""
    encoder = create(encoder_name, settings)
    data = load_dataset(clothing)
    _, sub, _, _, _ = validation_split(data, settings, val_fraction)
    return cached_features(encoder, sub.paths, variant=VARIANT, transform=on_white,
                           settings=settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clothing", type=Path, required=True)
    ap.add_argument("--full", default="lookalike-fashion")
    ap.add_argument("--val-fraction", type=float, default=0.4)
    ap.add_argument("--sample", type=Path, help="save a few white versions here to look at")
    args = ap.parse_args()
    settings = Settings()
    if args.sample is not None:
        data = load_dataset(args.clothing)
        _, sub, _, _, _ = validation_split(data, settings, args.val_fraction)
        args.sample.mkdir(parents=True, exist_ok=True)
        for i in range(0, len(sub), len(sub) // 6):
            with Image.open(sub.paths[i]) as im:
                on_white(i, im.convert("RGB")).save(args.sample / f"white-{i}.jpg")
        return
    t0 = time.monotonic()
    _, ok = white_features(args.full, args.clothing, settings, args.val_fraction)
    print(f"{int(ok.sum())} of {len(ok)} white versions encoded in "
          f"{time.monotonic() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
