"""`lookalike train` as a library call: cache features, train the head, save weights + card.

1. Load the clothing-dataset, split its contributors (saved split, the one `evaluate` uses).
2. Cache probe features (backbone GAP / activation-weighted pooling, garment weights, colour
   cells) of the train images and of `n_views` seeded augmented views of each.
   Optionally first fine-tune the backbone's last blocks + conv head (finetune.py) on cached
   trunk feature maps of the same images and views; the probe is then that fine-tuned
   backbone's, and everything below trains on its features.
3. Optionally learn a whitening of the backbone features from the augmented views
   (whitening.py); the head then trains on the whitened features.
4. Train the projection head (see head.py) on the train contributors only.
5. Save the head weights (`<name>.npz`, a fine-tuned top's under `backbone/`) and model card
   (`<name>.json`: data, split, loss, hyper-parameters, how the head is combined with backbone
   and colour, held-out metrics measured with the same combination in numpy, date) into the
   weights folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.config import Settings
from lookalike.encoders.base import Encoder, l2_normalise
from lookalike.encoders.efficientnet import load_torch_backbone, preprocess_for
from lookalike.encoders.weights import pack_weights, unpack_weights
from lookalike.errors import LookalikeError
from lookalike.evaluation.augment import AugmentConfig, augment_view, rng_for
from lookalike.evaluation.datasets import load_clothing_dataset
from lookalike.evaluation.features import cached_features
from lookalike.evaluation.metrics import DEFAULT_IGNORE, retrieval_metrics
from lookalike.evaluation.protocols import _backgrounds
from lookalike.evaluation.report import default_split_path
from lookalike.evaluation.splits import load_or_create_split
from lookalike.training.finetune import (
    TOP_PREFIX,
    FinetuneConfig,
    top_state,
    train_top,
    trunk_encoder,
)
from lookalike.training.head import LOSSES, HeadConfig, apply_head, build_ensemble, train_head
from lookalike.training.loop import EpochReport
from lookalike.training.probe import BACKBONE, part, probe_encoder
from lookalike.training.whitening import (
    Whitening,
    as_committed,
    learn_whitening,
    pack_whitening,
)


@dataclass(frozen=True)
class Combine:
    """How the final embedding is assembled (mirrors `salient.fashion_module`)."""

    pooling: str = "gap"
    w_head: float = 1.0
    w_backbone: float = 1.0
    w_colour: float = 0.5
    colour_power: float = 1.0
    whiten_shrink: float | None = None  # None: no whitening; else its shrinkage (whitening.py)
    w_white: float = 0.0  # weight of the whitened backbone features (needs whiten_shrink)
    # weight of the untouched ImageNet top's GAP features beside the fine-tuned backbone's
    # (needs fine-tuning; the trunk below the fine-tuned blocks is shared in the graph)
    w_imagenet: float = 0.0


@dataclass
class TrainResult:
    weights: Path
    card: Path
    history: list[float]
    metrics: dict[str, float] = field(default_factory=dict)


def pooled(rows: NDArray[np.float32], pooling: str) -> NDArray[np.float32]:
    return l2_normalise(part(rows, "gap" if pooling == "gap" else "attn"))


def colour_features(rows: NDArray[np.float32], power: float = 1.0) -> NDArray[np.float32]:
    """The graph's garment colour histogram, recomputed from cached colour cells + weights."""
    w = part(rows, "weights").astype(np.float64) ** power
    w = w / (w.sum(axis=1, keepdims=True) + 1e-6)
    cells = part(rows, "cells").reshape(len(rows), 49, -1).astype(np.float64)
    h = (cells * w[:, :, None]).sum(axis=1)
    h = h / (h.sum(axis=1, keepdims=True) + 1e-6)
    return l2_normalise(np.sqrt(h + 1e-8))


