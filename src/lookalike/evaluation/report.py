"""One evaluation run: models × one data set on one split → metrics JSON + PNG plots.

The run states what it evaluated (`EvaluatedPart`: which split, why, how many items), which
metrics it computed on how many examples, and which it skipped and why (`scoring.METRICS`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.config import Settings
from lookalike.encoders.lookup import create
from lookalike.errors import LookalikeError
from lookalike.evaluation import plots
from lookalike.evaluation.datasets import GROUP_COLUMNS, LabelledImages, load_dataset
from lookalike.evaluation.metrics import FirstStage
from lookalike.evaluation.protocols import (
    PRIMARY_METRIC,
    EvaluationPlan,
    encode_plan,
    plan_evaluation,
)
from lookalike.evaluation.scoring import Scores, score_plan
from lookalike.evaluation.splits import GroupSplit, groups_fingerprint, load_or_create_split

MIN_MAP_POINTS = 5  # a t-SNE map of fewer items shows nothing


@dataclass(frozen=True)
class EvaluatedPart:
    """Which items a run evaluated and why: held-out groups ("group") or the whole set."""

    kind: str  # "group" or "whole"
    reason: str
    column: str | None = None  # the group column split by
    split: GroupSplit | None = None
    file: Path | None = None
    items: int = 0  # items of the data set (with an image file)
    evaluated: int = 0  # items evaluated
    train: int = 0  # items the taggers train on (0: even/odd evaluated items)
    groups: int = 0
    evaluated_groups: int = 0

    def title(self) -> str:
        """Short: which part, how many items."""
        if self.kind == "group":
            return f"held-out {self.column} groups, {self.evaluated} of {self.items} items"
        return f"the whole set, {self.evaluated} items"

    def summary(self) -> str:
        if self.kind == "group":
            return (
                f"held-out {self.column} groups: {self.evaluated} of {self.items} items "
                f"({self.evaluated_groups} of {self.groups} groups); taggers trained on the "
                f"other {self.train}"
            )
        return (
            f"the whole set: {self.evaluated} items; taggers trained on every other item of "
            "each label, scored on the rest"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title(),
            "summary": self.summary(),
            "reason": self.reason,
            "column": self.column,
            "file": str(self.file) if self.file else None,
            "test_fraction": self.split.test_fraction if self.split else None,
            "seed": self.split.seed if self.split else None,
            "items": self.items,
            "evaluated_items": self.evaluated,
            "train_items": self.train,
            "groups": self.groups,
            "evaluated_groups": self.evaluated_groups,
        }


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
    part: EvaluatedPart | None = None
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> metric -> why
    examples: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> family -> n
    rejected: list[tuple[int, str]] = field(default_factory=list)  # metadata rows, reason
    plots_skipped: dict[str, str] = field(default_factory=dict)
    # model -> metrics with every search ranked through `first_stage` (evaluate_models)
    first_stage: dict[str, dict[str, float]] = field(default_factory=dict)

    def skipped_once(self) -> dict[str, str]:
        """Every skipped metric with its reason, each once across the models (a reason that
        differs between models is given per model)."""
        out: dict[str, str] = {}
        for model, reasons in self.skipped.items():
            for what, why in reasons.items():
                if what in out and out[what] != why:
                    out[f"{what} ({model})"] = why
                else:
                    out.setdefault(what, why)
        return out


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


def choose_part(
    data: LabelledImages,
    settings: Settings,
    split_file: Path | None = None,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> EvaluatedPart:
    """Split by the data set's group column (held-out groups are evaluated, the others train
    the taggers); without one, or with a single group, evaluate the whole set."""
    if not 0.0 < test_fraction < 1.0:
        raise LookalikeError(f"test fraction {test_fraction}: must be between 0 and 1")
    column = data.group_column
    n_groups = len(set(data.groups))
    if column is None or n_groups < 2:
        if split_file is not None:
            raise LookalikeError(
                f"{split_file}: a split holds out groups, but {data.name} has "
                + (
                    f"no group column ({', '.join(GROUP_COLUMNS)})"
                    if column is None
                    else f"a single {column} group"
                )
            )
        reason = (
            f"no group column ({', '.join(GROUP_COLUMNS)}) to split by: every item is its own "
            "group, so each query leaves out only itself"
            if column is None
            else f"{column} has a single group: nothing to hold out"
        )
        return EvaluatedPart("whole", reason, groups=n_groups)
    split_file = split_file or default_split_path(
        settings, data.name, test_fraction, seed, data.groups
    )
    split = load_or_create_split(split_file, data.groups, test_fraction, seed)
    reason = (
        f"split by {column}: a group's photos stay on one side, so no query meets photos of "
        "its own group and the taggers never train on them"
    )
    return EvaluatedPart(
        "group",
        reason,
        column,
        split,
        split_file,
        groups=n_groups,
        evaluated_groups=len(split.test_groups & set(data.groups)),
    )


def display_label(data: LabelledImages, rows: Sequence[int]) -> str:
    """The label plots colour and frame items by: category, else colour, else the colour
    named from the pixels."""
    for label in ("category", "colour"):
        values = data.values(label)
        if values is not None and any(values[i] for i in rows):
            return label
    return "dominant_colour"


def _plots(
    name: str,
    data: LabelledImages,
    plan: EvaluationPlan,
    feats_all: NDArray[np.float32],
    ok: NDArray[np.bool_],
    scores: Scores,
    out_dir: Path,
    seed: int,
    skipped: dict[str, str],
) -> list[Path]:
    safe = name.replace("/", "_").replace(".onnx", "")
    files: list[Path] = []
    ev_ok = plan.eval_idx[ok[plan.eval_idx]]
    label = display_label(data, [int(i) for i in ev_ok])
    values = data.values(label) or [""] * len(data)
    ev_paths = [data.paths[i] for i in ev_ok]
    ev_labs = [values[i] for i in ev_ok]
    if scores.probe_true:
        files.append(
            plots.confusion(
                scores.probe_true,
                scores.probe_pred,
                out_dir / f"confusion-{safe}.png",
                f"{name}: category tagger on held-out data",
            )
        )
    else:
        skipped[f"confusion-{safe}.png"] = "the category tagger was skipped"
    if len(ev_ok) >= MIN_MAP_POINTS:
        files.append(
            plots.embedding_map(
                feats_all[ev_ok],
                ev_labs,
                out_dir / f"map-{safe}.png",
                f"{name}: t-SNE of {data.name} (evaluated part), coloured by {label}",
            )
        )
    else:
        skipped[f"map-{safe}.png"] = f"{len(ev_ok)} items evaluated, a map needs {MIN_MAP_POINTS}"
    rng = np.random.default_rng(seed)
    dl = data.labels
    valid = [k for k, i in enumerate(ev_ok) if dl[i] not in plan.ignore_labels]
    if valid:
        queries = sorted(int(q) for q in rng.choice(valid, size=min(8, len(valid)), replace=False))
        own = "own group excluded" if plan.use_groups else "query excluded"
        files.append(
            plots.contact_sheet(
                ev_paths,
                ev_labs,
                queries,
                scores.neighbours[queries],
                out_dir / f"contacts-{safe}.png",
                f"{name} on {data.name}: query (blue) -> top 10, green = same {label}, {own}",
            )
        )
    else:
        skipped[f"contacts-{safe}.png"] = "no evaluated item can be a query"
    return files


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
    metadata: Path | None = None,
    columns: Mapping[str, str] | None = None,
    first_stage: FirstStage | None = None,
    first_stage_models: Collection[str] | None = None,
) -> EvaluationRun:
    """Evaluate every model on the same plan (same split, queries and views) and write
    `metrics.json` and PNG plots into `out_dir`. `metadata` and `columns` pick and rename the
    data set's metadata file as `load_dataset` does. `first_stage`: the models of
    `first_stage_models` (default: all) are also scored with every search ranked through it
    (`metrics.FirstStage`; taggers left out), same features, into `EvaluationRun.first_stage`
    and metrics.json's `first_stage`."""
    settings = settings or Settings()
    t0 = time.monotonic()
    data = load_dataset(dataset_root, metadata, columns)
    part = choose_part(data, settings, split_file, test_fraction, seed)
    bg_paths = None
    if backgrounds is not None:
        bg_paths = load_dataset(backgrounds).paths
    plan = plan_evaluation(data, part.split, seed=seed, background_source=bg_paths)
    part = replace(part, items=len(data), evaluated=len(plan.eval_idx), train=len(plan.train_idx))
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, dict[str, float]] = {}
    skipped: dict[str, dict[str, str]] = {}
    examples: dict[str, dict[str, int]] = {}
    cards: dict[str, dict[str, Any]] = {}
    files: list[Path] = []
    plots_skipped: dict[str, str] = {}
    staged: dict[str, dict[str, float]] = {}
    for name in models:
        enc = create(name, settings)
        cards[name] = enc.card.as_dict()
        feats = encode_plan(enc, plan, settings)
        scores = score_plan(plan, feats)
        metrics[name], skipped[name], examples[name] = (
            scores.metrics,
            scores.skipped,
            scores.examples,
        )
        if first_stage is not None and (first_stage_models is None or name in first_stage_models):
            staged[name] = score_plan(plan, feats, probe=False, first_stage=first_stage).metrics
        if plots_enabled:
            files += _plots(
                name, data, plan, feats.all, feats.ok, scores, out_dir, seed, plots_skipped
            )
    if plots_enabled:
        if any("/precision@" in k for m in metrics.values() for k in m):
            where = "held-out groups" if part.kind == "group" else "the whole set"
            files.insert(
                0,
                plots.precision_curves(
                    metrics, out_dir / "precision-at-k.png", f"{data.name}: retrieval on {where}"
                ),
            )
        else:
            plots_skipped["precision-at-k.png"] = "no retrieval metric was computed"
    run = EvaluationRun(
        data.name,
        models,
        metrics,
        cards,
        part.file,
        out_dir,
        time.monotonic() - t0,
        data.missing,
        files,
        part,
        skipped,
        examples,
        data.rejected,
        plots_skipped,
        staged,
    )
    extra: dict[str, Any] = {}
    if first_stage is not None:
        extra["first_stage"] = {
            "code_dim": first_stage.code_dim,
            "rescore": first_stage.rescore,
            "metrics": staged,
        }
    (out_dir / "metrics.json").write_text(
        json.dumps(
            {
                "dataset": data.name,
                "dataset_root": str(dataset_root),
                "metadata": str(data.metadata) if data.metadata else None,
                "labels": list(data.label_columns),
                "group_column": data.group_column,
                "white_background": plan.white_background,
                "split_file": str(part.file) if part.file else None,
                "split": part.as_dict(),
                "primary_metric": PRIMARY_METRIC,
                "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(run.seconds, 1),
                "missing_images": [{"row": r, "image": i} for r, i in data.missing],
                "rejected_rows": [{"row": r, "reason": why} for r, why in data.rejected],
                "note": "synthetic_pairs/* are SYNTHETIC pairs: two augmented views of one image",
                "metrics": metrics,
                "examples": examples,
                "skipped": skipped,
                "plots_skipped": plots_skipped,
                "model_cards": cards,
                **extra,
            },
            indent=2,
            default=str,
        )
    )
    return run
