"""Trained encoders by name: committed weights + card, built into one ONNX model on first use.

`lookalike-fashion` = EfficientNet-Lite0 whose last blocks + conv head were fine-tuned on the
clothing-dataset's train contributors, beside the untouched ImageNet top, + garment colour, all
in one graph (see `salient.fashion_module`; the card says which parts and weights: heads and
whitening are also supported). The weights (a few MB, int8) and their model card live in
`lookalike/data/models/`; the first `create("lookalike-fashion")` exports the ONNX graph (needs
torch, the `export` extra) into the model cache and writes its card with the file's checksum;
later runs verify the checksum and only need ONNX Runtime. `lookalike-fashion-int8` (the
default encoder) is that export quantised with the backbones' int8 recipe (`quantized.py`).

`lookalike-fashion-512` is a compact model: its card names `lookalike-fashion` as its `base` and
its weights hold only a learnt projection (`training/projection.py`, made by `lookalike
project`), so its graph is the base's graph + a MatMul + L2 normalisation, 512-d vectors instead
of 2,624; `-int8` quantises it with the same recipe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.encoders.base import Encoder
from lookalike.encoders.onnx import (
    cached_onnx_factory,
    read_card,
    valid_cache,
    write_card,
)
from lookalike.encoders.registry import register
from lookalike.encoders.weights import unpack_weights
from lookalike.errors import LookalikeError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "data" / "models"
# the fine-tuned model, and its compact version (the same graph + a learned projection)
TRAINED = ("lookalike-fashion", "lookalike-fashion-512")


def weights_paths(name: str, weights_dir: Path = WEIGHTS_DIR) -> tuple[Path, Path]:
    """(head weights .npz, model card .json) of a trained encoder."""
    return weights_dir / f"{name}.npz", weights_dir / f"{name}.json"


def source_digest(weights: Path, card: Path) -> str:
    """What a cached export was built from: the weights and the card (which holds the graph's
    combination weights, so a card edited beside unchanged weights is a different model), and
    for a compact model (a card naming a `base`) the base's weights and card too."""
    h = hashlib.sha256(weights.read_bytes())
    h.update(b"\0card\0")
    text = card.read_bytes()
    h.update(text)
    base = base_of(text)
    if base is not None:
        if base == card.stem:
            raise LookalikeError(f"{card}: a compact model cannot be its own base")
        h.update(b"\0base\0")
        h.update(source_digest(*committed_paths(base, base_folder(base, card.parent))).encode())
    return h.hexdigest()


def base_of(card_text: bytes) -> str | None:
    """The `base` a compact model's card names (None for a model of its own)."""
    try:
        card = json.loads(card_text)
    except json.JSONDecodeError:
        return None
    base = card.get("base") if isinstance(card, dict) else None
    return str(base) if base else None


def base_folder(base: str, folder: Path) -> Path:
    """Where a compact model saved in `folder` finds its base: beside it, else the shipped
    models (a user's compact version of the shipped `lookalike-fashion`)."""
    return folder if weights_paths(base, folder)[0].is_file() else WEIGHTS_DIR


def build_torch_model(card: dict[str, Any], weights: Path) -> Any:
    """The full torch module (backbone + head + colour) described by `card`; for a compact
    model (`card["base"]`), the base model's module followed by the stored projection."""
    import torch

    if card.get("base"):
        from lookalike.training.projection import projected_module, unpack_projection

        base = str(card["base"])
        full, _ = trained_torch_model(base, base_folder(base, weights.parent))
        with np.load(weights) as data:
            proj = unpack_projection({k: np.array(data[k]) for k in data.files})
        if proj is None:
            raise LookalikeError(f"{weights}: a compact model's weights hold no projection")
        return projected_module(full, proj)

    from lookalike.encoders.efficientnet import load_torch_backbone
    from lookalike.encoders.salient import fashion_module
    from lookalike.training.head import HeadConfig, build_ensemble

    cfg = HeadConfig(**card["head"])
    head = build_ensemble(cfg, tuple(card.get("head_losses", [cfg.loss])))
    from lookalike.encoders.efficientnet import load_top
    from lookalike.training.finetune import TOP_PREFIX, top_module
    from lookalike.training.whitening import PREFIX, unpack_whitening

    with np.load(weights) as data:
        packed = {k: np.array(data[k]) for k in data.files}
    own = {k: v for k, v in packed.items() if not k.startswith((PREFIX, TOP_PREFIX))}
    head.load_state_dict({k: torch.from_numpy(v) for k, v in unpack_weights(own).items()})
    head.eval()
    white = unpack_whitening(packed)
    backbone = load_torch_backbone(str(card["backbone"]))
    tuned = {k[len(TOP_PREFIX):]: v for k, v in packed.items() if k.startswith(TOP_PREFIX)}
    reference = None
    if tuned:
        blocks = int(card["finetune"]["blocks"])
        if float(card["combine"].get("w_imagenet", 0.0)) > 0:  # the untouched top, beside
            imagenet = load_torch_backbone(str(card["backbone"]))
            reference = (
                len(imagenet._blocks) - blocks,
                top_module(imagenet, blocks, int(card["preprocess"]["image_size"])),
            )
        load_top(backbone, unpack_weights(tuned))
    return fashion_module(
        backbone,
        head,
        card["combine"],
        None if white is None else (white.mean, white.proj),
        reference,
    )


