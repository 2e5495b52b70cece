#!/usr/bin/env python3
"""Build the small sample catalog bundled with lookalike from the CC0 clothing dataset.

The dataset (https://github.com/alexeygrigorev/clothing-dataset) has `images.csv` with columns
`image, sender_id, label, kids` and photos under `images/<image>.jpg`. This script picks a few
images per label, spread over many contributors, shrinks them to 256 px on the longer side, and
writes `catalog.csv` + `catalog.jsonl` in lookalike's metadata format with synthetic shop fields
(price, brand, sizes, sustainability, second_hand; listing state, shoppers' rating and reviews).
Everything is deterministic for a given seed.

    python scripts/make_sample.py --dataset ../shared/datasets/clothing-dataset \
        --out src/lookalike/data/sample --per-label 18 --seed 7
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from lookalike.catalog.schema import KNOWN_FIELDS
from lookalike.errors import ImageLoadError
from lookalike.images import load_image

SKIP_LABELS = frozenset({"Not sure", "Skip", "Other"})
LONG_SIDE = 256
JPEG_QUALITY = 85
SOURCE = "clothing-dataset"
CURRENCY = "EUR"

# the catalog schema's own columns, plus the contributor id evaluation needs
COLUMNS = (*KNOWN_FIELDS, "sender_id")

BRANDS = (
    "Northwind",
    "Maison Ardent",
    "Bluefin",
    "Kettle & Loom",
    "Oakridge",
    "Soleil Studio",
    "Fennmark",
    "Tidewater",
)

ADJECTIVES = (
    "Classic",
    "Relaxed",
    "Slim",
    "Everyday",
    "Vintage",
    "Essential",
    "Soft",
    "Urban",
    "Oversized",
    "Tailored",
    "Lightweight",
    "Organic",
)

# Label -> (noun used in titles, adult price range in EUR).
CATEGORIES: dict[str, tuple[str, tuple[float, float]]] = {
    "T-Shirt": ("T-Shirt", (9, 35)),
    "Longsleeve": ("Long-Sleeve Top", (15, 45)),
    "Pants": ("Pants", (25, 90)),
    "Shoes": ("Shoes", (35, 150)),
    "Shirt": ("Shirt", (20, 70)),
    "Dress": ("Dress", (25, 120)),
    "Outwear": ("Jacket", (50, 250)),
    "Shorts": ("Shorts", (15, 50)),
    "Hat": ("Hat", (10, 40)),
    "Skirt": ("Skirt", (20, 70)),
    "Polo": ("Polo Shirt", (18, 55)),
    "Undershirt": ("Undershirt", (6, 20)),
    "Blazer": ("Blazer", (60, 220)),
    "Hoodie": ("Hoodie", (25, 80)),
    "Body": ("Bodysuit", (8, 30)),
    "Top": ("Top", (10, 40)),
    "Blouse": ("Blouse", (20, 70)),
}
DEFAULT_CATEGORY: tuple[str, tuple[float, float]] = ("Item", (10, 60))

LETTER_SIZES = ("XS", "S", "M", "L", "XL", "XXL")
SHOE_SIZES = tuple(str(n) for n in range(36, 47))
KIDS_SIZES = ("86", "92", "98", "104", "110", "116", "122", "128", "134", "140")
HAT_SIZES = ("S/M", "L/XL")


@dataclass(frozen=True)
class Source:
    image: str
    sender_id: str
    label: str
    kids: bool


def read_index(dataset: Path) -> list[Source]:
    with (dataset / "images.csv").open(newline="", encoding="utf-8") as fh:
        return [
            Source(
                image=row["image"].strip(),
                sender_id=row["sender_id"].strip(),
                label=row["label"].strip(),
                kids=row["kids"].strip().lower() == "true",
            )
            for row in csv.DictReader(fh)
        ]


def pick(rows: list[Source], per_label: int, seed: int) -> list[Source]:
    """Up to `per_label` images per label, round-robin over contributors, least-used first."""
    rng = random.Random(seed)
    by_label: dict[str, dict[str, list[Source]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.label not in SKIP_LABELS:
            by_label[row.label][row.sender_id].append(row)
    used: Counter[str] = Counter()  # images taken per contributor, over all labels
    chosen: list[Source] = []
    for label in sorted(by_label):
        senders = by_label[label]
        queues = {s: sorted(v, key=lambda r: r.image) for s, v in sorted(senders.items())}
        for queue in queues.values():
            rng.shuffle(queue)
        taken: list[Source] = []
        while len(taken) < per_label and any(queues.values()):
            order = [s for s in queues if queues[s]]
            rng.shuffle(order)
            order.sort(key=lambda s: used[s])  # stable: random among equally used senders
            for sender in order:
                if len(taken) >= per_label:
                    break
                taken.append(queues[sender].pop())
                used[sender] += 1
        chosen.extend(taken)
    return chosen


def contiguous(rng: random.Random, scale: tuple[str, ...], low: int, high: int) -> list[str]:
    length = rng.randint(low, min(high, len(scale)))
    start = rng.randint(0, len(scale) - length)
    return list(scale[start : start + length])


def synthetic_fields(src: Source, seed: int) -> dict[str, Any]:
    """Shop fields that the dataset does not have: deterministic per (seed, image id)."""
    rng = random.Random(f"{seed}:{src.image}")
    noun, (low, high) = CATEGORIES.get(src.label, DEFAULT_CATEGORY)
    second_hand = rng.random() < 0.4
    price = rng.uniform(low, high)
    if src.kids:
        price *= 0.6
    if second_hand:
        price *= rng.uniform(0.3, 0.6)
    price = max(2.0, round(price)) - rng.choice((0.01, 0.05, 0.0))
    if src.kids:
        sizes = contiguous(rng, KIDS_SIZES, 3, 6)
    elif src.label == "Shoes":
        sizes = contiguous(rng, SHOE_SIZES, 4, 9)
    elif src.label == "Hat":
        sizes = rng.choice([["One size"], list(HAT_SIZES)])
    else:
        sizes = contiguous(rng, LETTER_SIZES, 2, 6)
    if second_hand:
        sizes = [rng.choice(sizes)]  # a second-hand item comes in one size
    sustainability = rng.triangular(0.0, 5.0, 2.5) + (1.0 if second_hand else 0.0)
    title = f"{rng.choice(ADJECTIVES)} {noun}"
    if src.kids:
        title = f"Kids' {title}"
    return {
        "title": title,
        "price": round(price, 2),
        "brand": rng.choice(BRANDS),
        "sizes": sizes,
        "sustainability": round(min(5.0, sustainability), 1),
        "second_hand": second_hand,
    }


def listing_fields(src: Source, seed: int) -> dict[str, Any]:
    """Listing state and shoppers' rating: drawn from a generator of their own, so the other
    fields stay as they were before these existed."""
    rng = random.Random(f"{seed}:{src.image}:listing")
    roll = rng.random()
    state = "sold" if roll < 0.06 else "reserved" if roll < 0.12 else "available"
    rated = rng.random() < 0.65
    rating = round(rng.triangular(2.0, 5.0, 4.3), 1) if rated else None
    reviews = int(rng.paretovariate(1.2) * 3) if rated else None
    return {"state": state, "rating": rating, "reviews": reviews}


def record(src: Source, seed: int) -> dict[str, Any]:
    """One catalog row with proper JSON types (JSONL form)."""
    fields = {**synthetic_fields(src, seed), **listing_fields(src, seed)}
    return {
        "id": src.image,
        "image": f"{src.image}.jpg",
        "title": fields["title"],
        "category": src.label,
        "department": None,
        "kids": src.kids,
        "price": fields["price"],
        "currency": CURRENCY,
        "brand": fields["brand"],
        "sizes": fields["sizes"],
        "colour": None,
        "url": None,
        "sustainability": fields["sustainability"],
        "second_hand": fields["second_hand"],
        "source": SOURCE,
        "state": fields["state"],
        "rating": fields["rating"],
        "reviews": fields["reviews"],
        "sender_id": src.sender_id,
    }


def csv_cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if column == "price":
        return f"{value:.2f}"
    if column in ("sustainability", "rating"):
        return f"{value:.1f}"
    return str(value)


def shrink(path: Path, dest: Path) -> bool:
    """Upright RGB, longer side LONG_SIDE px, re-encoded without any metadata."""
    try:
        img = load_image(path)
    except ImageLoadError as exc:
        print(f"skipped {exc}", file=sys.stderr)
        return False
    scale = LONG_SIDE / max(img.size)
    if scale < 1:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    # A fresh image carries no info dict: no EXIF, ICC profile or comments are written.
    clean = Image.new("RGB", img.size)
    clean.paste(img)
    clean.save(dest, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=False)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/clothing-dataset"))
    parser.add_argument("--out", type=Path, default=Path("src/lookalike/data/sample"))
    parser.add_argument("--per-label", type=int, default=18, help="images per label at most")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    dataset: Path = args.dataset
    out: Path = args.out
    rows = read_index(dataset)
    chosen = pick(rows, args.per_label, args.seed)

    images_dir = out / "images"
    if images_dir.exists():
        shutil.rmtree(images_dir)
    images_dir.mkdir(parents=True)

    records: list[dict[str, Any]] = []
    for src in chosen:
        if shrink(dataset / "images" / f"{src.image}.jpg", images_dir / f"{src.image}.jpg"):
            records.append(record(src, args.seed))
    records.sort(key=lambda r: (r["category"], r["id"]))

    with (out / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for rec in records:
            writer.writerow([csv_cell(c, rec[c]) for c in COLUMNS])
    with (out / "catalog.jsonl").open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps({c: rec[c] for c in COLUMNS}, ensure_ascii=False) + "\n")

    licence = dataset / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, out / "LICENSE")

    total = sum(p.stat().st_size for p in images_dir.iterdir())
    labels = Counter(r["category"] for r in records)
    senders = {r["sender_id"] for r in records}
    print(
        f"{len(records)} images, {len(labels)} labels, {len(senders)} contributors, "
        f"{total / 1e6:.2f} MB of images -> {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
