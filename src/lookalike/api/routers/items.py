"""Catalog items: list, get, image, similar; add / update / delete one item, replace its photo,
upsert many (the admin key, or a vendor's key for its own items)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile, status
from fastapi.responses import FileResponse

from lookalike.api import uploads
from lookalike.api import vendors as writes
from lookalike.api.deps import (
    CatalogDep,
    CpuDep,
    QueryColourWeight,
    QueryDiversity,
    QueryFiltersDep,
    SettingsDep,
    SortDep,
    page_size,
    read_upload,
    reject_unknown_form,
    reject_unknown_query,
)
from lookalike.api.schemas import (
    OFFSET,
    ItemCreate,
    ItemPage,
    ItemPublic,
    ItemUpdate,
    SearchResponse,
)
from lookalike.api.vendors import BulkReport, VendorsDep, WriterDep
from lookalike.errors import ImageLoadError
from lookalike.recommend import ranking_bound, similar, with_probe

router = APIRouter(
    prefix="/items", tags=["items"],
    dependencies=[Depends(reject_unknown_query), Depends(reject_unknown_form)],
)

#: Largest `offset` of a page (far beyond any catalog, far below SQLite's integer range).
MAX_OFFSET = 1_000_000_000


@router.get("", response_model=ItemPage, summary="List items (filters, sorting, pagination)",
            description="Sold items are left out unless `include_sold` (or `state=sold`); "
            "`sort` other than relevance orders the whole catalog (relevance: catalog order).")
def list_items(
    catalog: CatalogDep,
    filters: QueryFiltersDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    sort: SortDep = "relevance",
) -> ItemPage:
    items = catalog.items(filters, offset, limit, sort)
    return ItemPage(items=[ItemPublic.of(i) for i in items], total=catalog.store.count(filters),
                    offset=offset, limit=limit, sort=sort, notes=catalog.notes(filters, sort))


@router.get("/{item_id}", response_model=ItemPublic, summary="One item")
def get_item(item_id: str, catalog: CatalogDep) -> ItemPublic:
    return ItemPublic.of(catalog.get(item_id))


@router.get(
    "/{item_id}/image",
    response_class=FileResponse,
    summary="The item's photo",
    responses={200: {"content": {"image/*": {}}}},
)
def item_image(item_id: str, catalog: CatalogDep) -> FileResponse:
    # Only ever the file the catalog recorded for this item: no path comes from the request.
    try:
        path = catalog.image_file(catalog.get(item_id))
    except ImageLoadError:
        raise HTTPException(404, f"the image of item {item_id!r} is missing on the server"
                            ) from None
    if not path.is_file():
        raise HTTPException(404, f"the image of item {item_id!r} is missing on the server")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


@router.get("/{item_id}/similar", response_model=SearchResponse, summary="More like this item")
def similar_items(
    item_id: str,
    catalog: CatalogDep,
    settings: SettingsDep,
    filters: QueryFiltersDep,
    k: Annotated[int, Query(ge=1, le=1000, description="How many results (a page).")] = 12,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=OFFSET)] = 0,
    colour_weight: QueryColourWeight = None,
    diversity: QueryDiversity = None,
    sort: SortDep = "relevance",
) -> SearchResponse:
    bound = ranking_bound(settings, diversity, sort)
    size = page_size(offset, k, bound)
    results = similar(catalog, item_id, with_probe(offset, size, bound), filters,
                      colour_weight=colour_weight, diversity=diversity, offset=offset, sort=sort)
    return SearchResponse.of(results, offset, size, bound, sort, catalog.notes(filters, sort))


_OWNER = " A vendor's key changes only the vendor's own items (403 otherwise)."


@router.post(
    "",
    response_model=ItemPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Add one item with its photo (admin or vendor)",
    description="Multipart: `image` (the photo) and `item` (JSON metadata). The photo is "
    "encoded and added to the index at once; nothing is rebuilt. A vendor's item gets the id "
    "`<vendor>:<id>` and belongs to the vendor. The same photo again, or a "
    "repost of a stored item's photo (resized, recompressed, cropped by a few percent, "
    "mirrored), answers 409 with the original's id in `original_id`; with the `duplicates` "
    "setting `flag` it is added with `duplicate_of` set instead.",
    responses={409: {"description": "Same id, same photo, or a repost of a stored item "
                     "(`original_id` names it)."}},
)
async def add_item(
    writer: WriterDep,
    vendors: VendorsDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    cpu: CpuDep,
    image: Annotated[UploadFile, File(description="The item's photo.")],
    item: Annotated[str, Form(description="ItemCreate as JSON.")] = "{}",
) -> ItemPublic:
    fields = ItemCreate.model_validate_json(item)
    data = await read_upload(image, settings.upload_max_bytes)
    added = await cpu(writes.add_item, catalog, vendors, writer, fields, data,
                      image.filename or "")
    return ItemPublic.of(added)


@router.post(
    "/bulk",
    response_model=BulkReport,
    summary="Create or update many items from JSON Lines (admin or vendor)",
    description="Multipart: `rows`, a JSON Lines file (one item a line, the fields of a "
    "metadata file, validated as `lookalike ingest` validates them), and `images`, the photos "
    "(repeat the part; a row's `image` names one by file name). A row whose id the writer "
    "already has updates that item (the row is the whole item: a field it leaves out is "
    "emptied; a photo sent for it replaces the old one); a new id needs its photo. At most "
    "`bulk_max_rows` rows; every row gets a result with its line number, and one bad row "
    "never stops the others." + _OWNER,
)
async def bulk_upsert(
    writer: WriterDep,
    vendors: VendorsDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    cpu: CpuDep,
    rows: Annotated[UploadFile, File(description="JSON Lines: one item a line.")],
    images: Annotated[list[UploadFile] | None, File(description="The rows' photos.")] = None,
) -> BulkReport:
    budget = settings.upload_max_bytes
    body = await read_upload(rows, budget, settings.upload_max_bytes)
    budget -= len(body)
    photos: dict[str, bytes] = {}
    for upload in images or []:
        data = await read_upload(upload, budget, settings.upload_max_bytes)
        budget -= len(data)
        photos[upload.filename or ""] = data
    parsed = await cpu(writes.read_rows, body, settings.bulk_max_rows)
    return await cpu(writes.bulk_upsert, catalog, vendors, writer, parsed, photos)


@router.patch("/{item_id}", response_model=ItemPublic,
              summary="Change an item's metadata, e.g. its state (admin or owner)",
              description='JSON with the fields to change, e.g. `{"state": "sold"}` '
              "(available, reserved, sold: a sold item leaves every search, browse and feed), "
              '`{"rating": 4.5, "reviews": 12}`, `{"price": 30, "currency": "USD"}`.' + _OWNER)
def update_item(item_id: str, change: ItemUpdate, writer: WriterDep, vendors: VendorsDep,
                catalog: CatalogDep) -> ItemPublic:
    writes.ensure_may_change(catalog, vendors, writer, item_id)
    return ItemPublic.of(catalog.update_item(item_id, change))


@router.put("/{item_id}/image", response_model=ItemPublic,
            summary="Replace an item's photo (admin or owner)",
            description="Multipart: `image`, the new photo. It is encoded and replaces the old "
            "one in the index at once; the item's fields stay." + _OWNER)
async def replace_image(
    item_id: str,
    writer: WriterDep,
    vendors: VendorsDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    cpu: CpuDep,
    image: Annotated[UploadFile, File(description="The new photo.")],
) -> ItemPublic:
    writes.ensure_may_change(catalog, vendors, writer, item_id)
    data = await read_upload(image, settings.upload_max_bytes)
    changed = await cpu(writes.replace_photo, catalog, item_id, data, image.filename or "")
    return ItemPublic.of(changed)


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete an item (admin or owner)", description=_OWNER.strip())
def delete_item(item_id: str, writer: WriterDep, vendors: VendorsDep,
                catalog: CatalogDep) -> None:
    writes.ensure_may_change(catalog, vendors, writer, item_id)
    uploads.delete_item(catalog, item_id)
