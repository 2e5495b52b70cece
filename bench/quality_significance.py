"""Are the product-sample differences of issue 4 real? Paired tests, trained vs baseline.

    python bench/quality_significance.py --clothing ../shared/datasets/clothing-dataset \
        --products ../shared/datasets/fashion-product-images-sample [--trained lookalike-fashion]

`bench_quality.py` says PASS or FAIL on the point estimates; this prints, for the same product
sample checks, the difference trained − baseline with a paired bootstrap 95 % interval (per
query for category / colour / pattern precision@10, per pair for synthetic top-1, where it
also prints the exact McNemar p-value). Uses the same plan and the feature cache of
`bench_quality.py` (run it first, or this encodes everything once).
"""

from __future__ import annotations

import argparse
from math import comb
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from lookalike import Settings, create
from lookalike.encoders.base import l2_normalise
from lookalike.evaluation.datasets import load_dataset, load_product_sample
from lookalike.evaluation.metrics import neighbours, retrieval_metrics
from lookalike.evaluation.protocols import (
    SYNTHETIC,
    EvaluationPlan,
    PlanFeatures,
    encode_plan,
    plan_evaluation,
)


def precision10(vectors: NDArray[np.float32], labels: list[str], groups: list[str]
                ) -> NDArray[np.float64]:
    """Per-query precision@10 of the label, as `retrieval_metrics` averages it (unlabelled
    items neither query nor count; queries without another item of their label left out)."""
    valid = np.asarray([lab != "" for lab in labels])
    codes = np.unique(labels, return_inverse=True)[1]
    nn = neighbours(vectors, 10, groups=groups, valid=valid)
    q = np.flatnonzero(valid)
    relevant = (nn >= 0) & (codes[np.maximum(nn, 0)] == codes[q][:, None])
    per_label = np.bincount(codes[q], minlength=codes.max() + 1)
    keep = per_label[codes[q]] > 1
    out = np.asarray(relevant[keep].mean(axis=1), dtype=np.float64)
    # the per-query values must average to what the library reports (else: another metric)
    reported = retrieval_metrics(vectors, labels, groups, ks=(10,), ignore_labels=("",))
    if abs(out.mean() - reported["precision@10"]) > 1e-9:
        raise AssertionError(f"per-query P@10 {out.mean()} != library's {reported['precision@10']}")
    return out


def synthetic_hits(plan: EvaluationPlan, feats: PlanFeatures) -> NDArray[np.bool_]:
    """Per pair: is view B the top-1 answer to view A (gallery as in `score_plan`)?"""
    ok, eval_idx = feats.ok, plan.eval_idx
    pos = {int(r): k for k, r in enumerate(np.flatnonzero(ok[eval_idx]))}
    view = next(v for v in plan.views if v.name == f"{SYNTHETIC}-view-a")
    targets = [pos[t] for t in view.targets if t in pos]
    keep = np.asarray([t in pos for t in view.targets])
    a = feats.views[f"{SYNTHETIC}-view-a"][keep]
    b = feats.views[f"{SYNTHETIC}-view-b"][keep]
    originals = feats.all[eval_idx[ok[eval_idx]]]
    others = np.setdiff1d(np.arange(len(originals)), targets)
    sims = l2_normalise(a) @ l2_normalise(np.concatenate([b, originals[others]])).T
    own = sims[np.arange(len(a)), np.arange(len(a))]
    return np.asarray((sims > own[:, None]).sum(axis=1) == 0)


def bootstrap(diff: NDArray[np.float64], rng: np.random.Generator, n: int = 10_000
              ) -> tuple[float, float]:
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(n)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clothing", type=Path, required=True, help="backgrounds of the views")
    ap.add_argument("--products", type=Path, required=True)
    ap.add_argument("--baseline", default="efficientnet-lite0")
    ap.add_argument("--trained", default="lookalike-fashion")
    args = ap.parse_args()
    settings = Settings()
    data = load_product_sample(args.products)
    plan = plan_evaluation(data, None, seed=0,
                           background_source=load_dataset(args.clothing).paths)
    feats = {m: encode_plan(create(m, Settings(model=m)), plan, settings)
             for m in (args.baseline, args.trained)}
    rng = np.random.default_rng(0)
    print(f"{'check':22s} {'baseline':>9s} {'trained':>9s} {'diff':>8s}  95% interval (paired)")
    for name, labels in (("category P@10", data.labels), ("colour P@10", data.columns["colour"]),
                         ("pattern P@10", data.columns["pattern"])):
        base, trained = (precision10(feats[m].all, labels, data.groups)
                         for m in (args.baseline, args.trained))
        lo, hi = bootstrap(trained - base, rng)
        diff = trained.mean() - base.mean()
        print(f"{name:22s} {base.mean():9.4f} {trained.mean():9.4f} {diff:+8.4f}  "
              f"[{lo:+.4f}, {hi:+.4f}]  ({len(base)} queries)")
    hb, ht = (synthetic_hits(plan, feats[m]) for m in (args.baseline, args.trained))
    lo, hi = bootstrap(ht.astype(np.float64) - hb, rng)
    only_t, only_b = int((ht & ~hb).sum()), int((hb & ~ht).sum())
    n = only_t + only_b
    p = min(1.0, 2 * sum(comb(n, i) for i in range(min(only_t, only_b) + 1)) / 2**n) if n else 1.0
    print(f"{'SYNTHETIC pairs top-1':22s} {hb.mean():9.4f} {ht.mean():9.4f} "
          f"{ht.mean() - hb.mean():+8.4f}  [{lo:+.4f}, {hi:+.4f}]  ({len(hb)} pairs; only "
          f"trained {only_t}, only baseline {only_b}, exact McNemar p = {p:.2f})")


if __name__ == "__main__":
    main()
