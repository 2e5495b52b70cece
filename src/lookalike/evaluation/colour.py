"""Dominant colour of an image's centre region, by name: an encoder-independent reference.

The centre half (by side) of the photo is where the garment usually is; every pixel there is
named by its nearest colour in a small palette (in RGB), and the most common name wins. Crude,
but it does not depend on any model, so it can judge whether results keep the query's colour.
Cached per file list under `cache_dir/features`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lookalike.config import Settings
from lookalike.errors import ImageLoadError
from lookalike.images import load_image

PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "red": (200, 30, 30),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 50),
    "green": (50, 150, 60),
    "blue": (40, 90, 200),
    "navy": (25, 35, 80),
    "purple": (120, 50, 150),
    "pink": (240, 150, 180),
    "brown": (120, 75, 40),
    "beige": (215, 195, 160),
}
_NAMES = list(PALETTE)
_RGB = np.asarray(list(PALETTE.values()), dtype=np.float32)


def dominant_colour(path: Path) -> str:
    img = load_image(path, draft_size=(64, 64))
    w, h = img.size
    crop = img.crop((w // 4, h // 4, w - w // 4, h - h // 4)).resize((24, 24))
    px = np.asarray(crop, dtype=np.float32).reshape(-1, 3)
    d = ((px[:, None, :] - _RGB[None]) ** 2).sum(axis=2)
    counts = np.bincount(d.argmin(axis=1), minlength=len(_NAMES))
    return _NAMES[int(counts.argmax())]


def dominant_colours(paths: Sequence[Path], settings: Settings | None = None) -> list[str]:
    """Dominant colour name of every image ("" where it does not decode), cached."""
    settings = settings or Settings()
    h = hashlib.sha256(b"dominant-v1\n")
    for p in paths:
        h.update(str(p).encode() + b"\n")
    target = settings.cache_dir / "features" / f"dominant-{h.hexdigest()[:32]}.json"
    if target.is_file():
        try:
            cached = json.loads(target.read_text())
            if isinstance(cached, list) and len(cached) == len(paths):
                return [str(c) for c in cached]
        except (OSError, json.JSONDecodeError):
            pass

    def one(p: Path) -> str:
        try:
            return dominant_colour(p)
        except ImageLoadError:
            return ""

    with ThreadPoolExecutor(max_workers=settings.decode_threads) as pool:
        names = list(pool.map(one, paths))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(names))
    tmp.replace(target)
    return names
