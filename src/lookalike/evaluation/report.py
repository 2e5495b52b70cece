"""One evaluation run: models × one data set on one saved split → metrics JSON + PNG plots."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.encoders.registry import create
from lookalike.evaluation import plots
from lookalike.evaluation.datasets import load_dataset
from lookalike.evaluation.protocols import (
    PRIMARY_METRIC,
    encode_plan,
    plan_evaluation,
    score_plan,
)
from lookalike.evaluation.splits import GroupSplit, groups_fingerprint, load_or_create_split


@dataclass
class EvaluationRun:
    dataset: str
    models: list[str]
    metrics: dict[str, dict[str, float]]
    cards: dict[str, dict[str, Any]]
    split_file: Path | None
    out_dir: Path
    seconds: float
    missing: list[tuple[int, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def default_split_path(
    settings: Settings, dataset_name: str, fraction: float, seed: int, groups: Sequence[str]
) -> Path:
    """Where the split of these groups is saved: named after the set of groups too, so a
    subset of a data set (same folder name, fewer contributors) gets its own split file."""
    return (
        settings.cache_dir
        / "splits"
        / f"{dataset_name}-{groups_fingerprint(groups)}-group-{fraction}-seed{seed}.json"
    )


def evaluate_models(
    dataset_root: Path,
    models: list[str],
    out_dir: Path,
    *,
    settings: Settings | None = None,
    split_file: Path | None = None,
    test_fraction: float = 0.5,
    seed: int = 0,
    backgrounds: Path | None = None,
    plots_enabled: bool = True,
) -> EvaluationRun:
    """Evaluate every model on the same plan (same split, queries and views) and write
    `metrics.json` and PNG plots into `out_dir`."""
    settings = settings or Settings()
    t0 = time.monotonic()
    data = load_dataset(dataset_root)
    split: GroupSplit | None = None
    if "product" not in data.name:  # product sample: never trained on, evaluated whole
        split_file = split_file or default_split_path(
            settings, data.name, test_fraction, seed, data.groups
        )
        split = load_or_create_split(split_file, data.groups, test_fraction, seed)
    bg_paths = None
    if backgrounds is not None:
        bg_paths = load_dataset(backgrounds).paths
    plan = plan_evaluation(data, split, seed=seed, background_source=bg_paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, dict[str, float]] = {}
    cards: dict[str, dict[str, Any]] = {}
    files: list[Path] = []
    ev_labels = [data.labels[i] for i in plan.eval_idx]
    for name in models:
        enc = create(name, settings)
        cards[name] = enc.card.as_dict()
        feats = encode_plan(enc, plan, settings)
        scores = score_plan(plan, feats)
        metrics[name] = scores.metrics
        if not plots_enabled:
            continue
        safe = name.replace("/", "_").replace(".onnx", "")
        ev_ok = plan.eval_idx[feats.ok[plan.eval_idx]]
        ev_paths = [data.paths[i] for i in ev_ok]
        ev_labs = [data.labels[i] for i in ev_ok]
        if scores.probe_true:
            files.append(
                plots.confusion(
                    scores.probe_true,
                    scores.probe_pred,
                    out_dir / f"confusion-{safe}.png",
                    f"{name}: category tagger on held-out data",
                )
            )
        files.append(
            plots.embedding_map(
                feats.all[ev_ok],
                ev_labs,
                out_dir / f"map-{safe}.png",
                f"{name}: t-SNE of {data.name} (eval part)",
            )
        )
        rng = np.random.default_rng(seed)
        valid = [k for k, lab in enumerate(ev_labs) if lab not in plan.ignore_labels]
        queries = sorted(int(q) for q in rng.choice(valid, size=min(8, len(valid)), replace=False))
        files.append(
            plots.contact_sheet(
                ev_paths,
                ev_labs,
                queries,
                scores.neighbours[queries],
                out_dir / f"contacts-{safe}.png",
                f"{name} on {data.name}: query (blue) -> top 10, green = same label, "
                "own contributor excluded",
            )
        )
    if plots_enabled:
        files.insert(
            0,
            plots.precision_curves(
                metrics,
                out_dir / "precision-at-k.png",
                f"{data.name}: retrieval on "
                + ("held-out groups" if split is not None else "the whole set (never trained on)"),
            ),
        )
    del ev_labels
    run = EvaluationRun(
        data.name,
        models,
        metrics,
        cards,
        split_file,
        out_dir,
        time.monotonic() - t0,
        data.missing,
        files,
    )
    (out_dir / "metrics.json").write_text(
        json.dumps(
            {
                "dataset": data.name,
                "dataset_root": str(dataset_root),
                "split_file": str(split_file) if split_file else None,
                "primary_metric": PRIMARY_METRIC,
                "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(run.seconds, 1),
                "missing_images": [{"row": r, "image": i} for r, i in data.missing],
                "note": "synthetic_pairs/* are SYNTHETIC pairs: two augmented views of one image",
                "metrics": metrics,
                "model_cards": cards,
            },
            indent=2,
            default=str,
        )
    )
    return run
