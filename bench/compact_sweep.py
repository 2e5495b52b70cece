"""Which projection keeps every bench_quality check within 0.5 points (issue 18, compact vectors)?

    python bench/compact_sweep.py --clothing ../shared/datasets/clothing-dataset \
        --products ../shared/datasets/fashion-product-images-sample \
        --dim 384 --dim 512 --power 0 --power 0.1 --power 0.5 --shrink 0 --shrink 0.1

Encodes nothing new: the full-width model's vectors of every photo and view come from the feature
cache that `bench/bench_quality.py` fills (the first run of this script fills it otherwise), each
candidate projection (`learn_projection`, learnt from the clothing-dataset's train contributors'
photos only, int8-rounded as committed) is applied to them in numpy, and every check of
bench_quality is scored on the projected vectors beside the full-width ones. The shipped model's
graph computes the same projection, so its numbers match these up to float rounding; confirm a
choice with bench_quality on the real ONNX model.

This script reads the test sets: use it to look, not to choose. `compact_learn.py` (with
`compact_views.py`) chooses among projection families on validation contributors first.
"""

from __future__ import annotations

import argparse
import itertools
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench_quality import CHECKS
from lookalike import Settings, create
from lookalike.evaluation.datasets import load_dataset
from lookalike.evaluation.protocols import PlanFeatures, encode_plan, plan_evaluation
from lookalike.evaluation.report import choose_part
from lookalike.evaluation.scoring import score_plan
from lookalike.training.projection import as_committed, learn_projection


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clothing", type=Path, required=True)
    ap.add_argument("--products", type=Path, required=True)
    ap.add_argument("--full", default="lookalike-fashion")
    ap.add_argument("--dim", type=int, action="append", help="repeatable (default 512)")
    ap.add_argument("--power", type=float, action="append", help="repeatable (default 0.1)")
    ap.add_argument("--shrink", type=float, action="append", help="repeatable (default 0)")
    ap.add_argument("--tolerance", type=float, default=0.005)
    args = ap.parse_args()
    settings = Settings()
    encoder = create(args.full, settings)
    plans, feats = {}, {}
    for key, root, bg in (
        ("clothing", args.clothing, None),
        ("products", args.products, args.clothing),
    ):
        data = load_dataset(root)
        part = choose_part(data, settings)
        bg_paths = load_dataset(bg).paths if bg is not None else None
        plans[key] = plan_evaluation(data, part.split, seed=0, background_source=bg_paths)
        feats[key] = encode_plan(encoder, plans[key], settings)
        if key == "clothing":
            assert part.split is not None
            train = ~part.split.test_mask(data.groups) & feats[key].ok
            fit_rows = feats[key].all[train]

    def checks(f: dict[str, PlanFeatures]) -> list[float]:
        scored = {k: score_plan(plans[k], f[k], probe=False).metrics for k in plans}
        return [scored[ds].get(metric, float("nan")) for ds, metric, _ in CHECKS]

    full = checks(feats)
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')}  {platform.machine()}; "
          f"{args.full} ({encoder.dim}-d), projection fit on {len(fit_rows)} train photos")
    names = [f"{ds[:4]}:{m.split('/')[0][:8]}/{m.split('/')[1][:5]}" for ds, m, _ in CHECKS]
    print(f"{'dim':>4s} {'power':>5s} {'shrink':>6s} " + " ".join(f"{n:>19s}" for n in names)
          + "  worst   verdict")
    print(f"{'full':>4s} {'':>5s} {'':>6s} " + " ".join(f"{v:19.4f}" for v in full))
    for dim, power, shrink in itertools.product(
        args.dim or [512], args.power or [0.1], args.shrink or [0.0]
    ):
        proj = as_committed(learn_projection(fit_rows, dim, power=power, shrink=shrink))
        got = checks({k: f.map(proj) for k, f in feats.items()})
        diffs = [g - f for g, f in zip(got, full, strict=True)]
        worst = min(diffs)
        verdict = "PASS" if worst >= -args.tolerance - 1e-9 else "FAIL"
        print(f"{dim:4d} {power:5.2f} {shrink:6.2f} "
              + " ".join(f"{g:9.4f} ({d:+.4f})" for g, d in zip(got, diffs, strict=True))
              + f"  {worst:+.4f}  {verdict}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
