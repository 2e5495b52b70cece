"""Search: by photo, by several photos (a style profile), by example items; steering."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile

from lookalike.api import queries
from lookalike.api.deps import (
    CatalogDep,
    CpuDep,
    FormColourWeight,
    FormDiversity,
    FormFiltersDep,
    FormSort,
    FormSteeringDep,
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
    Directions,
    RecommendRequest,
    SearchResponse,
    understood,
)
from lookalike.recommend import ranking_bound, steering_directions, with_probe

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
    "`size`, `currency`, `state` repeatable; `price_min`, `price_max` in the base currency, "
    "`kids`, `second_hand`, `min_sustainability`, `min_brand_rating`, `min_brand_people`, "
    "`min_brand_planet`, `min_brand_animals`, `min_rating`, `include_sold`), `sort`, `k` and "
    "`offset` (pages of one ranking: `next_offset` of the answer, up to its `bound`), and the "
    "controls: `colour_weight` (match colour), `diversity`, `positive` / `negative` item ids, "
    "`steer` (direction=strength); `text`: words about the photo (\"this, but in red\"): "
    "constraint words (category, brand, price, second-hand, size...) filter, appearance words "
    "(colour, pattern, usage...) steer; the answer's `understood` says how.",
)
async def search_photo(
    cpu: CpuDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    filters: FormFiltersDep,
    steering: FormSteeringDep,
    photo: Annotated[UploadFile, File(description="The photo to match.")],
    k: K = 12,
    offset: Offset = 0,
    sort: FormSort = "relevance",
    text: Text = None,
) -> SearchResponse:
    bound = ranking_bound(settings, steering.diversity, sort)
    size = page_size(offset, k, bound)
    data = await read_upload(photo, settings.upload_max_bytes)
    ask = with_probe(offset, size, bound)
    if text and text.strip():
        found = await cpu.search(queries.search_photo_text, data, text, ask, filters, steering,
                                 offset, sort)
        return SearchResponse.of(
            found.results, offset, size, bound, sort, catalog.notes(found.filters, sort)
        ).model_copy(update={"understood": understood(found)})
    results = await cpu.search(queries.search_photo, data, ask, filters, steering, offset, sort)
    return SearchResponse.of(results, offset, size, bound, sort, catalog.notes(filters, sort))


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
    catalog: CatalogDep,
    settings: SettingsDep,
    filters: FormFiltersDep,
    photos: Annotated[list[UploadFile], File(description="Photos of clothes the shopper likes.")],
    k: K = 12,
    colour_weight: FormColourWeight = None,
    diversity: FormDiversity = None,
    sort: FormSort = "relevance",
) -> SearchResponse:
    if len(photos) > settings.profile_max_photos:
        raise HTTPException(422, f"at most {settings.profile_max_photos} photos per profile")
    bound = ranking_bound(settings, diversity, sort)
    size = page_size(0, k, bound)
    data: list[bytes] = []
    for p in photos:  # one budget for all the photos together
        budget = settings.upload_max_bytes - sum(map(len, data))
        data.append(await read_upload(p, budget, settings.upload_max_bytes))
    results = await cpu.search(queries.search_profile, data, size, filters, colour_weight,
                               diversity, sort)
    return SearchResponse.of(results, bound=bound, sort=sort, notes=catalog.notes(filters, sort))


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
    bound = ranking_bound(settings, request.diversity, request.sort)
    size = page_size(request.offset, request.k, bound)
    results = queries.search_items(catalog, with_probe(request.offset, size, bound),
                                   request.filters, request, request.offset, request.sort)
    return SearchResponse.of(results, request.offset, size, bound, request.sort,
                             catalog.notes(request.filters, request.sort))


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
    catalog: CatalogDep,
    settings: SettingsDep,
    filters: QueryFiltersDep,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="The words.")],
    k: Annotated[int, Query(ge=1, le=1000, description="How many results (a page).")] = 12,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description=OFFSET)] = 0,
    sort: SortDep = "relevance",
) -> SearchResponse:
    bound = ranking_bound(settings, None, sort)
    size = page_size(offset, k, bound)
    found = await cpu.search(queries.search_words, q, with_probe(offset, size, bound), filters,
                             offset, sort)
    return SearchResponse.of(
        found.results, offset, size, bound, sort, catalog.notes(found.filters, sort)
    ).model_copy(update={"understood": understood(found)})
