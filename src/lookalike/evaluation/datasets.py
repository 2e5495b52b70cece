"""Labelled image sets for evaluation and training: paths, labels, groups and extra columns.

Rows whose image file is missing are skipped and reported (row number and file), never fatal.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.errors import LookalikeError


@dataclass
class LabelledImages:
    """An image set: `labels` is the category, `groups` the unit a split keeps together."""

    name: str
    root: Path
    paths: list[Path]
    labels: list[str]
    groups: list[str]
    columns: dict[str, list[str]] = field(default_factory=dict)
    missing: list[tuple[int, str]] = field(default_factory=list)  # (csv row number, image)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: list[int]) -> LabelledImages:
        return LabelledImages(
            name=self.name,
            root=self.root,
            paths=[self.paths[i] for i in keep],
            labels=[self.labels[i] for i in keep],
            groups=[self.groups[i] for i in keep],
            columns={k: [v[i] for i in keep] for k, v in self.columns.items()},
            missing=list(self.missing),
        )


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_clothing_dataset(root: Path) -> LabelledImages:
    """clothing-dataset: images.csv (image, sender_id, label, kids), images/<image>.jpg.
    Groups are contributors (`sender_id`)."""
    paths: list[Path] = []
    labels: list[str] = []
    groups: list[str] = []
    kids: list[str] = []
    missing: list[tuple[int, str]] = []
    for rownum, row in enumerate(_rows(root / "images.csv"), start=2):
        name = row["image"]
        path = root / "images" / (name if name.lower().endswith(".jpg") else f"{name}.jpg")
        if not path.is_file():
            missing.append((rownum, name))
            continue
        paths.append(path)
        labels.append(row["label"])
        groups.append(row["sender_id"])
        kids.append(row.get("kids", ""))
    return LabelledImages("clothing-dataset", root, paths, labels, groups, {"kids": kids}, missing)


PRODUCT_COLUMNS = ("colour", "pattern", "sub_category", "gender", "usage")


def load_product_sample(root: Path) -> LabelledImages:
    """fashion-product-images-sample: items.csv, images/<image>. Every product is its own group
    (so only the query itself is excluded); extra columns include colour and pattern."""
    paths: list[Path] = []
    labels: list[str] = []
    groups: list[str] = []
    cols: dict[str, list[str]] = {c: [] for c in PRODUCT_COLUMNS}
    missing: list[tuple[int, str]] = []
    for rownum, row in enumerate(_rows(root / "items.csv"), start=2):
        path = root / "images" / row["image"]
        if not path.is_file():
            missing.append((rownum, row["image"]))
            continue
        paths.append(path)
        labels.append(row["category"])
        groups.append(row["id"])
        for c in PRODUCT_COLUMNS:
            cols[c].append(row.get(c, "") or "")
    return LabelledImages("fashion-product-images", root, paths, labels, groups, cols, missing)


def load_dataset(root: Path) -> LabelledImages:
    """Recognise a data set folder by its metadata file."""
    root = Path(root)
    if (root / "images.csv").is_file():
        return load_clothing_dataset(root)
    if (root / "items.csv").is_file():
        return load_product_sample(root)
    raise LookalikeError(f"{root}: no images.csv (clothing-dataset) or items.csv (product sample)")
