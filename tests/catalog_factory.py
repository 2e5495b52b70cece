"""Build small catalogs of generated images for tests: metadata files, images, bad cases."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from PIL import Image

from imagefactory import jpeg, png

CATEGORIES = ("Dress", "Shoes", "T-Shirt", "Pants")
PALETTE = {
    "Dress": (200, 30, 40),
    "Shoes": (20, 20, 20),
    "T-Shirt": (240, 240, 240),
    "Pants": (30, 60, 160),
}


def garment(category: str, variant: int) -> Image.Image:
    """A picture whose colours depend on the category (so the fake encoder groups them)."""
    base = PALETTE[category]
    img = Image.new("RGB", (48, 64), (250, 250, 250))
    shade = tuple(max(0, min(255, c + (variant % 5) * 6 - 12)) for c in base)
    img.paste(shade, (8 + variant % 3, 8, 40, 56))  # type: ignore[arg-type]
    img.paste((variant % 256, variant // 256, 128), (0, 0, 4, 4))  # unique bytes per variant
    return img


def make_rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        cat = CATEGORIES[i % len(CATEGORIES)]
        rows.append(
            {
                "id": f"item-{i:04d}",
                "image": f"img{i:04d}.jpg" if i % 5 else f"img{i:04d}.png",
                "title": f"{cat} number {i}",
                "category": cat,
                "price": f"{10 + (i * 7) % 90}.50",
                "currency": "EUR",
                "brand": ("Acme", "Borealis", "Cobalt")[i % 3],
                "sizes": "S;M" if i % 2 else "L",
                "second_hand": "true" if i % 4 == 0 else "false",
                "sustainability": str(round((i % 6) * 0.9, 1)),
                "kids": "false",
                "sender_id": str(i % 13),
            }
        )
    return rows


def write_images(folder: Path, rows: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        img = garment(row["category"], i)
        data = png(img) if row["image"].endswith(".png") else jpeg(img, quality=95)
        (folder / row["image"]).write_bytes(data)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_dataset(root: Path, n: int = 40) -> tuple[Path, Path, list[dict[str, Any]]]:
    rows = make_rows(n)
    images = root / "images"
    write_images(images, rows)
    meta = root / "items.csv"
    write_csv(meta, rows)
    return images, meta, rows
