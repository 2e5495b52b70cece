"""Garment localisation inside the graph: activation-weighted pooling and garment colour.

The backbone's own last feature map says where the garment is: on photos of clothes on floors,
beds or shop backdrops the channel-summed activation is highest on the garment. We use it
(CroW-style spatial weighting, no extra model, nothing downloaded) to

* pool the feature map with those weights (`attention pooling`), and
* weight a soft 4x4x4 RGB colour histogram of the image, so colour comes from the garment
  region rather than the backdrop.

Everything here is torch (only for export/training); the exported ONNX graph serves.
"""

from __future__ import annotations

from typing import Any

from lookalike.encoders.efficientnet import backbone_top, backbone_trunk

COLOUR_BINS = 4  # per channel: 4^3 = 64 joint RGB bins
COLOUR_DIM = COLOUR_BINS**3
GRID = 7  # lite0 at 224 px → 7x7 feature map
CELL_PIXELS = 8  # colour is measured on a 56x56 (= 7 x 8) downsampled image


def _torch() -> Any:
    import torch

    return torch


def spatial_weights(fmap: Any, power: float = 1.0) -> Any:
    """(n, C, h, w) feature map → (n, 1, h, w) non-negative weights summing to 1 per image."""
    torch = _torch()
    s = torch.clamp(fmap, min=0.0).sum(dim=1, keepdim=True)
    if power != 1.0:
        s = s**power
    return s / (s.sum(dim=(2, 3), keepdim=True) + 1e-6)


def soft_colour_cells(
    images: Any, mean: tuple[float, ...], std: tuple[float, ...], size: int = GRID * CELL_PIXELS
) -> Any:
    """Normalised images (n, 3, S, S) → per-pixel soft joint RGB bins (n, 64, size, size);
    `size` must divide S (56 for lite0's 224 px and 7x7 map)."""
    torch = _torch()
    f = torch.nn.functional
    m = torch.tensor(mean, dtype=images.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=images.dtype).view(1, 3, 1, 1)
    rgb = torch.clamp(images * s + m, 0.0, 1.0)
    rgb = f.adaptive_avg_pool2d(rgb, size)
    centres = torch.linspace(0.0, 1.0, COLOUR_BINS, dtype=images.dtype).view(1, 1, -1, 1, 1)
    w = torch.clamp(1.0 - torch.abs(rgb.unsqueeze(2) - centres) * (COLOUR_BINS - 1), min=0.0)
    r, g, b = w[:, 0], w[:, 1], w[:, 2]  # (n, B, H, W)
    joint = r[:, :, None, None] * g[:, None, :, None] * b[:, None, None, :]
    n, _, _, _, hh, ww = joint.shape
    return joint.reshape(n, COLOUR_DIM, hh, ww)


def weighted_colour(cells: Any, weights: Any) -> Any:
    """Soft bins (n, 64, H, W) and feature-map weights (n, 1, h, w) → (n, 64) histogram,
    square-rooted (Hellinger) and L2-normalised."""
    torch = _torch()
    f = torch.nn.functional
    up = f.interpolate(weights, size=cells.shape[-2:], mode="nearest")
    hist = (cells * up).sum(dim=(2, 3))
    hist = hist / (hist.sum(dim=1, keepdim=True) + 1e-6)
    return f.normalize(torch.sqrt(hist + 1e-8), dim=1)


def probe_module(backbone: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """torch module for feature caching: images → one flat row per image holding
    [GAP features (1280) | attention-pooled features (1280) | weights (49) | colour cells (49x64)].
    Lets training try poolings and colour weightings in numpy without re-encoding."""
    import torch

    f = torch.nn.functional

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, x: Any) -> Any:
            fmap = self.backbone.extract_features(x)
            n = fmap.shape[0]
            gap = fmap.mean(dim=(2, 3))
            w = spatial_weights(fmap)
            attn = (fmap * w).sum(dim=(2, 3))
            cells = f.avg_pool2d(soft_colour_cells(x, mean, std), CELL_PIXELS)  # (n, 64, 7, 7)
            cells = cells.permute(0, 2, 3, 1).reshape(n, -1)
            return torch.cat([gap, attn, w.reshape(n, -1), cells], dim=1)

    return Probe().eval()


