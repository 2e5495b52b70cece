"""Catalog items: list, get, image, similar; add / update / delete one item (admin key)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile, status
from fastapi.responses import FileResponse

from lookalike.api import uploads
from lookalike.api.deps import (
    AdminDep,
    CatalogDep,
    CpuDep,
    QueryFiltersDep,
    SettingsDep,
    SortDep,
    page_size,
    read_upload,
    reject_unknown_form,
    reject_unknown_query,
    with_probe,
)
from lookalike.api.schemas import (
    COLOUR_WEIGHT,
    DIVERSITY,
    OFFSET,
    ItemCreate,
    ItemPage,
    ItemPublic,
    ItemUpdate,
    SearchResponse,
)
from lookalike.recommend import ranking_bound

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
    path = Path(catalog.get(item_id).image_path)
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
    colour_weight: Annotated[
        float | None, Query(ge=0, le=1, allow_inf_nan=False, description=COLOUR_WEIGHT)
    ] = None,
    diversity: Annotated[
        float | None, Query(ge=0, le=1, allow_inf_nan=False, description=DIVERSITY)
    ] = None,
    sort: SortDep = "relevance",
) -> SearchResponse:
    bound = ranking_bound(settings, diversity, sort)
    size = page_size(offset, k, bound)
    results = catalog.similar(item_id, with_probe(offset, size, bound), filters,
                              colour_weight=colour_weight, diversity=diversity, offset=offset,
                              sort=sort)
    return SearchResponse.of(results, offset, size, bound, sort, catalog.notes(filters, sort))


@router.post(
    "",
    response_model=ItemPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Add one item with its photo (admin)",
    description="Multipart: `image` (the photo) and `item` (JSON metadata). The photo is "
    "encoded and added to the index at once; nothing is rebuilt. The same photo again, or a "
    "repost of a stored item's photo (resized, recompressed, cropped by a few percent, "
    "mirrored), answers 409 with the original's id in `original_id`; with the `duplicates` "
    "setting `flag` it is added with `duplicate_of` set instead.",
    responses={409: {"description": "Same id, same photo, or a repost of a stored item "
                     "(`original_id` names it)."}},
)
async def add_item(
    _: AdminDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    cpu: CpuDep,
    image: Annotated[UploadFile, File(description="The item's photo.")],
    item: Annotated[str, Form(description="ItemCreate as JSON.")] = "{}",
) -> ItemPublic:
    fields = ItemCreate.model_validate_json(item)
    data = await read_upload(image, settings.upload_max_bytes)
    added = await cpu(uploads.add_uploaded_item, catalog, fields, data, image.filename or "")
    return ItemPublic.of(added)


@router.patch("/{item_id}", response_model=ItemPublic,
              summary="Change an item's metadata, e.g. its state (admin)",
              description='JSON with the fields to change, e.g. `{"state": "sold"}` '
              "(available, reserved, sold: a sold item leaves every search, browse and feed), "
              '`{"rating": 4.5, "reviews": 12}`, `{"price": 30, "currency": "USD"}`.')
def update_item(item_id: str, change: ItemUpdate, _: AdminDep, catalog: CatalogDep) -> ItemPublic:
    return ItemPublic.of(catalog.update_item(item_id, change))


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete an item (admin)")
def delete_item(item_id: str, _: AdminDep, catalog: CatalogDep) -> None:
    uploads.delete_item(catalog, item_id)
