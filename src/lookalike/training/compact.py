"""`lookalike project` as a library call: a compact version of a trained model.

1. Load the clothing-dataset and its saved contributor split (the one `train` and `evaluate`
   use).
2. Encode every photo with the trained model's full-width export (feature cache shared with
   `evaluate` and `bench/bench_quality.py`).
3. Learn a PCA-whitening projection (projection.py) from the train contributors' photos only,
   plus, with `catalog`, the full-width vectors a catalog stores (no labels: the projection
   also sees the look of the shop's own photos, as FAISS trains its PCA on the vectors it
   indexes; measured in docs/guide/compact-vectors.md, "Fourth search").
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
from lookalike.encoders.registry import create
from lookalike.encoders.trained import base_folder, committed_paths
from lookalike.errors import LookalikeError
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


def catalog_vectors(
    catalog: Path, base: str, base_dim: int, settings: Settings
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The full-width vectors stored in the catalog folder `catalog`, which must hold vectors
    of `base` (or its int8 build): a compact catalog has lost what a projection is learnt
    from, and another model's vectors live in another space."""
    from lookalike.catalog.catalog import open_store

    store = open_store(settings.model_copy(update={"catalog_dir": catalog}), create=False)
    try:
        model, stored_dim = store.model_name, store.dim
        if model not in (base, f"{base}-int8") or stored_dim != base_dim:
            compact = stored_dim is not None and stored_dim < base_dim
            raise LookalikeError(
                f"{catalog} holds vectors of {model!r} ({stored_dim}-d)"
                + (", already compact" if compact else "")
                + f", not the full-width vectors of {base!r} ({base_dim}-d) that a projection "
                f"of {base} is learnt from; use a catalog ingested with "
                f"{base} (or {base}-int8), or `lookalike reembed --model {base}` first"
            )
        _, vectors = store.vectors()
    finally:
        store.close()
    if not len(vectors):
        raise LookalikeError(f"{catalog} holds no vectors to learn a projection from")
    return vectors


def compact_fashion(
    dataset_root: Path,
    weights_dir: Path,
    *,
    base: str = "lookalike-fashion",
    dim: int = 512,
    power: float = 0.1,
    shrink: float = 0.0,
    centred: bool = True,
    catalog: Path | None = None,
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
    # the catalog is checked before the data set is encoded
    stored = None if catalog is None else catalog_vectors(catalog, base, encoder.dim, settings)
    rows, ok = cached_features(encoder, data.paths, settings=settings)
    fit = np.flatnonzero(~test & ok)
    fit_rows = rows[fit]
    from_catalog = 0
    if stored is not None:
        from_catalog = len(stored)
        fit_rows = np.concatenate([fit_rows, stored])
    log(
        f"{base}: {encoder.dim}-d vectors of {len(data)} photos; projection to {dim} dims "
        f"learnt from the {len(fit)} photos of the {len(set(data.groups)) - len(split.test_groups)}"
        f" train contributors"
        + (f" and the {from_catalog} items of {catalog}" if catalog is not None else "")
        + f" ({'centred' if centred else 'uncentred'}, power {power}, shrink {shrink})"
    )
    proj = as_committed(
        learn_projection(fit_rows, dim, power=power, shrink=shrink, centred=centred)
    )
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
            f"learnt on the train contributors' photos"
            + (f" and the catalog {catalog.name}'s" if catalog is not None else "")
            + f"): {base_card.get('description', '')}"
        ),
        "projection": {
            "method": "pca-whitening",
            "dim": dim,
            "power": power,
            "shrink": shrink,
            "centred": centred,
            "in_dim": encoder.dim,
            "base_export_sha256": str(encoder.card.extra.get("sha256", "")),
            "base_weights": base_weights.name,
        },
        "data": {
            "dataset": data.name,
            "root": str(dataset_root),
            "images": len(data),
            "fit_images": len(fit),
            "catalog": str(catalog) if catalog is not None else None,
            "catalog_items": from_catalog,
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
            f"--power {power} --shrink {shrink}"
            + ("" if centred else " --no-centre")
            + (f" --catalog {catalog}" if catalog is not None else "")
            + f" --name {name} --seed {seed}"
        ),
    }
    card_file = weights_dir / f"{name}.json"
    card_file.write_text(json.dumps(card, indent=1))
    return CompactResult(weights, card_file, metrics)
