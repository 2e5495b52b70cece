"""Catalog writes by the admin or a vendor (`lookalike.users.vendors`): who is writing (the
`X-API-Key` header), whether it may change an item, and what a vendor's writes do: add one
item it then owns, replace an item's photo, and upsert many items from a JSON Lines file.

A bulk upsert's rows are read and validated exactly as `lookalike ingest` reads a metadata
file (`lookalike.catalog.metadata`, `lookalike.catalog.ingest.validate_row`); each row is
the whole item (a field it leaves out is emptied), found again by its id in the writer's
namespace (a vendor's `<vendor>:<id>`). Every row gets a result with its line number;
one bad row never stops the others.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, HTTPException, Request
from pydantic import BaseModel, Field

from lookalike.api.deps import AdminKey, GuardsDep, SettingsDep
from lookalike.api.ratelimit import client_key
from lookalike.api.schemas import ItemCreate
from lookalike.api.uploads import add_uploaded_item, forget_upload, save_upload
from lookalike.catalog import Catalog, DuplicateItemError, Item, ItemIn, ItemUpdate
from lookalike.catalog.ingest import Rejection, validate_row
from lookalike.catalog.metadata import RawRow, read_metadata
from lookalike.errors import ImageLoadError, ItemNotFoundError, LookalikeError
from lookalike.images import content_hash
from lookalike.users.vendors import KEY_PREFIX, Vendor, Vendors

__all__ = [
    "BulkReport",
    "BulkRow",
    "VendorsDep",
    "Writer",
    "WriterDep",
    "add_item",
    "bulk_upsert",
    "ensure_may_change",
    "get_vendors",
    "replace_photo",
    "require_writer",
]

#: Longest item id (as `ItemIn.id`), the vendor's prefix included.
MAX_ID_CHARS = 200


@dataclass(frozen=True)
class Writer:
    """Who writes: a vendor, or the admin (`vendor` None)."""

    vendor: Vendor | None = None

    @property
    def name(self) -> str:
        return "admin" if self.vendor is None else self.vendor.name

    def item_id(self, given: str) -> str:
        """The catalog id of the writer's item `given` (a vendor's in its namespace)."""
        return given if self.vendor is None else self.vendor.item_id(given)


async def get_vendors(request: Request) -> Vendors:
    vendors: Vendors = request.app.state.vendors
    return vendors


VendorsDep = Annotated[Vendors, Depends(get_vendors)]


async def require_writer(
    request: Request,
    settings: SettingsDep,
    guards: GuardsDep,
    vendors: VendorsDep,
    x_api_key: Annotated[
        str | None, Header(description="The admin key, or a vendor's key (`lookalike vendors "
                           "add`), for catalog writes.")
    ] = None,
) -> Writer:
    """A vendor's key (SHA-256 digest looked up, compared in constant time) or the admin key
    (argon2, through the hashing gate). Wrong keys are rate-limited per client (429 with
    Retry-After) before any check that costs anything."""
    if not x_api_key:
        raise HTTPException(401, "catalog writes need the admin key or a vendor key in the "
                                 "X-API-Key header")
    admin: AdminKey = request.app.state.admin_key
    if admin.known(x_api_key):
        return Writer()
    client = client_key(request)
    guards.auth_failures.take(client)
    vendor = vendors.authenticate(x_api_key)
    if vendor is not None:
        guards.auth_failures.refund(client)  # only failures count
        return Writer(vendor)
    if not x_api_key.startswith(KEY_PREFIX) and settings.admin_key_hash and \
            await guards.hashing.run(admin.verify, x_api_key):
        guards.auth_failures.refund(client)
        return Writer()
    if not settings.admin_key_hash and not x_api_key.startswith(KEY_PREFIX):
        raise HTTPException(403, "wrong key: no admin key is configured (set "
                                 "LOOKALIKE_ADMIN_KEY_HASH) and no vendor has this key")
    raise HTTPException(403, "wrong API key (or a revoked vendor's)")


WriterDep = Annotated[Writer, Depends(require_writer)]


def ensure_may_change(catalog: Catalog, vendors: Vendors, writer: Writer, item_id: str) -> Item:
    """The item, if the writer may change it: 404 when there is none, 403 when it is
    another vendor's, or nobody's (then only the admin may)."""
    item = catalog.get(item_id)
    if not vendors.may_change(writer.vendor, item_id):
        owner = vendors.owner(item_id)
        whose = "no vendor's (only the admin key may change it)" if owner is None else \
            "another vendor's"
        raise HTTPException(403, f"item {item_id!r} is {whose}")
    return item


def add_item(catalog: Catalog, vendors: Vendors, writer: Writer, fields: ItemCreate,
             data: bytes, filename: str) -> Item:
    """Add one uploaded item; a vendor's gets an id in its namespace and is its own."""
    if writer.vendor is None:
        return add_uploaded_item(catalog, fields, data, filename)
    external = fields.id or content_hash(data)[:16]
    item_id = writer.item_id(external)
    if len(item_id) > MAX_ID_CHARS:
        raise HTTPException(422, f"id: {len(item_id)} characters with the vendor's prefix, "
                                 f"above {MAX_ID_CHARS}")
    added = add_uploaded_item(catalog, fields.model_copy(update={"id": item_id}), data, filename)
    vendors.set_owner(writer.vendor, added.id, external)
    return added