PROBE_LAYOUT = {
    "gap": (0, 1280),
    "attn": (1280, 2560),
    "weights": (2560, 2609),
    "cells": (2609, 2609 + 49 * COLOUR_DIM),
}
PROBE_DIM = 2609 + 49 * COLOUR_DIM


def fashion_module(
    backbone: Any,
    head: Any,
    spec: dict[str, Any],
    whitening: tuple[Any, Any] | None = None,
    reference: tuple[int, Any] | None = None,
) -> Any:
    """The whole trained encoder as one torch module, ready for ONNX export:

    image → lite0 feature map → pooled features b (GAP or activation-weighted), L2-normalised
          → x = whitened b, L2-normalised (`whitening` = (mean, projection); else x = b)
          → head(x) (trained projection, L2-normalised)
          + garment colour c (soft RGB histogram weighted by the activation map)
          + r = the untouched ImageNet top's GAP features, L2-normalised, when the backbone's
            top is fine-tuned (`reference` = (index of its first fine-tuned block, the
            ImageNet top from `training.finetune.top_module`); the trunk below is shared)
    embedding = [w_head · head(x) | w_backbone · b | w_white · x | w_imagenet · r | w_colour · c],
    parts with weight 0 left out (w_head 0: no heads), L2-normalised (the numpy reference is
    `training.pipeline.combine`).

    `spec` keys: pooling ("gap" | "attn"), w_head, w_backbone, w_colour, colour_power, mean, std
    and optionally w_white, w_imagenet (needs `reference`).
    """
    import torch

    f = torch.nn.functional
    mean = tuple(float(v) for v in spec["mean"])
    std = tuple(float(v) for v in spec["std"])
    w_backbone = float(spec["w_backbone"])
    w_white = float(spec.get("w_white", 0.0)) if whitening is not None else 0.0
    w_imagenet = float(spec.get("w_imagenet", 0.0))
    if w_imagenet > 0 and reference is None:
        raise ValueError("w_imagenet > 0 needs the ImageNet top (a fine-tuned backbone)")

    class Fashion(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = head
            self.reference = reference[1] if reference is not None and w_imagenet > 0 else None
            self.cut = reference[0] if reference is not None else 0
            if whitening is not None:
                self.register_buffer("w_mean", torch.as_tensor(whitening[0]).float())
                self.register_buffer("w_proj", torch.as_tensor(whitening[1]).float())

        def forward(self, x: Any) -> Any:
            r = None
            if self.reference is not None:  # one trunk, then both tops
                trunk = backbone_trunk(self.backbone, x, self.cut)
                r = f.normalize(self.reference(trunk), dim=1)
                fmap = backbone_top(self.backbone, trunk, self.cut)
            else:
                fmap = self.backbone.extract_features(x)
            if spec["pooling"] == "attn":
                pooled = (fmap * spatial_weights(fmap)).sum(dim=(2, 3))
            else:
                pooled = fmap.mean(dim=(2, 3))
            b = f.normalize(pooled, dim=1)
            if whitening is not None:
                w_mean: Any = self.w_mean
                w_proj: Any = self.w_proj
                w = f.normalize((b - w_mean) @ w_proj, dim=1)
            else:
                w = b
            parts = [float(spec["w_head"]) * self.head(w)] if float(spec["w_head"]) > 0 else []
            if w_backbone > 0:
                parts.append(w_backbone * b)
            if w_white > 0:
                parts.append(w_white * w)
            if r is not None:
                parts.append(w_imagenet * r)
            if float(spec["w_colour"]) > 0:
                size = int(fmap.shape[-1]) * CELL_PIXELS
                cells = soft_colour_cells(x, mean, std, size)
                w = spatial_weights(fmap, float(spec["colour_power"]))
                parts.append(float(spec["w_colour"]) * weighted_colour(cells, w))
            return f.normalize(torch.cat(parts, dim=1), dim=1)

    return Fashion().eval()
