"""Fine-tuning the last blocks of the backbone on cached trunk feature maps.

The backbone is split in two: the trunk (stem + all but the last `blocks` MBConv blocks) stays
frozen and is run once per image and augmented view through ONNX Runtime (its feature maps are
cached like the probe's rows); the top (the last `blocks` blocks + the 1x1 conv head + its
batch-norm, then global average pooling) is trained in torch on those cached maps, so an epoch
over thousands of views takes seconds on a CPU instead of minutes.

The loss keeps what the ImageNet backbone knows while moving it toward the catalog's labels:

* multi-similarity on the labels (positives = same label);
* NT-Xent identity between two augmented views of one image (colour, pattern, shape of *this*
  garment stay apart from other garments of its label);
* relational distillation: the batch's pairwise cosine similarities stay close to those of the
  untouched ImageNet top (the teacher).

Batch-norm statistics stay the pretrained ones (batches of one label mix are not the data they
were estimated on). Measured on validation contributors (development notes of issue 4,
2026-12-03):
heads trained on the clothing-dataset's labels over frozen features traded the product
sample's category precision for clothing precision; the fine-tuned top lifts both.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.config import Settings
from lookalike.encoders.efficientnet import (
    backbone_trunk,
    export_onnx,
    load_torch_backbone,
    preprocess_for,
)
from lookalike.encoders.onnx import card_from_dict, read_card, valid_cache, write_card
from lookalike.training.loop import Checkpoint, EpochClock, EpochReport, data_fingerprint
from lookalike.training.probe import BACKBONE, RawOnnxEncoder

__all__ = [
    "FinetuneConfig",
    "top_module",
    "top_state",
    "train_top",
    "trunk_encoder",
    "trunk_module",
]

TOP_PREFIX = "backbone/"  # key prefix of the top's weights in a trained model's .npz


@dataclass(frozen=True)
class FinetuneConfig:
    blocks: int = 1  # last MBConv blocks trained (with the conv head); 0 = no fine-tuning
    epochs: int = 6
    lr: float = 1e-4
    weight_decay: float = 1e-4
    identity_weight: float = 0.1
    distill_weight: float = 0.1
    classes_per_batch: int = 16
    per_class: int = 8
    seed: int = 0

    def fingerprint(self) -> str:
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:16]


def _cut(backbone: Any, blocks: int) -> int:
    n = len(backbone._blocks)
    if not 1 <= blocks <= n:
        raise ValueError(f"blocks must be 1..{n}, not {blocks}")
    return n - blocks


def trunk_module(backbone: Any, blocks: int) -> Any:
    """images → the flattened feature map entering the last `blocks` blocks."""
    import torch

    cut = _cut(backbone, blocks)

    class Trunk(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, x: Any) -> Any:
            return backbone_trunk(self.backbone, x, cut).flatten(1)

    return Trunk().eval()


def top_module(backbone: Any, blocks: int, image_size: int) -> Any:
    """A trainable copy of the last `blocks` blocks + conv head: flattened trunk maps →
    (n, 1280) globally average-pooled features (unnormalised, like the backbone's GAP)."""
    import torch

    cut = _cut(backbone, blocks)
    with torch.no_grad():
        x = backbone_trunk(backbone, torch.zeros(1, 3, image_size, image_size), cut)
    shape = tuple(int(s) for s in x.shape[1:])

    class Top(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleList(copy.deepcopy(list(backbone._blocks[cut:])))
            self.conv_head = copy.deepcopy(backbone._conv_head)
            self.bn1 = copy.deepcopy(backbone._bn1)
            self.act = copy.deepcopy(backbone._swish)
            self.shape = shape
            self.first = cut  # the backbone's index of the first block here

        def forward(self, x: Any) -> Any:
            x = x.reshape(-1, *self.shape)
            for block in self.blocks:
                x = block(x)
            return self.act(self.bn1(self.conv_head(x))).mean(dim=(2, 3))

    return Top().eval()


def top_state(top: Any) -> dict[str, NDArray[np.float32]]:
    """The top's weights and batch-norm statistics under the backbone's own names
    (`_blocks.15....`, `_conv_head.weight`, `_bn1....`), ready for `load_top`."""
    out: dict[str, NDArray[np.float32]] = {}
    for key, value in top.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        part, rest = key.split(".", 1)
        if part == "blocks":
            i, rest = rest.split(".", 1)
            name = f"_blocks.{top.first + int(i)}.{rest}"
        else:
            name = {"conv_head": "_conv_head", "bn1": "_bn1"}[part] + "." + rest
        out[name] = value.detach().numpy().astype(np.float32)
    return out


def trunk_encoder(blocks: int, settings: Settings) -> RawOnnxEncoder:
    """The frozen trunk as a cached ONNX model (rows = flattened feature maps)."""
    from lookalike.encoders.efficientnet import ensure_backbone

    backbone_card = read_card(ensure_backbone(BACKBONE, settings), verify=False)
    name = f"lite0-trunk-{blocks}"
    path = settings.models_dir / f"{name}-{str(backbone_card['sha256'])[:12]}.onnx"
    if valid_cache(path) is None:
        pre = preprocess_for(BACKBONE)
        module = trunk_module(load_torch_backbone(BACKBONE), blocks)
        import torch

        with torch.no_grad():
            dim = int(module(torch.zeros(1, 3, pre.image_size, pre.image_size)).shape[1])
        export_onnx(module, pre.image_size, path)
        write_card(path, {
            "name": name,
            "dim": dim,
            "preprocess": pre.as_dict(),
            "description": f"{BACKBONE} without its last {blocks} block(s): feature maps",
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        })
    return RawOnnxEncoder(path, card_from_dict(read_card(path)), settings.intra_op_threads)


def train_top(
    views: NDArray[np.float32],
    labels: NDArray[np.int64],
    cfg: FinetuneConfig,
    backbone: Any,
    *,
    checkpoint: Path | None = None,
    progress: Callable[[EpochReport], None] | None = None,
) -> tuple[Any, list[float]]:
    """Train the top on cached trunk maps `views` (V, n, D) of n images in V views (view 0 =
    the original) with integer `labels` (n,). Seeded; with `checkpoint`, saved after every
    epoch and resumed when its config and data match. Returns the top (eval mode) and the
    mean loss of every epoch."""
    import torch
    from pytorch_metric_learning import losses

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    image_size = preprocess_for(BACKBONE).image_size
    top = top_module(backbone, cfg.blocks, image_size)
    teacher = copy.deepcopy(top).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    ms_loss = losses.MultiSimilarityLoss()
    id_loss = losses.NTXentLoss(temperature=0.1)
    opt = torch.optim.AdamW(top.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = Checkpoint(
        checkpoint,
        {"fingerprint": cfg.fingerprint(), "data": data_fingerprint(views, labels)},
        {"top": top, "opt": opt},
    )
    resumed = ckpt.resume(rng)
    rng, history, start_epoch = resumed.rng, resumed.history, resumed.epoch
    x_all = torch.from_numpy(np.ascontiguousarray(views, dtype=np.float32))
    n_views = views.shape[0]
    by_class = [np.flatnonzero(labels == k) for k in range(int(labels.max()) + 1)]
    by_class = [members for members in by_class if len(members)]
    n_classes = min(cfg.classes_per_batch, len(by_class))
    steps = max(1, len(labels) // (cfg.per_class * n_classes))
    clock = EpochClock(start_epoch, cfg.epochs)
    for epoch in range(start_epoch, cfg.epochs):
        top.train()
        for m in top.modules():  # batch-norm statistics stay the pretrained ones
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        clock.begin()
        total = 0.0
        for _ in range(steps):
            chosen = rng.choice(len(by_class), n_classes, replace=False)
            items = np.concatenate([
                rng.choice(by_class[k], cfg.per_class, replace=len(by_class[k]) < cfg.per_class)
                for k in chosen
            ])
            va = rng.integers(0, n_views, len(items))
            vb = (va + rng.integers(1, n_views, len(items))) % n_views if n_views > 1 else va
            idx = torch.from_numpy(items)
            x = torch.cat([x_all[torch.from_numpy(va), idx], x_all[torch.from_numpy(vb), idx]])
            emb = torch.nn.functional.normalize(top(x), dim=1)
            y = torch.from_numpy(np.concatenate([labels[items], labels[items]]))
            loss = ms_loss(emb, y)
            if cfg.identity_weight:
                ids = torch.arange(len(items)).repeat(2)
                loss = loss + cfg.identity_weight * id_loss(emb, ids)
            if cfg.distill_weight:
                with torch.no_grad():
                    target = torch.nn.functional.normalize(teacher(x), dim=1)
                loss = loss + cfg.distill_weight * 10 * (
                    (emb @ emb.T - target @ target.T) ** 2
                ).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        history.append(total / steps)
        top.eval()
        ckpt.save(rng, history, epoch + 1)
        if progress is not None:
            progress(clock.report(epoch + 1, history[-1]))
    top.eval()
    return top, history
