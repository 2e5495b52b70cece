"""A tiny generated data set in the clothing-dataset's layout (images/ + images.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def tiny_clothing_dataset(root: Path, n: int = 36) -> Path:
    """Coloured rectangles on noisy floors: label = colour, 9 contributors with every label,
    one missing file."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    colours = {"Red": (200, 30, 30), "Blue": (30, 60, 200), "Green": (40, 160, 60)}
    rows = []
    for i in range(n):
        label = list(colours)[(i // 9) % 3]
        name = f"img{i:03d}"
        floor = rng.integers(90, 140, (96, 80, 3), dtype=np.uint8)
        floor[20:80, 15:65] = colours[label]
        if i != 5:  # row 7 of the CSV has no image file
            Image.fromarray(floor).save(root / "images" / f"{name}.jpg")
        rows.append({"image": name, "sender_id": str(i % 9), "label": label, "kids": "False"})
    with (root / "images.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "sender_id", "label", "kids"])
        w.writeheader()
        w.writerows(rows)
    return root
