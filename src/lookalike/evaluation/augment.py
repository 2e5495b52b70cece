"""Image transforms for synthetic pairs and robustness tests: seeded, deterministic per index.

* `augment_view`: crop + scale, flip, rotation, colour jitter and (sometimes) a background change
  (garment composited over a real background), the two-views protocol of synthetic pairs.
* `garment_mask`: a classical foreground mask (OpenCV GrabCut from a centre rectangle), or,
  for catalogue shots on white, the non-white pixels.
* `swap_background`, `crop_zoom`: the background-swap and crop/zoom tests.
* `on_white_background`: whether a data set's photos are catalogue shots on white.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageEnhance, ImageFilter

from lookalike.errors import ImageLoadError
from lookalike.images import load_image

_MASK_SIZE = 128
WHITE = 235  # a pixel whose darkest channel is at least this is "white" (catalogue backdrop)


def garment_mask(img: Image.Image, *, white_background: bool = False) -> NDArray[np.float32]:
    """Soft foreground mask (H, W) in [0, 1] at the image's size.

    white_background: catalogue photos; foreground = pixels not close to white.
    Otherwise GrabCut (5 iterations at 128 px) seeded with a centre rectangle covering 80%.
    Falls back to a centre ellipse if GrabCut finds almost nothing.
    """
    import cv2

    w, h = img.size
    scale = _MASK_SIZE / max(w, h)
    small = img.resize((max(8, round(w * scale)), max(8, round(h * scale))))
    arr = np.asarray(small, dtype=np.uint8)
    sh, sw = arr.shape[:2]
    if white_background:
        fg = (arr.astype(np.int16).min(axis=2) < WHITE).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    else:
        mask = np.zeros((sh, sw), np.uint8)
        rect = (int(sw * 0.1), int(sh * 0.1), int(sw * 0.8), int(sh * 0.8))
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        try:
            cv2.setRNGSeed(0)  # GrabCut's k-means init draws from a per-thread RNG
            cv2.grabCut(arr[:, :, ::-1].copy(), mask, rect, bgd, fgd, 5, cv2.GC_INIT_WITH_RECT)
            fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
        except cv2.error:
            fg = np.zeros((sh, sw), np.uint8)
    if fg.mean() < 0.05:
        yy, xx = np.mgrid[0:sh, 0:sw]
        fg = ((((yy - sh / 2) / (sh * 0.4)) ** 2 + ((xx - sw / 2) / (sw * 0.4)) ** 2) <= 1).astype(
            np.uint8
        )
    soft = Image.fromarray(fg * 255).filter(ImageFilter.GaussianBlur(1.5)).resize((w, h))
    return np.asarray(soft, dtype=np.float32) / 255.0


def on_white_background(paths: Sequence[Path], sample: int = 64, seed: int = 0) -> bool:
    """Whether most photos (of a seeded sample of `sample`) are shots on white: at least 60 %
    of the 2-pixel border of the photo, at 64 x 64, is white. Photos that do not decode are
    left out. Measured: 100 % of the product sample's photos pass, 2 % of the
    clothing-dataset's (taken on floors and beds)."""
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(paths), size=min(sample, len(paths)), replace=False))
    votes: list[bool] = []
    for i in chosen:
        try:
            img = load_image(paths[int(i)], draft_size=(64, 64))
        except ImageLoadError:
            continue
        a = np.asarray(img.resize((64, 64)), dtype=np.int16).min(axis=2)
        ring = np.concatenate([a[:2].ravel(), a[-2:].ravel(), a[2:-2, :2].ravel(),
                               a[2:-2, -2:].ravel()])
        votes.append(bool((ring >= WHITE).mean() >= 0.6))
    return bool(votes) and sum(votes) * 2 >= len(votes)


def composite(img: Image.Image, mask: NDArray[np.float32], background: Image.Image) -> Image.Image:
    """`img` where `mask` is 1, `background` (resized to cover) elsewhere."""
    bg = background.resize(img.size, Image.Resampling.BILINEAR)
    m = mask[:, :, None]
    out = np.asarray(img, dtype=np.float32) * m + np.asarray(bg, dtype=np.float32) * (1 - m)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def background_patch(img: Image.Image, corner: int) -> Image.Image:
    """A real background texture: one corner (35% x 35%) of a garment photo, where floors, beds
    and walls are. `corner` 0..3 picks which."""
    w, h = img.size
    cw, ch = int(w * 0.35), int(h * 0.35)
    x = 0 if corner in (0, 2) else w - cw
    y = 0 if corner in (0, 1) else h - ch
    return img.crop((x, y, x + cw, y + ch))


@dataclass(frozen=True)
class AugmentConfig:
    min_scale: float = 0.55
    max_rotation: float = 15.0
    jitter: float = 0.2
    background_probability: float = 0.5


def _random_crop(img: Image.Image, rng: np.random.Generator, min_scale: float) -> Image.Image:
    w, h = img.size
    area = rng.uniform(min_scale, 1.0) * w * h
    ratio = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    cw = int(min(w, round(np.sqrt(area * ratio))))
    ch = int(min(h, round(np.sqrt(area / ratio))))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def augment_view(
    img: Image.Image,
    rng: np.random.Generator,
    backgrounds: Sequence[Image.Image] = (),
    config: AugmentConfig = AugmentConfig(),
    *,
    white_background: bool = False,
) -> Image.Image:
    """One random view of `img`: background change (with probability), crop + scale, flip,
    rotation, brightness/contrast/saturation jitter (hue kept: colour is identity)."""
    if backgrounds and rng.random() < config.background_probability:
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        img = composite(img, garment_mask(img, white_background=white_background), bg)
    img = _random_crop(img, rng, config.min_scale)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = float(rng.uniform(-config.max_rotation, config.max_rotation))
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=(0, 0, 0))
    j = config.jitter
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(1 - j, 1 + j)))
    img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(1 - j, 1 + j)))
    return ImageEnhance.Color(img).enhance(float(rng.uniform(1 - j, 1 + j)))


def crop_zoom(img: Image.Image, rng: np.random.Generator, scale: float = 0.5) -> Image.Image:
    """A zoomed-in crop holding `scale` of the area, off-centre by up to the free margin."""
    w, h = img.size
    cw, ch = int(w * np.sqrt(scale)), int(h * np.sqrt(scale))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def rng_for(seed: int, index: int) -> np.random.Generator:
    """Independent, reproducible stream for image `index` under `seed`."""
    return np.random.default_rng([seed, index])
