"""Export a catalog's items as a metadata file (CSV or JSON Lines) that `lookalike ingest`
reads back into an equal catalog: the same ids and fields (`schema.KNOWN_FIELDS`, `extra`),
and, encoded again from the same photos, the same vectors.

The `image` column names each photo relative to an images root, as ingest wants it:

* with `images` given, every photo is copied there (as `<first 32 hex of its hash><suffix>`,
  the name a backup gives it) and named by that file name: the export and that folder
  together are a complete copy (`lookalike ingest IMAGES --metadata FILE`);
* without, the root is the catalog folder when every photo lies inside it (a self-contained
  catalog), else the deepest folder that holds them all; `ExportReport.images_root` says
  which.

Not exported: what ingest recomputes (predicted tags, converted prices, brand ratings),
timestamps, and vendors' ownership. CSV cells are written as they are (a text beginning with
`=` stays so): open the file with lookalike, not a spreadsheet, when such text may occur.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike.catalog.imagefiles import image_file
from lookalike.catalog.metadata import METADATA_SUFFIXES
from lookalike.catalog.schema import KNOWN_FIELDS, Item
from lookalike.catalog.store import CatalogStore
from lookalike.errors import ImageLoadError, LookalikeError

__all__ = ["FORMATS", "ExportReport", "export_catalog", "export_row"]

FORMATS = ("csv", "jsonl")
#: Items read from the catalog at a time.
_PAGE = 500


@dataclass
class ExportReport:
    path: Path
    format: str
    items: int = 0
    images_root: Path | None = None
    images_copied: int = 0
    #: ids of items whose photo file is missing or unreadable (their rows are written even so)
    images_missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "format": self.format, "items": self.items,
            "images_root": None if self.images_root is None else str(self.images_root),
            "images_copied": self.images_copied, "images_missing": self.images_missing,
        }


def export_row(item: Item, image: str) -> dict[str, Any]:
    """The metadata row of an item (JSON values: lists, booleans, numbers, None)."""
    row: dict[str, Any] = {"id": item.id, "image": image}
    for name in KNOWN_FIELDS:
        if name not in row:
            row[name] = getattr(item, name)
    row["extra"] = item.extra
    return row


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False) if value else ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _items(store: CatalogStore) -> Iterator[Item]:
    offset = 0
    while page := store.list(None, offset, _PAGE):
        yield from page
        offset += _PAGE


def _format_of(out: Path, fmt: str | None) -> str:
    if fmt is None:
        fmt = METADATA_SUFFIXES.get(out.suffix.lower())
        if fmt is None:
            raise LookalikeError(f"{out}: give --format csv or jsonl (or a .csv / .jsonl name)")
    if fmt not in FORMATS:
        raise LookalikeError(f"unknown export format {fmt!r}: csv or jsonl")
    return fmt


def _photo_root(folder: Path, files: list[Path]) -> Path:
    root = folder.resolve()
    if all(root in f.parents for f in files):
        return root
    return Path(os.path.commonpath([str(f.parent) for f in files])) if files else root


def export_catalog(
    store: CatalogStore, folder: Path, out: Path, fmt: str | None = None,
    images: Path | None = None,
) -> ExportReport:
    """Write every item of the catalog in `folder` (sold ones too) to `out` (see the module's
    docstring). The file is written whole or not at all (a temp file renamed into place)."""
    out = Path(out)
    report = ExportReport(out, _format_of(out, fmt))
    items = list(_items(store))
    files: dict[str, Path | None] = {}
    for item in items:
        try:
            files[item.id] = image_file(folder, item.image_path)
        except ImageLoadError:
            files[item.id] = None
    names: dict[str, str] = {}
    if images is not None:
        images = Path(images)
        images.mkdir(parents=True, exist_ok=True)
        report.images_root = images.resolve()
        for item in items:
            src = files[item.id]
            name = f"{item.image_hash[:32]}{Path(item.image_path).suffix.lower()}"
            names[item.id] = name
            try:
                if src is None:
                    raise OSError("outside the catalog folder")
                if not (images / name).exists():
                    shutil.copyfile(src, images / name)
                report.images_copied += 1
            except OSError:
                report.images_missing.append(item.id)
    else:
        found = [f for f in files.values() if f is not None]
        root = _photo_root(folder, found)
        report.images_root = root
        for item in items:
            src = files[item.id]
            if src is None or not src.is_file():
                report.images_missing.append(item.id)
            names[item.id] = src.relative_to(root).as_posix() if src is not None else \
                item.image_path
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            if report.format == "jsonl":
                for item in items:
                    f.write(json.dumps(export_row(item, names[item.id]), ensure_ascii=False))
                    f.write("\n")
            else:
                writer = csv.writer(f)
                header = ["id", "image", *(n for n in KNOWN_FIELDS if n not in ("id", "image")),
                          "extra"]
                writer.writerow(header)
                for item in items:
                    row = export_row(item, names[item.id])
                    writer.writerow([_csv_cell(row[n]) for n in header])
        Path(tmp).replace(out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    report.items = len(items)
    return report
