"""`lookalike project` as a library call: a compact version of a trained model.

1. Load the clothing-dataset and its saved contributor split (the one `train` and `evaluate`
   use).
2. Encode every photo with the trained model's full-width export (feature cache shared with
   `evaluate` and `bench/bench_quality.py`).
3. Learn a PCA-whitening projection (projection.py) from the train contributors' photos only.
4. Save the projection (`<name>.npz`, int8) and a model card (`<name>.json`) naming the base
   model: the compact model's ONNX graph is the base's graph + the projection, built on first
   use like every trained model (`encoders/trained.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.encoders.lookup import create
from lookalike.encoders.trained import base_folder, committed_paths
from lookalike.evaluation.datasets import load_clothing_dataset
from lookalike.evaluation.features import cached_features
from lookalike.evaluation.metrics import DEFAULT_IGNORE, retrieval_metrics
from lookalike.evaluation.report import default_split_path
from lookalike.evaluation.splits import load_or_create_split
from lookalike.training.projection import as_committed, learn_projection, pack_projection


@dataclass
class CompactResult:
    weights: Path
    card: Path
    metrics: dict[str, float] = field(default_factory=dict)


def compact_name(base: str, dim: int) -> str:
    return f"{base}-{dim}"


def compact_fashion(
    dataset_root: Path,
    weights_dir: Path,
    *,
    base: str = "lookalike-fashion",
    dim: int = 512,
    power: float = 0.1,
    shrink: float = 0.0,
    name: str | None = None,
    test_fraction: float = 0.5,
    seed: int = 0,
    settings: Settings | None = None,
    log: Callable[[str], None] = print,
) -> CompactResult:
    settings = settings or Settings()
    name = name or compact_name(base, dim)
    if name == base:
        raise ValueError(f"the compact model needs a name of its own, not {base!r}")
    base_weights, base_card_file = committed_paths(base, base_folder(base, weights_dir))
    base_card: dict[str, Any] = json.loads(base_card_file.read_text())
    if base_card.get("base"):
        raise ValueError(f"{base} is itself a compact model: project its base instead")
    data = load_clothing_dataset(dataset_root)
    split_file = default_split_path(settings, data.name, test_fraction, seed, data.groups)
    split = load_or_create_split(split_file, data.groups, test_fraction, seed)
    test = split.test_mask(data.groups)
    encoder = create(base, settings)  # the registered export of the committed base weights
    rows, ok = cached_features(encoder, data.paths, settings=settings)
    fit = np.flatnonzero(~test & ok)
    log(
        f"{base}: {encoder.dim}-d vectors of {len(data)} photos; projection to {dim} dims "
        f"learnt from the {len(fit)} photos of the {len(set(data.groups)) - len(split.test_groups)}"
        f" train contributors (power {power}, shrink {shrink})"
    )
    proj = as_committed(learn_projection(rows[fit], dim, power=power, shrink=shrink))
    ev = np.flatnonzero(test & ok)
    labels = [data.labels[i] for i in ev]
    groups = [data.groups[i] for i in ev]
    metrics = {
        f"heldout/compact/{k}": v
        for k, v in retrieval_metrics(proj(rows[ev]), labels, groups).items()
    }
    metrics.update(
        {f"heldout/full/{k}": v for k, v in retrieval_metrics(rows[ev], labels, groups).items()}
    )
    weights_dir.mkdir(parents=True, exist_ok=True)
    weights = weights_dir / f"{name}.npz"
    np.savez(weights, **pack_projection(proj))  # type: ignore[arg-type]
    card: dict[str, Any] = {
        "name": name,
        "dim": dim,
        "base": base,
        "preprocess": base_card["preprocess"],
        "description": (
            f"{base} ({encoder.dim}-d) projected to {dim} dims in its graph (PCA-whitening "
            f"learnt on the train contributors' photos): {base_card.get('description', '')}"
        ),
        "projection": {
            "method": "pca-whitening",
            "dim": dim,
            "power": power,
            "shrink": shrink,
            "in_dim": encoder.dim,
            "base_export_sha256": str(encoder.card.extra.get("sha256", "")),
            "base_weights": base_weights.name,
        },
        "data": {
            "dataset": data.name,
            "root": str(dataset_root),
            "images": len(data),
            "fit_images": len(fit),
            "ignored_labels_in_metrics": list(DEFAULT_IGNORE),
        },
        "split": {
            "column": "sender_id",
            "test_fraction": test_fraction,
            "seed": seed,
            "test_groups": sorted(split.test_groups),
        },
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reproduce": (
            f"lookalike project --dataset {dataset_root} --base {base} --dim {dim} "
            f"--power {power} --shrink {shrink} --name {name} --seed {seed}"
        ),
    }
    card_file = weights_dir / f"{name}.json"
    card_file.write_text(json.dumps(card, indent=1))
    return CompactResult(weights, card_file, metrics)