def replace_photo(catalog: Catalog, item_id: str, data: bytes, filename: str) -> Item:
    """Give the item the uploaded photo (saved in the catalog's uploads folder); the old
    photo's file is deleted when the API stored it."""
    old = catalog.get(item_id)
    path, existed = save_upload(catalog, data, filename)
    try:
        changed = catalog.replace_image(item_id, data, path)
    except BaseException:
        if not existed:
            path.unlink(missing_ok=True)
        raise
    if changed.image_hash != old.image_hash:
        forget_upload(catalog, old)
    return changed


# -- bulk upsert -------------------------------------------------------------------------------


class RowError(BaseModel):
    field: str
    reason: str


class BulkRow(BaseModel):
    line: int = Field(description="Line of the JSONL file (1 = the first).")
    id: str = Field("", description="The item's catalog id (a vendor's: `<vendor>:<id>`).")
    status: Literal["created", "updated", "rejected"]
    errors: list[RowError] = Field(default_factory=list)


class BulkReport(BaseModel):
    created: int = 0
    updated: int = 0
    rejected: int = 0
    rows: list[BulkRow] = Field(default_factory=list)


@dataclass
class _Photos:
    """Uploaded photos by file name (a row's `image` names one, or its base name does)."""

    by_name: dict[str, bytes] = field(default_factory=dict)

    def get(self, image: str) -> bytes | None:
        found = self.by_name.get(image)
        if found is None:
            found = self.by_name.get(PurePosixPath(image.replace("\\", "/")).name)
        return found


def read_rows(data: bytes, max_rows: int) -> list[RawRow]:
    """The rows of a JSON Lines body, read as `lookalike ingest` reads a .jsonl file; a body
    of more than `max_rows` rows is refused whole (422), before anything is stored."""
    with tempfile.TemporaryDirectory(prefix="lookalike-bulk-") as tmp:
        path = Path(tmp) / "rows.jsonl"
        path.write_bytes(data)
        rows: list[RawRow] = []
        for row in read_metadata(path):
            rows.append(row)
            if len(rows) > max_rows:
                raise HTTPException(422, f"more than {max_rows} rows: send at most {max_rows} "
                                         "per request (LOOKALIKE_BULK_MAX_ROWS)")
    if not rows:
        raise HTTPException(422, "the rows file holds no rows (JSON Lines: one item a line)")
    return rows


def _rejected(line: int, item_id: str, errors: list[tuple[str, str]]) -> BulkRow:
    return BulkRow(line=line, id=item_id, status="rejected",
                   errors=[RowError(field=f, reason=r) for f, r in errors])


def _from_rejections(line: int, rejections: list[Rejection]) -> BulkRow:
    return _rejected(line, rejections[0].item_id if rejections else "",
                     [(r.field, r.reason) for r in rejections])


def _update_of(item: ItemIn) -> ItemUpdate:
    """The whole row as a change: every field, a missing one emptied."""
    values: dict[str, Any] = item.model_dump(include=set(ItemUpdate.model_fields))
    return ItemUpdate(**values)


def _upsert_one(catalog: Catalog, vendors: Vendors, writer: Writer, raw: RawRow,
                photos: _Photos) -> BulkRow:
    line = raw.number
    checked = validate_row(raw)
    if not isinstance(checked, ItemIn):
        return _from_rejections(line, checked)
    external = checked.id or ""
    item_id = writer.item_id(external)
    if len(item_id) > MAX_ID_CHARS:
        return _rejected(line, item_id, [("id", f"{len(item_id)} characters with the vendor's "
                                                f"prefix, above {MAX_ID_CHARS}")])
    data = photos.get(checked.image)
    try:
        try:
            catalog.get(item_id)
        except ItemNotFoundError:
            if data is None:
                return _rejected(line, item_id, [("image", f"a new item needs its photo: no "
                                                  f"uploaded file named {checked.image!r}")])
            fields = ItemCreate(**checked.model_dump(exclude={"image"}))
            add_item(catalog, vendors, writer, fields.model_copy(update={"id": external}),
                     data, checked.image)
            return BulkRow(line=line, id=item_id, status="created")
        if not vendors.may_change(writer.vendor, item_id):
            return _rejected(line, item_id, [("id", "the item is another vendor's, or no "
                                              "vendor's (only the admin key may change it)")])
        if data is not None:  # first: a photo refused (a duplicate, not an image) changes nothing
            replace_photo(catalog, item_id, data, checked.image)
        catalog.update_item(item_id, _update_of(checked))
        return BulkRow(line=line, id=item_id, status="updated")
    except ImageLoadError as exc:
        return _rejected(line, item_id, [("image", exc.reason)])
    except (DuplicateItemError, HTTPException) as exc:
        reason = exc.detail if isinstance(exc, HTTPException) else str(exc)
        return _rejected(line, item_id, [("image" if "image" in str(reason) else "id",
                                          str(reason))])
    except LookalikeError as exc:
        return _rejected(line, item_id, [("row", str(exc))])


def bulk_upsert(catalog: Catalog, vendors: Vendors, writer: Writer, rows: list[RawRow],
                photos: dict[str, bytes]) -> BulkReport:
    """Create or update every valid row (see the module's docstring); a result per row."""
    report = BulkReport()
    found = _Photos(photos)
    for raw in rows:
        result = _upsert_one(catalog, vendors, writer, raw, found)
        report.rows.append(result)
        if result.status == "created":
            report.created += 1
        elif result.status == "updated":
            report.updated += 1
        else:
            report.rejected += 1
    return report

