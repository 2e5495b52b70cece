"""Garment colour from pixels: background suppressed, named the way shoppers name colours.

1. The photo is shrunk to at most 40 px a side and converted to CIE Lab.
2. Background: the colours of the image border are clustered; pixels close to a frequent border
   colour *and connected to the border* are background (a white shirt's inside is kept unless
   it touches a white backdrop). Skin-like pixels are down-weighted, the centre is favoured.
3. Every garment pixel is softly assigned to named colours (several Lab prototypes per name);
   the weighted shares form a palette histogram over `COLOUR_NAMES`.

The palette is stored on the item as the predicted tag ``palette`` (``"blue:0.62,white:0.30"``,
readable and filterable) next to ``colour`` (the dominant name, confidence = its share). The
colour-weight control compares palettes (histogram intersection).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lookalike.catalog.schema import Tag

__all__ = [
    "COLOUR_NAMES",
    "ColourTagger",
    "colour_palette",
    "colour_similarity",
    "format_palette",
    "garment_weights",
    "parse_palette",
    "parse_palettes",
]

#: Shopper colour names, each with one or more sRGB prototypes.
_PROTOTYPES: dict[str, list[tuple[int, int, int]]] = {
    "black": [(18, 18, 18), (40, 40, 45)],
    "grey": [(85, 85, 85), (120, 120, 120), (150, 150, 152)],
    "white": [(245, 245, 245), (222, 222, 218), (196, 196, 194)],
    "beige": [(225, 205, 170), (200, 180, 145), (235, 225, 200)],
    "brown": [(110, 70, 40), (75, 50, 35), (150, 100, 60)],
    "red": [(200, 25, 35), (150, 20, 30), (225, 60, 60)],
    "pink": [(240, 150, 180), (230, 100, 150), (245, 195, 205)],
    "orange": [(240, 130, 30), (220, 100, 40)],
    "yellow": [(240, 215, 50), (230, 200, 100)],
    "green": [(50, 140, 60), (100, 110, 50), (120, 190, 120), (30, 80, 50)],
    "blue": [(40, 90, 200), (90, 140, 200), (150, 185, 225), (60, 90, 140)],
    "navy": [(25, 35, 80), (35, 45, 65)],
    "purple": [(120, 50, 150), (170, 120, 190), (90, 40, 90)],
}
COLOUR_NAMES: tuple[str, ...] = tuple(_PROTOTYPES)
_SIDE = 40
_SOFTNESS = 6.0  # ΔE: how softly a pixel spreads over nearby colour names
BG_TOL_MIN, BG_TOL_MAX = 4.0, 16.0  # ΔE tolerance around backdrop colours
CHROMA_STRETCH = 3.0  # a, b scaled by this when naming: greys must be truly grey


def _lab(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """sRGB uint8 (..., 3) → CIE Lab float (L 0..100)."""
    flat = rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0
    lab = np.asarray(cv2.cvtColor(flat, cv2.COLOR_RGB2Lab), dtype=np.float32)
    return lab.reshape(*rgb.shape)


_PROTO_RGB = np.asarray([c for cs in _PROTOTYPES.values() for c in cs], dtype=np.uint8)
_PROTO_LAB = _lab(_PROTO_RGB)
_PROTO_NAME = np.asarray(
    [i for i, cs in enumerate(_PROTOTYPES.values()) for _ in cs], dtype=np.intp
)
# where each name's prototypes start (they are contiguous, names in order)
_NAME_START = np.flatnonzero(np.diff(_PROTO_NAME, prepend=-1))


def _sq_dist(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """Squared Euclidean distances between rows of a (n, 3) and b (m, 3)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    out: NDArray[np.float32] = np.maximum(d, 0.0)
    return out


