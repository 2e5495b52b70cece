"""Item images sent through the API: saved in the catalog folder, then added to the catalog
(which encodes them and extends the index; nothing is rebuilt)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from lookalike.api.schemas import ItemCreate
from lookalike.catalog import Catalog, Item, ItemIn
from lookalike.catalog.imagefiles import write_file
from lookalike.errors import ImageLoadError
from lookalike.images import content_hash

UPLOADS = "uploads"
_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}


def uploads_dir(catalog: Catalog) -> Path:
    return Path(catalog.settings.catalog_dir) / UPLOADS


def _save(data: bytes, path: Path) -> None:
    write_file(data, path, ".upload-")  # the prefix `lookalike check` looks for


def save_upload(catalog: Catalog, data: bytes, filename: str) -> tuple[Path, bool]:
    """Store an uploaded photo under a content-addressed name in the uploads folder; returns
    its path and whether it was there already."""
    suffix = Path(filename).suffix.lower()
    name = content_hash(data)[:32] + (suffix if suffix in _SUFFIXES else ".img")
    path = (uploads_dir(catalog) / name).resolve()
    existed = path.exists()
    if not existed:
        _save(data, path)
    return path, existed


def add_uploaded_item(catalog: Catalog, fields: ItemCreate, data: bytes, filename: str) -> Item:
    """Store the image under a content-addressed name and add the item; on any failure
    (bad image, duplicate...) the file is removed again unless it was there before."""
    path, existed = save_upload(catalog, data, filename)
    try:
        return catalog.add_item(ItemIn(**fields.model_dump(), image=path.name), data, path)
    except BaseException:
        if not existed:
            path.unlink(missing_ok=True)
        raise


def delete_item(catalog: Catalog, item_id: str) -> None:
    """Delete the item, and its image file when the API stored it (ingested files are the
    shop's own and stay where they are)."""
    item = catalog.get(item_id)
    catalog.delete_item(item_id)
    forget_upload(catalog, item)


def forget_upload(catalog: Catalog, item: Item) -> None:
    """Delete the photo file of an item that is gone or has another photo now, when the API
    stored it and no item uses it any more (ingested files are the shop's own)."""
    with contextlib.suppress(ImageLoadError, OSError):
        path = catalog.image_file(item)
        if path.parent.resolve() == uploads_dir(catalog).resolve():
            path.unlink(missing_ok=True)
