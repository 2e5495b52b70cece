"""Quality benchmark of issue 4: baseline vs trained encoders on both data sets, same run.

    python bench/bench_quality.py --clothing ../shared/datasets/clothing-dataset \
        --products ../shared/datasets/fashion-product-images-sample [--trained lookalike-fashion]

Prints every "what must hold" check with PASS/FAIL for each `--trained` model (repeatable) and
writes bench-quality/{clothing,products}. Issue 18's compact vectors: `--compact FULL=COMPACT`
(repeatable) also evaluates both and checks every check of COMPACT is within `--tolerance`
(0.005 = 0.5 points) of FULL, e.g.

    python bench/bench_quality.py --clothing ... --products ... \
        --compact lookalike-fashion=lookalike-fashion-512 \
        --compact lookalike-fashion-int8=lookalike-fashion-512-int8

`--first-stage 512 [--rescore 16]` measures the same rule for the embedded store's first stage
instead: each `--trained` model is also scored with every search ranked as a clustered catalog
wider than 512-d is searched (int8 codes of each row's projection onto the gallery's top 512
principal directions, the best `--rescore` rows by that score rescored at full width:
`lookalike.evaluation.metrics.FirstStage`), and every check through it must be within
`--tolerance` of the full-width ranking of the same vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from lookalike.evaluation.metrics import FirstStage
from lookalike.evaluation.report import evaluate_models

CHECKS: list[tuple[str, str, float | str]] = [
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
    ap.add_argument("--trained", action="append", help="repeatable (default: lookalike-fashion)")
    ap.add_argument(
        "--compact",
        action="append",
        default=[],
        metavar="FULL=COMPACT",
        help="also check COMPACT within --tolerance of FULL on every check",
    )
    ap.add_argument(
        "--first-stage",
        type=int,
        metavar="CODE_DIM",
        help="also rank every --trained model's searches through the store's first stage of "
        "this width and check each check within --tolerance of the full-width ranking",
    )
    ap.add_argument(
        "--rescore",
        type=int,
        default=16,
        help="rows the first stage rescores (default 16, the store's least for 10 results: "
        "Settings.index_rescore)",
    )
    ap.add_argument("--tolerance", type=float, default=0.005)
    ap.add_argument("--out", type=Path, default=Path("bench-quality"))
    args = ap.parse_args()
    pairs = [tuple(p.split("=", 1)) for p in args.compact]
    if any(len(p) != 2 for p in pairs):
        ap.error("--compact takes FULL=COMPACT")
    trained = args.trained or ([] if pairs else ["lookalike-fashion"])
    trained += [m for p in pairs for m in p if m not in trained]
    models = [args.baseline, *trained]
    stage = None if args.first_stage is None else FirstStage(args.first_stage, args.rescore)
    results = {}
    staged = {}
    for key, root, bg in (
        ("clothing", args.clothing, None),
        ("products", args.products, args.clothing),
    ):
        t0 = time.monotonic()
        run = evaluate_models(
            root,
            models,
            args.out / key,
            backgrounds=bg,
            first_stage=stage,
            first_stage_models=trained,
        )
        results[key] = run.metrics
        staged[key] = run.first_stage
        print(f"{key}: evaluated {len(models)} models in {time.monotonic() - t0:.0f} s")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\nmachine: {platform.machine()} {os.cpu_count()} cores; {now}; load {load}\n")
    ok_all = True
    for name in trained:
        print(f"{name} vs {args.baseline}")
        print(f"{'data set':9s} {'metric':44s} {'baseline':>9s} {'trained':>9s}  target")
        for ds, metric, rule in CHECKS:
            b = results[ds][args.baseline].get(metric)
            t = results[ds][name].get(metric)
            if b is None or t is None:
                continue
            target = b if rule == "ge" else float(rule)
            ok = t >= target - 1e-9
            ok_all &= ok
            label = metric.replace("synthetic_pairs", "SYNTHETIC pairs")
            print(
                f"{ds:9s} {label:44s} {b:9.4f} {t:9.4f}  >= {target:.4f} {'PASS' if ok else 'FAIL'}"
            )
        print()
    for full, compact in pairs:
        print(f"{compact} vs {full}: every check within {args.tolerance} of the full width")
        ok_all &= within(
            [(ds, m, results[ds][full].get(m), results[ds][compact].get(m)) for ds, m, _ in CHECKS],
            args.tolerance,
            "compact",
        )
    for name in trained if stage is not None else []:
        print(
            f"{name} through a {stage.code_dim}-d first stage rescoring {stage.rescore} rows vs "
            f"its full-width ranking: every check within {args.tolerance}"
        )
        ok_all &= within(
            [
                (ds, m, results[ds][name].get(m), staged[ds].get(name, {}).get(m))
                for ds, m, _ in CHECKS
            ],
            args.tolerance,
            "staged",
        )
    print("ALL PASS" if ok_all else "SOME CHECKS FAIL")
    summary = dict(results)
    if stage is not None:
        summary["first_stage"] = {
            "code_dim": stage.code_dim,
            "rescore": stage.rescore,
            "metrics": staged,
        }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


def within(
    rows: list[tuple[str, str, float | None, float | None]], tolerance: float, other: str
) -> bool:
    """Print each check's full-width value, the `other` one and their difference (rows where
    either is missing are left out); whether no other value is more than `tolerance` below."""
    print(f"{'data set':9s} {'metric':44s} {'full':>9s} {other:>9s} {'diff':>8s}")
    ok_all = True
    for ds, metric, f, c in rows:
        if f is None or c is None:
            continue
        ok = c >= f - tolerance - 1e-9
        ok_all &= ok
        label = metric.replace("synthetic_pairs", "SYNTHETIC pairs")
        print(f"{ds:9s} {label:44s} {f:9.4f} {c:9.4f} {c - f:+8.4f}  {'PASS' if ok else 'FAIL'}")
    print()
    return ok_all


if __name__ == "__main__":
    main()