def _small_rgb(img: Image.Image) -> NDArray[np.uint8]:
    if img.mode != "RGB":  # convert() copies even an RGB image
        img = img.convert("RGB")
    w, h = img.size
    factor = max(w, h) // (2 * _SIDE)
    if factor > 1:  # cheap box reduction first, then a small exact resize
        img = img.reduce(factor)
        w, h = img.size
    scale = _SIDE / max(w, h)
    if scale < 1:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def garment_weights(rgb: NDArray[np.uint8], lab: NDArray[np.float32]) -> NDArray[np.float32]:
    """Per-pixel weight of belonging to the garment (0 = background), shape (h, w)."""
    h, w = lab.shape[:2]
    ring = max(2, min(h, w) // 20)
    border = np.ones((h, w), dtype=bool)
    border[ring:-ring, ring:-ring] = False
    edge = lab[border].reshape(-1, 3)
    # frequent border colours: coarse Lab bins of the ring holding ≥ 10% of it. Each bin as one
    # integer ordered like its (L, a, b) triple (|bin| < 64), so np.unique is 1-D (fast)
    bins = np.floor(edge / 12.0).astype(np.int64) + 64
    keys = (bins[:, 0] * 256 + bins[:, 1]) * 256 + bins[:, 2]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    frequent = np.flatnonzero(counts >= 0.1 * len(edge))
    if len(frequent) == 0:
        frequent = np.asarray([int(np.argmax(counts))])
    bg_centres = np.stack([edge[inverse == f].mean(axis=0) for f in frequent])
    # tolerance from the border's own spread: a plain studio backdrop gets a tight one (so a
    # white shirt on white survives), a textured floor or bed a loose one
    members = np.isin(inverse, frequent)
    spread = np.sqrt(_sq_dist(edge[members], bg_centres).min(axis=1))
    tolerance = float(np.clip(2.5 * np.percentile(spread, 75), BG_TOL_MIN, BG_TOL_MAX))
    dist2 = _sq_dist(lab.reshape(-1, 3), bg_centres).min(axis=1).reshape(h, w)
    near_bg = (dist2 < tolerance**2).astype(np.uint8)
    # background = near a border colour and connected to the border
    n_labels, comp = cv2.connectedComponents(near_bg, connectivity=4)
    touching = np.unique(comp[border & (near_bg > 0)])
    background = np.isin(comp, touching[touching > 0]) if n_labels > 1 else near_bg > 0
    garment = ~background
    garment = cv2.erode(garment.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    weights = _centre_prior(h, w)
    if garment.mean() < 0.04:  # garment the colour of the backdrop: fall back to the centre
        weights = weights * np.where(background, 0.5, 1.0).astype(np.float32)
    else:
        weights = weights * garment
    # skin (arms, faces of models) counts less: classic YCrCb box
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycrcb[:, :, 1].astype(np.int32), ycrcb[:, :, 2].astype(np.int32)
    skin = (cr > 138) & (cr < 173) & (cb > 77) & (cb < 127) & (lab[:, :, 0] > 35)
    weights = weights * np.where(skin, 0.3, 1.0).astype(np.float32)
    out: NDArray[np.float32] = weights.astype(np.float32)
    return out


@lru_cache(maxsize=64)
def _centre_prior(h: int, w: int) -> NDArray[np.float32]:
    """Gaussian favouring the image centre (the same for every photo of one shape)."""
    yy, xx = np.mgrid[0:h, 0:w]
    centre = np.exp(-(((yy - h / 2) / (0.45 * h)) ** 2 + ((xx - w / 2) / (0.45 * w)) ** 2))
    out: NDArray[np.float32] = centre.astype(np.float32)
    out.setflags(write=False)
    return out


def colour_palette(img: Image.Image) -> tuple[NDArray[np.float32], float]:
    """(share of each of `COLOUR_NAMES` in the garment, fraction of the image that is garment)."""
    rgb = _small_rgb(img)
    lab = _lab(rgb)
    weights = garment_weights(rgb, lab)
    px = lab.reshape(-1, 3)
    wt = weights.reshape(-1)
    keep = wt > 1e-3
    px, wt = px[keep], wt[keep]
    hist = np.zeros(len(COLOUR_NAMES), dtype=np.float32)
    if len(px) == 0:
        return hist, 0.0
    stretch = np.asarray([1.0, CHROMA_STRETCH, CHROMA_STRETCH], dtype=np.float32)
    d = np.sqrt(_sq_dist(px * stretch, _PROTO_LAB * stretch))
    # nearest prototype per name, then soft assignment over names
    per_name = np.minimum.reduceat(d, _NAME_START, axis=1)
    logits = -(per_name - per_name.min(axis=1, keepdims=True)) / _SOFTNESS
    soft = np.exp(logits)
    soft /= soft.sum(axis=1, keepdims=True)
    hist = (soft * wt[:, None]).sum(axis=0).astype(np.float32)
    hist /= max(float(hist.sum()), 1e-9)
    return hist, float(keep.mean())


def format_palette(hist: NDArray[np.float32], min_share: float = 0.05) -> str:
    """`"blue:0.62,white:0.30"`: names with at least `min_share`, largest first."""
    order = np.argsort(-hist, kind="stable")
    parts = [f"{COLOUR_NAMES[i]}:{hist[i]:.2f}" for i in order if hist[i] >= min_share]
    return ",".join(parts)


_INDEX = {name: i for i, name in enumerate(COLOUR_NAMES)}


def parse_palette(text: str | None) -> NDArray[np.float32]:
    """Inverse of `format_palette` (unknown names ignored); renormalised to sum 1."""
    out: NDArray[np.float32] = parse_palettes([text])[0]
    return out


def parse_palettes(texts: Sequence[str | None]) -> NDArray[np.float32]:
    """`parse_palette` of many stored palettes at once: one row each (zeros where none)."""
    hist = np.zeros((len(texts), len(COLOUR_NAMES)), dtype=np.float32)
    for row, text in enumerate(texts):
        if not text:
            continue
        for part in text.split(","):
            name, _, share = part.partition(":")
            col = _INDEX.get(name.strip())
            if col is not None:
                try:
                    hist[row, col] += float(share)
                except ValueError:
                    continue
    total = hist.sum(axis=1, keepdims=True)
    out: NDArray[np.float32] = np.divide(hist, total, out=hist, where=total > 0)
    return out


def colour_similarity(
    query: NDArray[np.float32], palettes: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Histogram intersection (0 = no shared colour, 1 = same palette); rows of zeros → 0."""
    sims: NDArray[np.float32] = np.minimum(palettes, query[None, :]).sum(axis=1).astype(np.float32)
    return sims


class ColourTagger:
    """Pixel tagger for ingest: ``colour`` (dominant name) and ``palette`` (shares)."""

    def __call__(self, img: Image.Image) -> dict[str, Tag]:
        hist, garment_fraction = colour_palette(img)
        if not hist.any():
            return {}
        top = int(np.argmax(hist))
        confidence = float(np.clip(hist[top], 0.0, 1.0))
        return {
            "colour": Tag(value=COLOUR_NAMES[top], confidence=round(confidence, 3)),
            "palette": Tag(
                value=format_palette(hist),
                confidence=round(float(np.clip(garment_fraction, 0.0, 1.0)), 3),
            ),
        }
