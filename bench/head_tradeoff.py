"""Issue 4 experiment: how the projection heads trade category precision for generalisation.

    .venv/bin/python bench/head_tradeoff.py '[{}, {"identity_weight": 30}, {"w_head": 0.25}]'
    .venv/bin/python bench/head_tradeoff.py '[{"whiten_shrink": 1.0, "w_white": 1.0,
        "w_backbone": 0, "w_head": 0.65, "w_colour": 0.35}]'
    .venv/bin/python bench/head_tradeoff.py --finetune-blocks 1 '[{"w_head": 0, "w_colour": 0.1}]'
    .venv/bin/python bench/head_tradeoff.py --finetune-blocks 4 --finetune-epochs 12 \
        '[{"w_head": 0, "w_backbone": 1, "w_imagenet": 0.5, "w_colour": 0.2}]'

Heads are trained on the train contributors minus a validation quarter of them (the held-out
half of the saved split is never touched), then scored on those validation contributors
(clothing P@10, synthetic pair top-1, pixel colour agreement) and on the product sample (never
trained on). Each JSON object is one variant: HeadConfig fields (identity_weight, epochs...),
Combine fields (w_head, w_backbone, w_colour, colour_power) and "losses". A "+" after a number:
at least the ImageNet baseline's. Needs the `train` extra and ../shared (or --clothing /
--products). Results of 2026-11-23: docs/development/notes/issue-4.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.config import Settings
from lookalike.encoders.efficientnet import load_torch_backbone
from lookalike.encoders.weights import pack_weights, unpack_weights
from lookalike.evaluation.datasets import (
    LabelledImages,
    load_clothing_dataset,
    load_product_sample,
)
from lookalike.evaluation.features import cached_features
from lookalike.evaluation.metrics import DEFAULT_IGNORE
from lookalike.evaluation.protocols import PlanFeatures, encode_plan, plan_evaluation
from lookalike.evaluation.report import default_split_path
from lookalike.evaluation.scoring import score_plan
from lookalike.evaluation.splits import GroupSplit, group_split, load_or_create_split
from lookalike.training.finetune import FinetuneConfig, top_state, train_top, trunk_encoder
from lookalike.training.head import HeadConfig, build_ensemble, train_head
from lookalike.training.pipeline import Combine, augmented_views, combine, pooled
from lookalike.training.probe import probe_encoder
from lookalike.training.whitening import Whitening, learn_whitening

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
COLUMNS = [
    ("clothing", "category/precision@10", "val P@10"),
    ("clothing", "synthetic_pairs/top1", "val synth"),
    ("clothing", "dominant_colour/top10_majority_agreement", "val colour"),
    ("products", "category/precision@10", "prod cat"),
    ("products", "colour/precision@10", "prod col"),
    ("products", "pattern/precision@10", "prod pat"),
    ("products", "synthetic_pairs/top1", "prod synth"),
    ("products", "colour/top10_majority_agreement", "prod c-agr"),
]
MIX_FIELDS = ("w_head", "w_backbone", "w_colour", "colour_power", "pooling", "whiten_shrink",
              "w_white", "w_imagenet")

Embed = Callable[[NDArray[np.float32]], NDArray[np.float32]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", help="JSON list of variants, e.g. '[{}, {\"w_head\": 0.25}]'")
    ap.add_argument("--clothing", type=Path, default=SHARED / "clothing-dataset")
    ap.add_argument("--products", type=Path, default=SHARED / "fashion-product-images-sample")
    ap.add_argument("--views", type=int, default=2, help="augmented views per training image")
    ap.add_argument("--finetune-blocks", type=int, default=0,
                    help="first fine-tune the backbone's last N blocks on the fit images; the "
                    "variants then run over that backbone (the baseline stays ImageNet's)")
    ap.add_argument("--finetune-epochs", type=int, default=6)
    ap.add_argument("--finetune-identity", type=float, default=0.1)
    ap.add_argument("--finetune-distill", type=float, default=0.1)
    args = ap.parse_args()
    settings = Settings()
    imagenet = enc = probe_encoder(settings)
    data = load_clothing_dataset(args.clothing)
    outer = load_or_create_split(
        default_split_path(settings, data.name, 0.5, 0, data.groups), data.groups, 0.5, 0
    )
    is_test = outer.test_mask(data.groups)
    train_groups = sorted({g for g, t in zip(data.groups, is_test, strict=True) if not t})
    val = GroupSplit(test_groups=group_split(train_groups, 0.25, seed=1).test_groups,
                     test_fraction=0.25, seed=1)
    is_val = val.test_mask(data.groups)
    fit_idx = np.flatnonzero(~is_val & ~is_test)
    t0 = time.time()
    rows, ok = cached_features(enc, data.paths, settings=settings)
    kept = np.flatnonzero(~is_test)  # the held-out half appears nowhere below
    trainval = LabelledImages(
        name=data.name + "-trainval", root=data.root, paths=[data.paths[i] for i in kept],
        labels=[data.labels[i] for i in kept], groups=[data.groups[i] for i in kept],
    )
    plans = {"clothing": plan_evaluation(trainval, val, seed=0)}
    plans["products"] = plan_evaluation(load_product_sample(args.products), None, seed=0,
                                        background_source=[data.paths[i] for i in fit_idx])
    fit_paths = [data.paths[i] for i in fit_idx]
    keep = np.asarray([ok[i] and data.labels[i] not in DEFAULT_IGNORE for i in fit_idx])
    classes = sorted({data.labels[i] for i in fit_idx[keep]})
    y = np.asarray([classes.index(data.labels[i]) for i in fit_idx[keep]], dtype=np.int64)
    base_feats = {k: encode_plan(imagenet, p, settings) for k, p in plans.items()}
    if args.finetune_blocks:
        cfg_ft = FinetuneConfig(blocks=args.finetune_blocks, epochs=args.finetune_epochs,
                                identity_weight=args.finetune_identity,
                                distill_weight=args.finetune_distill)
        trunk = trunk_encoder(cfg_ft.blocks, settings)
        maps = [cached_features(trunk, fit_paths, settings=settings)[0],
                *augmented_views(fit_paths, args.views, 0, settings, encoder=trunk)]
        top, _ = train_top(np.stack([m[keep] for m in maps]), y, cfg_ft,
                           load_torch_backbone("efficientnet-lite0"),
                           checkpoint=settings.cache_dir / "training"
                           / f"tradeoff-top-{cfg_ft.fingerprint()}.pt")
        del maps
        enc = probe_encoder(settings, unpack_weights(pack_weights(top_state(top))))
        rows = cached_features(enc, data.paths, settings=settings)[0]
        print(f"fine-tuned the last {cfg_ft.blocks} block(s): {cfg_ft}", flush=True)
    tuned_feats = {k: encode_plan(enc, p, settings) for k, p in plans.items()}
    width = next(iter(tuned_feats.values())).all.shape[1]
    # each row: the (fine-tuned) probe's row, then the ImageNet probe's row of the same image
    feats = {k: PlanFeatures(np.concatenate([f.all, base_feats[k].all], axis=1),
                             f.ok & base_feats[k].ok,
                             {n: np.concatenate([v, base_feats[k].views[n]], axis=1)
                              for n, v in f.views.items()})
             for k, f in tuned_feats.items()}
    views = [rows[fit_idx], *augmented_views(fit_paths, args.views, 0, settings, encoder=enc)]
    x = np.stack([pooled(v[keep], "gap") for v in views])
    print(f"features ready in {time.time() - t0:.0f} s: fit on {len(y)} images, validate on "
          f"{int(is_val.sum())} ({len(val.test_groups)} contributors)", flush=True)

    def scores(fn: Embed, of: dict[str, Any] = feats) -> list[float]:
        import torch

        with torch.no_grad():
            m = {k: score_plan(p, of[k].map(fn), probe=False).metrics
                 for k, p in plans.items()}
        return [m[ds][key] for ds, key, _ in COLUMNS]

    def show(name: str, vals: list[float], base: list[float]) -> None:
        cells = [f"{v:.3f}{'+' if v >= b - 1e-9 else '-'}" for v, b in zip(vals, base, strict=True)]
        print(f"{name:58s} {' '.join(cells)}", flush=True)

    print(f"{'variant':58s} {' '.join(f'{c:7s}' for _, _, c in COLUMNS)}")
    base = scores(lambda r: pooled(r, "gap"), base_feats)
    show("ImageNet lite0 GAP (baseline)", base, base)
    if args.finetune_blocks:
        show("fine-tuned GAP", scores(lambda r: pooled(r[:, :width], "gap")), base)
    heads: dict[str, Any] = {}
    for spec in json.loads(args.variants):
        losses = tuple(spec.pop("losses", ["triplet", "multi-similarity"]))
        mix = Combine(**{"w_head": 0.5, "w_backbone": 1.0, "w_colour": 0.2, "colour_power": 2.0,
                         **{k: spec.pop(k) for k in list(spec) if k in MIX_FIELDS}})
        cfg = HeadConfig(**{"identity_weight": 3.0, **spec})
        white = None if mix.whiten_shrink is None else learn_whitening(x, mix.whiten_shrink)
        key = json.dumps([losses, spec, mix.whiten_shrink])
        if key not in heads and mix.w_head == 0:  # no heads in the mix: none trained
            heads[key] = build_ensemble(cfg, losses).eval()
        if key not in heads:
            head = build_ensemble(cfg, losses)
            x_in = x if white is None else np.stack([white(v) for v in x])
            for k, loss in enumerate(losses):
                one = replace(cfg, loss=loss)
                ckpt = settings.cache_dir / "training" / f"tradeoff-{one.fingerprint()}.pt"
                trained, _ = train_head(x_in, y, one, checkpoint=ckpt)
                head.heads[k].load_state_dict(trained.state_dict())
            head.eval()
            heads[key] = head
        trained_head = heads[key]

        def embed(r: NDArray[np.float32], h: Any = trained_head, c: Combine = mix,
                  w: Whitening | None = white) -> Any:
            return combine(r[:, :width], h, c, w, r[:, width:])

        whitened = "" if white is None else f" whiten {mix.whiten_shrink} w {mix.w_white}"
        ref = f" imagenet {mix.w_imagenet}" if mix.w_imagenet else ""
        show(f"{'+'.join(losses)} id {cfg.identity_weight} head {mix.w_head} "
             f"bb {mix.w_backbone} colour {mix.w_colour}{whitened}{ref}", scores(embed), base)


if __name__ == "__main__":
    main()