def combine(
    rows: NDArray[np.float32],
    head: Any,
    c: Combine,
    white: Whitening | None = None,
    imagenet: NDArray[np.float32] | None = None,
) -> NDArray[np.float32]:
    """The final embedding from probe rows, exactly as `salient.fashion_module` computes it:
    [w_head · head(x) | w_backbone · b | w_white · x | w_imagenet · r | w_colour · colour],
    parts with weight 0 left out (w_head 0: no heads), where b = pooled backbone features, x =
    whitened b (b without whitening) and r = pooled `imagenet`, the untouched ImageNet probe's
    rows of the same images (needed when w_imagenet > 0)."""
    b = pooled(rows, c.pooling)
    x = white(b) if white is not None else b
    parts = [c.w_head * apply_head(head, x)] if c.w_head > 0 else []
    if c.w_backbone > 0:
        parts.append(c.w_backbone * b)
    if c.w_white > 0 and white is not None:
        parts.append(c.w_white * x)
    if c.w_imagenet > 0:
        if imagenet is None:
            raise ValueError("w_imagenet > 0 needs the ImageNet probe rows")
        parts.append(c.w_imagenet * pooled(imagenet, "gap"))
    if c.w_colour > 0:
        parts.append(c.w_colour * colour_features(rows, c.colour_power))
    return l2_normalise(np.concatenate(parts, axis=1))


def augmented_views(
    paths: list[Path],
    n_views: int,
    seed: int,
    settings: Settings,
    encoder: Encoder | None = None,
) -> list[NDArray[np.float32]]:
    """Rows of `n_views` seeded augmented views of every image (cached), by `encoder`
    (default: the probe); the same seed gives the same views whatever the encoder."""
    enc = encoder if encoder is not None else probe_encoder(settings)
    bgs = _backgrounds(paths, 32, seed + 5)
    out = []
    for v in range(1, n_views + 1):

        def t(i: int, img: Any, v: int = v) -> Any:
            return augment_view(
                img, rng_for(seed + 100 + v, i), bgs, AugmentConfig(background_probability=0.3)
            )

        out.append(
            cached_features(enc, paths, variant=f"train-aug-v{v}", transform=t, settings=settings)[
                0
            ]
        )
    return out


#: The installed package, whose shipped weights (`data/models`) training never overwrites.
PACKAGE_DIR = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_target(
    name: str, weights_dir: Path, losses: tuple[str, ...], settings: Settings
) -> None:
    """Refuse, before any work, what `train_fashion` could not save or what would clash: a name
    that is no plain file name, a built-in encoder's name in the user models folder (where
    `--model NAME` would still find the built-in one), an output folder inside the installed
    package (the shipped model is read-only), an unknown loss."""
    from lookalike.encoders import available
    from lookalike.encoders.trained import user_models_dir

    if not _NAME.fullmatch(name) or name.endswith("-int8"):
        raise LookalikeError(
            f"model name {name!r}: use letters, digits, '.', '_' and '-' (at most 64, not "
            "ending in -int8, which names the model's int8 version)"
        )
    if weights_dir.resolve().is_relative_to(PACKAGE_DIR):
        raise LookalikeError(
            f"{weights_dir} is inside the installed lookalike package, whose shipped model is "
            "read-only; save elsewhere (by default the user models folder, where --model NAME "
            "finds it)"
        )
    if name in available() and weights_dir.resolve() == user_models_dir(settings).resolve():
        raise LookalikeError(
            f"model name {name!r} is a built-in encoder's, which --model {name} would keep "
            "finding; choose another --name"
        )
    unknown = [loss for loss in losses if loss not in LOSSES]
    if unknown:
        raise LookalikeError(f"unknown loss {unknown[0]!r}; choose from {', '.join(LOSSES)}")