def committed_paths(name: str, weights_dir: Path = WEIGHTS_DIR) -> tuple[Path, Path]:
    """`weights_paths` of `name`, which must exist."""
    weights, card_file = weights_paths(name, weights_dir)
    if not weights.is_file() or not card_file.is_file():
        raise LookalikeError(f"{name}: no trained weights at {weights} (run `lookalike train`)")
    return weights, card_file


def trained_torch_model(name: str, weights_dir: Path = WEIGHTS_DIR) -> tuple[Any, dict[str, Any]]:
    """(eager torch module, card) of the trained encoder `name`, from its committed weights:
    what its ONNX export is made from (needs the `export` extra)."""
    weights, card_file = committed_paths(name, weights_dir)
    card: dict[str, Any] = json.loads(card_file.read_text())
    return build_torch_model(card, weights), card


def export_trained(name: str, target: Path, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Build `name` from its committed head weights into the ONNX file `target` + card."""
    from lookalike.encoders.efficientnet import export_onnx

    weights, card_file = weights_paths(name, weights_dir)
    module, card = trained_torch_model(name, weights_dir)
    export_onnx(module, int(card["preprocess"]["image_size"]), target)
    write_card(
        target,
        {
            **card,
            "source_sha256": source_digest(weights, card_file),
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return target


def committed_digest(name: str, weights_dir: Path = WEIGHTS_DIR) -> str:
    """`source_digest` of `name`'s committed weights + card (the key of its cached exports)."""
    return source_digest(*committed_paths(name, weights_dir))


def ensure_trained(name: str, settings: Settings, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Verified cached ONNX export of `name`, built from the committed weights if needed (or
    if the committed weights or card changed since the cached export)."""
    digest = committed_digest(name, weights_dir)
    target = settings.models_dir / f"{name}-{digest[:12]}.onnx"
    card = valid_cache(target)
    if card is not None and card.get("source_sha256") == digest:
        return target
    return export_trained(name, target, weights_dir)


def ensure_trained_int8(
    name: str, settings: Settings, weights_dir: Path = WEIGHTS_DIR
) -> Path:
    """`name` statically quantised to int8 with the backbones' recipe (`quantized.py`),
    calibrated on the same bundled photos; cached beside its fp32 export, which is only built
    (or verified) when the int8 file must be made."""
    from lookalike.encoders.quantized import RECIPE, SUFFIX, build_int8

    digest = committed_digest(name, weights_dir)
    target = settings.models_dir / f"{name}{SUFFIX}-{digest[:12]}.onnx"
    card = valid_cache(target)
    if card is not None and card.get("recipe") == RECIPE and card.get("source_sha256") == digest:
        return target
    source = ensure_trained(name, settings, weights_dir)
    description = str(read_card(source, verify=False).get("description", name))
    return build_int8(source, target, name + SUFFIX, f"{description}; int8 (static QDQ, {RECIPE})")


for _name in TRAINED:
    register(_name)(cached_onnx_factory(partial(ensure_trained, _name)))
    register(_name + "-int8")(cached_onnx_factory(partial(ensure_trained_int8, _name)))


# -- the user's own trained models ---------------------------------------------------------------


def user_models_dir(settings: Settings) -> Path:
    """Where `lookalike train` saves models (`<name>.npz` + `<name>.json`) and where
    `create(name)` finds them; the shipped weights (`WEIGHTS_DIR`) are never written."""
    return settings.models_dir / "trained"


def user_models(settings: Settings) -> list[str]:
    """Names of the models trained into `user_models_dir` (each also usable as `<name>-int8`)."""
    folder = user_models_dir(settings)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.npz") if p.with_suffix(".json").is_file())


def user_model_factory(name: str, settings: Settings) -> Callable[[Settings], Encoder] | None:
    """The factory of the user's trained model `name` (or `<name>-int8`), None if there is no
    such model."""
    base = name.removesuffix("-int8")
    if base not in user_models(settings):
        return None
    ensure = ensure_trained_int8 if base != name else ensure_trained
    return cached_onnx_factory(partial(ensure, base, weights_dir=user_models_dir(settings)))
