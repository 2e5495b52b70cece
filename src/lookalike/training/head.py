"""A projection head trained on cached backbone features with metric-learning losses.

Batches hold m items of each sampled category, each item seen in two random views (the
original photo or one of its cached augmented views). The loss adds up to three terms:

* category: semi-hard triplet (the original research) or a modern loss (multi-similarity or
  proxy-anchor, from pytorch-metric-learning), positives = same label;
* identity: multi-similarity with positives = two views of one image, so what makes a garment
  itself (colour, pattern, shape) is not collapsed into its label;
* distillation: mean squared difference between the head's and the backbone's pairwise cosine
  similarities in the batch, so the head keeps what the ImageNet features know.

Seeded, resumable (a checkpoint per epoch) and reports loss, epoch and ETA.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.training.loop import Checkpoint, EpochClock, EpochReport, data_fingerprint

LOSSES = ("triplet", "multi-similarity", "proxy-anchor")


@dataclass(frozen=True)
class HeadConfig:
    in_dim: int = 1280
    hidden: int = 1024
    out_dim: int = 256
    loss: str = "multi-similarity"
    identity_weight: float = 1.0
    distill_weight: float = 0.0
    epochs: int = 30
    batch_items: int = 128
    m_per_class: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def build_head(cfg: HeadConfig) -> Any:
    """(n, in_dim) L2-normalised features → (n, out_dim) L2-normalised embedding."""
    import torch

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if cfg.hidden:
                self.net: torch.nn.Module = torch.nn.Sequential(
                    torch.nn.Linear(cfg.in_dim, cfg.hidden),
                    torch.nn.ReLU(),
                    torch.nn.Linear(cfg.hidden, cfg.out_dim),
                )
            else:
                self.net = torch.nn.Linear(cfg.in_dim, cfg.out_dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(self.net(x), dim=1)

    return Head()


def _category_loss(cfg: HeadConfig, n_classes: int) -> tuple[Any, Any]:
    from pytorch_metric_learning import losses, miners

    if cfg.loss == "triplet":
        return losses.TripletMarginLoss(margin=0.2), miners.TripletMarginMiner(
            margin=0.2, type_of_triplets="semihard"
        )
    if cfg.loss == "multi-similarity":
        return losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5), miners.MultiSimilarityMiner(
            epsilon=0.1
        )
    if cfg.loss == "proxy-anchor":
        return losses.ProxyAnchorLoss(n_classes, cfg.out_dim, margin=0.1, alpha=32), None
    raise ValueError(f"unknown loss {cfg.loss!r}; choose one of {', '.join(LOSSES)}")


def _batches(
    labels: NDArray[np.int64], cfg: HeadConfig, rng: np.random.Generator
) -> list[NDArray[np.int64]]:
    """One epoch of m-per-class batches covering every item about once."""
    by_class = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
    by_class = [c for c in by_class if len(c)]
    n_batches = max(1, len(labels) // cfg.batch_items)
    per_batch = max(1, cfg.batch_items // cfg.m_per_class)
    out = []
    for _ in range(n_batches):
        classes = rng.choice(len(by_class), size=min(per_batch, len(by_class)), replace=False)
        items = [
            rng.choice(
                by_class[c], size=cfg.m_per_class, replace=len(by_class[c]) < cfg.m_per_class
            )
            for c in classes
        ]
        out.append(np.concatenate(items))
    return out


def train_head(
    views: NDArray[np.float32],
    labels: NDArray[np.int64],
    cfg: HeadConfig,
    *,
    checkpoint: Path | None = None,
    progress: Callable[[EpochReport], None] | None = None,
) -> tuple[Any, list[float]]:
    """Train on `views` (V, n, in_dim) L2-normalised features of n items in V views (view 0 =
    the original) with integer `labels` (n,). Returns the head (eval mode) and the mean loss of
    every epoch. With `checkpoint`, resumes from it when its config and training data match (a
    checkpoint of other features, e.g. another backbone's, is started over) and saves to it
    after every epoch."""
    import torch

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    head = build_head(cfg)
    n_classes = int(labels.max()) + 1
    cat_loss, cat_miner = _category_loss(cfg, n_classes)
    from pytorch_metric_learning import losses, miners

    id_loss = losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5)
    id_miner = miners.MultiSimilarityMiner(epsilon=0.1)
    params = list(head.parameters()) + list(cat_loss.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    ckpt = Checkpoint(
        checkpoint,
        {"fingerprint": cfg.fingerprint(), "data": data_fingerprint(views, labels)},
        {"head": head, "loss": cat_loss, "opt": opt, "sched": sched},
    )
    resumed = ckpt.resume(rng)
    rng, history, start_epoch = resumed.rng, resumed.history, resumed.epoch
    x_all = torch.from_numpy(np.ascontiguousarray(views, dtype=np.float32))
    lab_t = torch.from_numpy(labels.astype(np.int64))
    n_views = views.shape[0]
    clock = EpochClock(start_epoch, cfg.epochs)
    for epoch in range(start_epoch, cfg.epochs):
        head.train()
        clock.begin()
        total, count = 0.0, 0
        for items in _batches(labels, cfg, rng):
            va = rng.integers(0, n_views, len(items))
            vb = (va + rng.integers(1, n_views, len(items))) % n_views if n_views > 1 else va
            idx = torch.from_numpy(items)
            xa = x_all[torch.from_numpy(va), idx]
            xb = x_all[torch.from_numpy(vb), idx]
            x = torch.cat([xa, xb])
            y = torch.cat([lab_t[idx], lab_t[idx]])
            ids = torch.arange(len(items)).repeat(2)
            emb = head(x)
            loss = (
                cat_loss(emb, y, cat_miner(emb, y)) if cat_miner is not None else cat_loss(emb, y)
            )
            if cfg.identity_weight:
                loss = loss + cfg.identity_weight * id_loss(emb, ids, id_miner(emb, ids))
            if cfg.distill_weight:
                target = x @ x.T
                loss = loss + cfg.distill_weight * ((emb @ emb.T - target) ** 2).mean() * 100
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
            count += 1
        sched.step()
        history.append(total / max(count, 1))
        head.eval()
        ckpt.save(rng, history, epoch + 1)
        if progress is not None:
            progress(clock.report(epoch + 1, history[-1]))
    head.eval()
    return head, history


def apply_head(head: Any, x: NDArray[np.float32], batch: int = 4096) -> NDArray[np.float32]:
    import torch

    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            out.append(head(torch.from_numpy(np.ascontiguousarray(x[s : s + batch]))).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def build_ensemble(cfg: HeadConfig, losses: tuple[str, ...]) -> Any:
    """Heads of the same shape trained with different losses, outputs concatenated:
    (n, in_dim) → (n, out_dim · len(losses)), each part L2-normalised."""
    import torch

    class Ensemble(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = torch.nn.ModuleList(
                [build_head(replace(cfg, loss=loss)) for loss in losses]
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([h(x) for h in self.heads], dim=1)

    return Ensemble().eval()
