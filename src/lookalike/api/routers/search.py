"""Search: by photo, by several photos (a style profile), by example items; steering."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile

from lookalike.api import queries
from lookalike.api.deps import (
    CatalogDep,
    CpuDep,
    FormFiltersDep,
    FormSteeringDep,
    QueryFiltersDep,
    SettingsDep,
    page_size,
    read_upload,
    reject_unknown_form,
    reject_unknown_query,
)
from lookalike.api.schemas import (
    COLOUR_WEIGHT,
    DIVERSITY,
    OFFSET,
    Directions,
    RecommendRequest,
    SearchResponse,
    understood,
)
from lookalike.recommend import steering_directions

router = APIRouter(
    prefix="/search", tags=["search"],
    dependencies=[Depends(reject_unknown_query), Depends(reject_unknown_form)],
)

K = Annotated[int, Form(ge=1, le=1000, description="How many results (a page).")]
Offset = Annotated[int, Form(ge=0, le=1_000_000, description=OFFSET)]
Text = Annotated[str | None, Form(max_length=2000, description="Words about the photo.")]


@router.post(
    "",
    response_model=SearchResponse,
    summary="Look-alikes of a photo",
    description="Multipart: `photo` plus optional filters (`category`, `colour`, `brand`, "
    "`size` repeatable; `price_min`, `price_max`, `kids`, `second_hand`, `min_sustainability`), "
    "`k` and `offset` (pages of one ranking: `next_offset` of the answer), and the controls: "
    "`colour_weight` (match colour), `diversity`, `positive` / `negative` item ids, `steer` "
    "(direction=strength); `text`: words about the photo (\"this, but in red\"): "
    "constraint words (category, brand, price, second-hand, size...) filter, appearance words "
    "(colour, pattern, usage...) steer; the answer's `understood` says how.",
)
async def search_photo(
    cpu: CpuDep,
    settings: SettingsDep,
    filters: FormFiltersDep,
    steering: FormSteeringDep,
    photo: Annotated[UploadFile, File(description="The photo to match.")],
    k: K = 12,
    offset: Offset = 0,
    text: Text = None,
) -> SearchResponse:
    size = page_size(settings, offset, k)
    data = await read_upload(photo, settings.upload_max_bytes)
    if text and text.strip():
        found = await cpu.search(queries.search_photo_text, data, text, size, filters, steering,
                                 offset)
        return SearchResponse.of(found.results, offset, size, settings.max_results).model_copy(
            update={"understood": understood(found)})
    results = await cpu.search(queries.search_photo, data, size, filters, steering, offset)
    return SearchResponse.of(results, offset, size, settings.max_results)


@router.post(
    "/profile",
    response_model=SearchResponse,
    summary="Look-alikes of a style profile (several photos)",
    description="Multipart: several `photos` of clothes a shopper likes. They are summarised "
    "into a few style prototypes and the results interleave them; `colour_weight` matches "
    "each prototype's garment colours. The photos together may weigh as much as one upload "
    "(`upload_max_bytes`, 10 MiB by default).",
)
async def search_profile(
    cpu: CpuDep,
    settings: SettingsDep,
    filters: FormFiltersDep,
    photos: Annotated[list[UploadFile], File(description="Photos of clothes the shopper likes.")],
    k: K = 12,
    colour_weight: Annotated[
        float | None, Form(ge=0, le=1, allow_inf_nan=False, description=COLOUR_WEIGHT)
    ] = None,
    diversity: Annotated[
        float | None, Form(ge=0, le=1, allow_inf_nan=False, description=DIVERSITY)
    ] = None,
) -> SearchResponse:
    if len(photos) > settings.profile_max_photos:
        raise HTTPException(422, f"at most {settings.profile_max_photos} photos per profile")
    size = page_size(settings, 0, k)
    data: list[bytes] = []
    for p in photos:  # one budget for all the photos together
        budget = settings.upload_max_bytes - sum(map(len, data))
        data.append(await read_upload(p, budget, settings.upload_max_bytes))
    results = await cpu.search(queries.search_profile, data, size, filters, colour_weight,
                               diversity)
    return SearchResponse.of(results)


@router.post(
    "/items",
    response_model=SearchResponse,
    summary="More like these items, less like those",
)
def search_items(
    request: RecommendRequest, catalog: CatalogDep, settings: SettingsDep
) -> SearchResponse:
    if not request.positive and not request.negative:
        raise HTTPException(422, "give at least one positive or negative item id")
    size = page_size(settings, request.offset, request.k)
    results = queries.search_items(catalog, size, request.filters, request, request.offset)
    return SearchResponse.of(results, request.offset, size, settings.max_results)


@router.get("/directions", response_model=Directions, summary="Steering directions")
def directions(catalog: CatalogDep) -> Directions:
    return Directions(directions=steering_directions(catalog))


@router.get(
    "/text",
    response_model=SearchResponse,
    summary="Items that words describe",
    description="`q`: what the shopper wants in words (\"red floral dress under 50\", \"second "
    "hand formal shirts\"), mapped onto this catalog's own categories, colours, brands and "
    "attributes (synonyms, plurals, fuzzy). The words filter; the items kept are ranked by "
    "their typical look (the mean of their embeddings) and the appearance words' steering "
    "directions. Filters given as parameters win over the words'. `understood` says what "
    "was understood and which words were ignored.",
)
async def search_text(
    cpu: CpuDep,
    settings: SettingsDep,
    filters: QueryFiltersDep,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="The words.")],
    k: Annotated[int, Query(ge=1, le=1000, description="How many results (a page).")] = 12,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description=OFFSET)] = 0,
) -> SearchResponse:
    size = page_size(settings, offset, k)
    found = await cpu.search(queries.search_words, q, size, filters, offset)
    return SearchResponse.of(found.results, offset, size, settings.max_results).model_copy(
        update={"understood": understood(found)})
