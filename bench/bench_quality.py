"""Quality benchmark of issue 4: baseline vs trained encoder on both data sets, same run.

    python bench/bench_quality.py --clothing ../shared/datasets/clothing-dataset \
        --products ../shared/datasets/fashion-product-images-sample [--trained lookalike-fashion]

Prints every "what must hold" check with PASS/FAIL and writes bench-quality/{clothing,products}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from lookalike.evaluation.report import evaluate_models

CHECKS = [
    # (data set, metric, rule) — rule "ge": trained >= baseline; a number: trained >= number
    ("clothing", "category/precision@10", 0.70),
    ("clothing", "synthetic_pairs/top1", "ge"),
    ("clothing", "dominant_colour/top10_majority_agreement", "ge"),
    ("clothing", "background-swap/top1", "ge"),
    ("clothing", "crop-zoom-50/top1", "ge"),
    ("products", "category/precision@10", "ge"),
    ("products", "colour/precision@10", "ge"),
    ("products", "pattern/precision@10", "ge"),
    ("products", "synthetic_pairs/top1", "ge"),
    ("products", "colour/top10_majority_agreement", "ge"),
    ("products", "background-swap/top1", "ge"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clothing", type=Path, required=True)
    ap.add_argument("--products", type=Path, required=True)
    ap.add_argument("--baseline", default="efficientnet-lite0")
    ap.add_argument("--trained", default="lookalike-fashion")
    ap.add_argument("--out", type=Path, default=Path("bench-quality"))
    args = ap.parse_args()
    models = [args.baseline, args.trained]
    results = {}
    for key, root, bg in (
        ("clothing", args.clothing, None),
        ("products", args.products, args.clothing),
    ):
        t0 = time.monotonic()
        run = evaluate_models(root, models, args.out / key, backgrounds=bg)
        results[key] = run.metrics
        print(f"{key}: evaluated {len(models)} models in {time.monotonic() - t0:.0f} s")
    print(f"\nmachine: {platform.machine()} {os.cpu_count()} cores; {datetime.now(UTC).date()}\n")
    print(f"{'data set':9s} {'metric':44s} {'baseline':>9s} {'trained':>9s}  target")
    ok_all = True
    for ds, metric, rule in CHECKS:
        b = results[ds][args.baseline].get(metric)
        t = results[ds][args.trained].get(metric)
        if b is None or t is None:
            continue
        target = b if rule == "ge" else float(rule)
        ok = t >= target - 1e-9
        ok_all &= ok
        label = metric.replace("synthetic_pairs", "SYNTHETIC pairs")
        print(f"{ds:9s} {label:44s} {b:9.3f} {t:9.3f}  >= {target:.3f} {'PASS' if ok else 'FAIL'}")
    print("\nALL PASS" if ok_all else "\nSOME CHECKS FAIL")
    (args.out / "summary.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
