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
    read_upload,
    reject_unknown_form,
    reject_unknown_query,
)
from lookalike.api.schemas import Directions, RecommendRequest, SearchResponse, understood
from lookalike.recommend import steering_directions

router = APIRouter(
    prefix="/search", tags=["search"],
    dependencies=[Depends(reject_unknown_query), Depends(reject_unknown_form)],
)

K = Annotated[int, Form(ge=1, le=1000, description="How many results.")]
Text = Annotated[str | None, Form(max_length=2000, description="Words about the photo.")]


@router.post(
    "",
    response_model=SearchResponse,
    summary="Look-alikes of a photo",
    description="Multipart: `photo` plus optional filters (`category`, `colour`, `brand`, "
    "`size` repeatable; `price_min`, `price_max`, `kids`, `second_hand`, `min_sustainability`), "
    "`k`, and steering: `positive` / `negative` item ids, `steer` (direction=strength), "
    "`colour_weight`, `diversity`; `text`: words about the photo (\"this, but in red\"): "
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
    text: Text = None,
) -> SearchResponse:
    data = await read_upload(photo, settings.upload_max_bytes)
    if text and text.strip():
        found = await cpu.search(queries.search_photo_text, data, text,
                                 min(k, settings.api_max_k), filters, steering)
        return SearchResponse.of(found.results).model_copy(
            update={"understood": understood(found)})
    results = await cpu.search(
        queries.search_photo, data, min(k, settings.api_max_k), filters, steering
    )
    return SearchResponse.of(results)


@router.post(
    "/profile",
    response_model=SearchResponse,
    summary="Look-alikes of a style profile (several photos)",
    description="Multipart: several `photos` of clothes a shopper likes. They are summarised "
    "into a few style prototypes and the results interleave them.",
)
async def search_profile(
    cpu: CpuDep,
    settings: SettingsDep,
    filters: FormFiltersDep,
    photos: Annotated[list[UploadFile], File(description="Photos of clothes the shopper likes.")],
    k: K = 12,
) -> SearchResponse:
    if len(photos) > settings.profile_max_photos:
        raise HTTPException(422, f"at most {settings.profile_max_photos} photos per profile")
    data = [await read_upload(p, settings.upload_max_bytes) for p in photos]
    results = await cpu.search(queries.search_profile, data, min(k, settings.api_max_k), filters)
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
    return SearchResponse.of(
        queries.search_items(catalog, min(request.k, settings.api_max_k), request.filters, request)
    )


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
    k: Annotated[int, Query(ge=1, le=1000, description="How many results.")] = 12,
) -> SearchResponse:
    found = await cpu.search(queries.search_words, q, min(k, settings.api_max_k), filters)
    return SearchResponse.of(found.results).model_copy(update={"understood": understood(found)})