def train_fashion(
    dataset_root: Path,
    weights_dir: Path,
    *,
    name: str = "my-fashion",
    head_cfg: HeadConfig = HeadConfig(),
    losses: tuple[str, ...] = ("triplet", "multi-similarity"),
    mix: Combine = Combine(),
    n_views: int = 2,
    test_fraction: float = 0.5,
    seed: int = 0,
    finetune: FinetuneConfig | None = None,
    settings: Settings | None = None,
    progress: Callable[[EpochReport], None] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    settings = settings or Settings()
    check_target(name, weights_dir, losses, settings)
    data = load_clothing_dataset(dataset_root)
    split_file = default_split_path(settings, data.name, test_fraction, seed, data.groups)
    split = load_or_create_split(split_file, data.groups, test_fraction, seed)
    test = split.test_mask(data.groups)
    ignored = set(DEFAULT_IGNORE)
    train_idx = np.flatnonzero(~test)
    log(
        f"{len(data)} images ({len(data.missing)} rows without a file skipped), "
        f"{len(split.test_groups)} of {len(set(data.groups))} contributors held out"
    )
    train_paths = [data.paths[i] for i in train_idx]
    base_rows, ok = cached_features(probe_encoder(settings), data.paths, settings=settings)
    keep = np.asarray([ok[i] and data.labels[i] not in ignored for i in train_idx])
    classes = sorted({data.labels[i] for i in train_idx[keep]})
    cls = {c: k for k, c in enumerate(classes)}
    y = np.asarray([cls[data.labels[i]] for i in train_idx[keep]], dtype=np.int64)
    tuned: dict[str, NDArray[np.float32]] | None = None
    used = finetune if finetune is not None and finetune.blocks > 0 else None
    if mix.w_imagenet > 0 and used is None:
        raise LookalikeError(
            "--w-imagenet needs fine-tuning (--finetune-blocks N); without it pass --w-imagenet 0"
        )
    top_history: list[float] = []
    if used is not None:
        trunk = trunk_encoder(used.blocks, settings)
        maps, maps_ok = cached_features(trunk, train_paths, settings=settings)
        if not np.array_equal(maps_ok, ok[train_idx]):
            raise LookalikeError("the trunk and the probe decoded different images")
        stack = np.stack([v[keep] for v in (maps, *augmented_views(
            train_paths, n_views, seed, settings, encoder=trunk))])
        log(f"fine-tuning the last {used.blocks} backbone block(s) + conv head on "
            f"{len(y)} images x {len(stack)} views")
        ckpt = settings.cache_dir / "training" / f"{name}-top-{used.fingerprint()}.pt"
        top, top_history = train_top(stack, y, used, load_torch_backbone(BACKBONE),
                                 checkpoint=ckpt, progress=progress)
        del stack, maps
        # committed as int8 like the heads: everything after this trains on what is committed
        tuned = unpack_weights(pack_weights(top_state(top)))
    enc = probe_encoder(settings, tuned)
    rows = base_rows if tuned is None else cached_features(enc, data.paths, settings=settings)[0]
    views = [rows[train_idx], *augmented_views(train_paths, n_views, seed, settings, encoder=enc)]
    x = np.stack([pooled(v[keep], mix.pooling) for v in views])
    white: Whitening | None = None
    if mix.whiten_shrink is not None:
        # committed as int8 like the head: train with what is committed
        white = as_committed(learn_whitening(x, mix.whiten_shrink))
        x = np.stack([white(v) for v in x])
        log(f"whitening learnt from {len(views)} views of {len(y)} images "
            f"(shrink {mix.whiten_shrink}); the head trains on whitened features")
    log(f"training on {len(y)} images x {len(views)} views, {len(classes)} labels")
    if mix.w_head <= 0:  # no heads: the (fine-tuned) backbone + colour is the model
        losses = ()
    head = build_ensemble(head_cfg, losses)
    history: list[float] = []
    for k, loss in enumerate(losses):
        cfg = replace(head_cfg, loss=loss)
        log(f"head {k + 1}/{len(losses)}: {loss} loss")
        ckpt = settings.cache_dir / "training" / f"{name}-{cfg.fingerprint()}.pt"
        trained, hist = train_head(x, y, cfg, checkpoint=ckpt, progress=progress)
        head.heads[k].load_state_dict(trained.state_dict())
        history.extend(hist)
    # weights are committed as int8 + row scales (pack_weights); measure what is committed
    import torch

    packed = pack_weights({k: v.detach().numpy() for k, v in head.state_dict().items()})
    head.load_state_dict({k: torch.from_numpy(v) for k, v in unpack_weights(packed).items()})
    head.eval()
    if white is not None:
        packed.update(pack_whitening(white))
    if tuned is not None:
        packed.update({TOP_PREFIX + k: v for k, v in pack_weights(tuned).items()})
    # held-out metrics with the very combination the ONNX graph computes
    ev = np.flatnonzero(test & ok)
    emb = combine(rows[ev], head, mix, white, base_rows[ev])
    base = l2_normalise(part(base_rows[ev], "gap"))  # the ImageNet backbone, never tuned
    labels = [data.labels[i] for i in ev]
    groups = [data.groups[i] for i in ev]
    metrics = {f"heldout/trained/{k}": v for k, v in retrieval_metrics(emb, labels, groups).items()}
    metrics.update(
        {f"heldout/baseline/{k}": v for k, v in retrieval_metrics(base, labels, groups).items()}
    )
    weights_dir.mkdir(parents=True, exist_ok=True)
    weights = weights_dir / f"{name}.npz"
    np.savez(weights, **packed)  # type: ignore[arg-type]
    dim = (
        head_cfg.out_dim * len(losses)
        + (head_cfg.in_dim if mix.w_backbone > 0 else 0)
        + (head_cfg.in_dim if white is not None and mix.w_white > 0 else 0)
        + (head_cfg.in_dim if mix.w_imagenet > 0 else 0)
        + (64 if mix.w_colour > 0 else 0)
    )
    pre = preprocess_for(BACKBONE)
    card: dict[str, Any] = {
        "name": name,
        "dim": dim,
        "preprocess": pre.as_dict(),
        "backbone": BACKBONE,
        "description": (
            f"{BACKBONE} ImageNet backbone"
            + (f" with its last {used.blocks} block(s) + conv head fine-tuned (labels, "
               "view identity, distilled pairwise similarities)" if used is not None else "")
            + (" features whitened (learnt from augmented views)" if white is not None else "")
            + (
                f" + metric-learning heads ({', '.join(losses)}, identity "
                f"{head_cfg.identity_weight}, distill {head_cfg.distill_weight})"
                if losses
                else ""
            )
            + "".join(
                f", with the {what}"
                for what, on in (
                    ("whitened features", white is not None and mix.w_white > 0),
                    ("backbone features", mix.w_backbone > 0),
                    ("untouched ImageNet top's features", mix.w_imagenet > 0),
                    ("garment colour histogram", mix.w_colour > 0),
                )
                if on
            )
        ),
        "head": asdict(head_cfg),
        "finetune": asdict(used) if used is not None else None,
        "head_losses": list(losses),
        "combine": {**asdict(mix), "mean": list(pre.mean), "std": list(pre.std)},
        "data": {
            "dataset": data.name,
            "root": str(dataset_root),
            "images": len(data),
            "train_images": len(y),
            "augmented_views_per_image": n_views,
            "ignored_labels": list(DEFAULT_IGNORE),
        },
        "split": {
            "column": "sender_id",
            "test_fraction": test_fraction,
            "seed": seed,
            "test_groups": sorted(split.test_groups),
        },
        "loss_history": [round(v, 5) for v in history],
        "finetune_loss_history": [round(v, 5) for v in top_history],
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reproduce": (
            f"lookalike train --dataset {dataset_root} "
            + " ".join(f"--loss {loss}" for loss in losses)
            + " "
            f"--epochs {head_cfg.epochs} --identity-weight {head_cfg.identity_weight} "
            f"--distill-weight {head_cfg.distill_weight} --hidden {head_cfg.hidden} "
            f"--out-dim {head_cfg.out_dim} --w-head {mix.w_head} --w-backbone {mix.w_backbone} "
            f"--w-colour {mix.w_colour} --colour-power {mix.colour_power} "
            f"--pooling {mix.pooling} --views {n_views} --seed {seed}"
            + (
                f" --whiten-shrink {mix.whiten_shrink} --w-white {mix.w_white}"
                if mix.whiten_shrink is not None
                else ""
            )
            + (
                f" --finetune-blocks {used.blocks} --finetune-epochs {used.epochs}"
                f" --finetune-identity {used.identity_weight}"
                f" --finetune-distill {used.distill_weight}"
                f" --w-imagenet {mix.w_imagenet}"
                if used is not None
                else ""
            )
        ),
    }
    card_file = weights_dir / f"{name}.json"
    card_file.write_text(json.dumps(card, indent=1))
    return TrainResult(weights, card_file, history, metrics)
