"""Turn a request's photo(s), example items and controls into a library call. Every search is a
`lookalike.recommend.Query`, so colour weight and diversity (the server's defaults unless the
request sets them) apply to each one alike."""

from __future__ import annotations

import numpy as np

from lookalike.api.schemas import Steering
from lookalike.catalog import Catalog, Filters, Result
from lookalike.recommend import Query, photo_palette, profile_search, recommend
from lookalike.recommend.words import TextSearch, search_text


def _query(catalog: Catalog, steering: Steering) -> Query:
    """The query with the example items in it (`recommend` keeps them out of the results)."""
    query = Query(steer=dict(steering.steer), colour_weight=steering.colour_weight,
                  diversity=steering.diversity)
    for item_id in steering.positive:
        query.add_item(catalog, item_id, liked=True)
    for item_id in steering.negative:
        query.add_item(catalog, item_id, liked=False)
    return query


def search_photo(
    catalog: Catalog, photo: bytes, k: int, filters: Filters, steering: Steering, offset: int = 0,
    sort: str = "relevance",
) -> list[Result]:
    query = _query(catalog, steering)
    query.add_photo(catalog, photo, liked=True)
    return recommend(catalog, query, k, filters, offset=offset, sort=sort)


def search_items(
    catalog: Catalog, k: int, filters: Filters, steering: Steering, offset: int = 0,
    sort: str = "relevance",
) -> list[Result]:
    """More like `steering.positive`, less like `steering.negative` (the examples excluded)."""
    return recommend(catalog, _query(catalog, steering), k, filters, offset=offset, sort=sort)


def search_profile(
    catalog: Catalog,
    photos: list[bytes],
    k: int,
    filters: Filters,
    colour_weight: float | None = None,
    diversity: float | None = None,
    sort: str = "relevance",
) -> list[Result]:
    """Several photos of a shopper's clothes → one list interleaving their style prototypes."""
    images = [catalog.load_photo(data) for data in photos]
    vectors = np.stack([catalog.embed_image(img) for img in images])
    return profile_search(catalog, vectors, k, filters, palettes=[photo_palette(i) for i in images],
                          colour_weight=colour_weight, diversity=diversity, sort=sort)


def search_photo_text(
    catalog: Catalog, photo: bytes, text: str, k: int, filters: Filters, steering: Steering,
    offset: int = 0, sort: str = "relevance",
) -> TextSearch:
    """A photo and words ("this, but in red"): constraint words filter, appearance words steer
    the photo query (`lookalike.recommend.words.search_text`)."""
    return search_text(catalog, text, k, filters, photo=photo, query=_query(catalog, steering),
                       offset=offset, sort=sort)


def search_words(
    catalog: Catalog, text: str, k: int, filters: Filters, offset: int = 0,
    sort: str = "relevance",
) -> TextSearch:
    """Words alone: they filter, and the items kept are ranked by their prototype + steering."""
    return search_text(catalog, text, k, filters, offset=offset, sort=sort)
