"""Labelled image sets for evaluation and training: paths, labels, groups and extra columns.

Two layouts are read:

* the clothing-dataset: `images.csv` (image, sender_id, label, kids) and `images/<image>.jpg`;
  groups are contributors (`sender_id`).
* a shop's catalog: a metadata file in the format `lookalike ingest` reads (`items.csv`,
  `items.jsonl`, `catalog.csv` or `catalog.jsonl`; only `image` is required) with its images in
  `images/` (or beside the file). Labels are whichever of `category`, `colour` and `pattern` it
  has; groups come from its first column named `group`, `sender_id` or `contributor`, and
  without one every item is its own group.

Rows whose image file is missing, and rows without an image, are skipped and reported (row
number and why), never fatal.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike.catalog.ingest import default_id, resolve_image
from lookalike.catalog.metadata import read_metadata
from lookalike.errors import ImageLoadError, LookalikeError

#: label columns the metrics know (a catalog may have any subset of them)
LABELS: tuple[str, ...] = ("category", "colour", "pattern")
#: columns that say which photos belong together (same contributor / same product), by priority
GROUP_COLUMNS: tuple[str, ...] = ("group", "sender_id", "contributor")
#: metadata files looked for in a data set folder, in this order (after images.csv)
METADATA_FILES: tuple[str, ...] = ("items.csv", "items.jsonl", "catalog.csv", "catalog.jsonl")


@dataclass
class LabelledImages:
    """An image set: `labels` is the category ("" where not given), `groups` the unit a split
    keeps together and retrieval leaves out of a query's results.

    `label_columns` names the labels the metadata has (category, colour, pattern);
    `group_column` the column the groups come from (None: each item is its own group);
    `white_background` whether the photos are catalogue shots on white (None: look at them).
    """

    name: str
    root: Path
    paths: list[Path]
    labels: list[str]
    groups: list[str]
    columns: dict[str, list[str]] = field(default_factory=dict)
    missing: list[tuple[int, str]] = field(default_factory=list)  # (csv row number, image)
    label_columns: tuple[str, ...] = ("category",)
    group_column: str | None = "group"
    white_background: bool | None = None
    metadata: Path | None = None
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)

    def __len__(self) -> int:
        return len(self.paths)

    def values(self, label: str) -> list[str] | None:
        """The values of label `label` ("" where an item has none), or None when the metadata
        has no such column. `category` is `labels`; anything else is a column."""
        if label == "category":
            return self.labels if "category" in self.label_columns else None
        return self.columns.get(label)

    def subset(self, keep: list[int]) -> LabelledImages:
        return LabelledImages(
            name=self.name,
            root=self.root,
            paths=[self.paths[i] for i in keep],
            labels=[self.labels[i] for i in keep],
            groups=[self.groups[i] for i in keep],
            columns={k: [v[i] for i in keep] for k, v in self.columns.items()},
            missing=list(self.missing),
            label_columns=self.label_columns,
            group_column=self.group_column,
            white_background=self.white_background,
            metadata=self.metadata,
            rejected=list(self.rejected),
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
    csv_path = root / "images.csv"
    for rownum, row in enumerate(_rows(csv_path), start=2):
        name = row["image"]
        path = root / "images" / (name if name.lower().endswith(".jpg") else f"{name}.jpg")
        if not path.is_file():
            missing.append((rownum, name))
            continue
        paths.append(path)
        labels.append(row["label"])
        groups.append(row["sender_id"])
        kids.append(row.get("kids", ""))
    return LabelledImages(
        "clothing-dataset",
        root,
        paths,
        labels,
        groups,
        {"kids": kids},
        missing,
        group_column="sender_id",
        white_background=False,
        metadata=csv_path,
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def load_catalog(
    root: Path, metadata: Path | None = None, columns: Mapping[str, str] | None = None
) -> LabelledImages:
    """A shop's catalog: `metadata` (default: the first of METADATA_FILES in `root`) in the
    format `lookalike ingest` reads, images in `root/images` (or `root`). `columns` renames
    metadata columns first, as ingest's `--map` does (e.g. {"type": "category"})."""
    root = Path(root)
    if metadata is None:
        found = [root / n for n in METADATA_FILES if (root / n).is_file()]
        if not found:
            raise LookalikeError(
                f"{root}: no metadata file ({', '.join(('images.csv', *METADATA_FILES))})"
            )
        metadata = found[0]
    images_dir = root / "images" if (root / "images").is_dir() else root
    rename = dict(columns or {})
    paths: list[Path] = []
    labels: list[str] = []
    ids: list[str] = []
    raw_groups: list[str] = []
    extra: dict[str, list[str]] = {}
    seen: set[str] = set()
    missing: list[tuple[int, str]] = []
    rejected: list[tuple[int, str]] = []
    group_column: str | None = None
    for record in read_metadata(metadata):
        rownum, raw = record.number, record.fields
        if raw is None:
            rejected.append((rownum, record.problem))
            continue
        row = {rename.get(k, k): v for k, v in raw.items()}
        image = _text(row.get("image"))
        if not image:
            rejected.append((rownum, "no image"))
            continue
        try:
            path = resolve_image(images_dir, image)
        except ImageLoadError as exc:  # outside the images folder, a bad name
            rejected.append((rownum, exc.reason))
            continue
        if not path.is_file():
            missing.append((rownum, image))
            continue
        if group_column is None and not seen:
            group_column = next((c for c in GROUP_COLUMNS if c in row), None)
        seen.update(row)
        item_id = _text(row.get("id")) or default_id(image)
        n = len(paths)
        paths.append(path)
        ids.append(item_id)
        labels.append(_text(row.get("category")))
        raw_groups.append(_text(row.get(group_column)) if group_column else "")
        for key, value in row.items():
            if key in ("image", "id", "category") or key == group_column:
                continue
            extra.setdefault(key, [""] * n).append(_text(value))
        for values in extra.values():  # a JSONL row may lack keys earlier rows had
            if len(values) < n + 1:
                values.append("")
    if not paths:
        raise LookalikeError(
            f"{metadata}: no row names an image file that exists under {images_dir}"
            + (f" ({len(missing)} rows name missing files)" if missing else "")
            + (f" ({len(rejected)} rows rejected; row {rejected[0][0]}: {rejected[0][1]})"
               if rejected else "")
        )
    # an item without a group value is a group of its own
    groups = [g or f"item:{i}" for g, i in zip(raw_groups, ids, strict=True)]
    if group_column is None:
        groups = ids
    label_columns = tuple(c for c in LABELS if c in seen)
    return LabelledImages(
        name=root.resolve().name,
        root=root,
        paths=paths,
        labels=labels,
        groups=groups,
        columns=extra,
        missing=missing,
        label_columns=label_columns,
        group_column=group_column,
        metadata=metadata,
        rejected=rejected,
    )


def load_product_sample(root: Path) -> LabelledImages:
    """fashion-product-images-sample: items.csv (id, image, category, colour, pattern, ...) and
    images/<image>. No group column, so every product is its own group."""
    return load_catalog(root, Path(root) / "items.csv")


def load_dataset(
    root: Path, metadata: Path | None = None, columns: Mapping[str, str] | None = None
) -> LabelledImages:
    """Recognise a data set folder by its metadata file: images.csv is the clothing-dataset
    (unless `columns` renames some: then it is read as a catalog), anything else a shop's
    catalog (`load_catalog`)."""
    root = Path(root)
    if not root.is_dir():
        raise LookalikeError(f"{root}: not a folder")
    if metadata is None and (root / "images.csv").is_file():
        if not columns:
            return load_clothing_dataset(root)
        metadata = root / "images.csv"  # renamed columns: read it as a shop's catalog
    return load_catalog(root, metadata, columns)
