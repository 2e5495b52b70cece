"""Turn a request's photo(s), example items and steering into a library call.

A plain photo search goes straight to `Catalog.search_image` (the fast path); examples,
steering, colour weight or diversity make it a `lookalike.recommend.Query`."""

from __future__ import annotations

import numpy as np

from lookalike.api.schemas import Steering
from lookalike.catalog import Catalog, Filters, Result
from lookalike.recommend import Query, profile_search, recommend
from lookalike.recommend.words import TextSearch, search_text


def _query(catalog: Catalog, steering: Steering) -> tuple[Query, list[int]]:
    """The query with the example items in it, and their rowids (kept out of the results)."""
    query = Query(steer=dict(steering.steer), colour_weight=steering.colour_weight,
                  diversity=steering.diversity)
    for item_id in steering.positive:
        query.add_item(catalog, item_id, liked=True)
    for item_id in steering.negative:
        query.add_item(catalog, item_id, liked=False)
    examples = [catalog.store.rowid_of(i) for i in (*steering.positive, *steering.negative)]
    return query, examples


def search_photo(
    catalog: Catalog, photo: bytes, k: int, filters: Filters, steering: Steering
) -> list[Result]:
    if steering.is_plain():
        return catalog.search_image(photo, k, filters)
    query, examples = _query(catalog, steering)
    query.add_photo(catalog, photo, liked=True)
    return recommend(catalog, query, k, filters, exclude=examples)


def search_items(catalog: Catalog, k: int, filters: Filters, steering: Steering) -> list[Result]:
    """More like `steering.positive`, less like `steering.negative` (the examples excluded)."""
    query, examples = _query(catalog, steering)
    return recommend(catalog, query, k, filters, exclude=examples)


def search_profile(catalog: Catalog, photos: list[bytes], k: int, filters: Filters) -> list[Result]:
    """Several photos of a shopper's clothes → one list interleaving their style prototypes."""
    vectors = np.stack([catalog.embed(data) for data in photos])
    return profile_search(catalog, vectors, k, filters)


def search_photo_text(
    catalog: Catalog, photo: bytes, text: str, k: int, filters: Filters, steering: Steering
) -> TextSearch:
    """A photo and words ("this, but in red"): constraint words filter, appearance words steer
    the photo query (`lookalike.recommend.words.search_text`)."""
    query, _ = _query(catalog, steering)
    return search_text(catalog, text, k, filters, photo=photo, query=query)


def search_words(catalog: Catalog, text: str, k: int, filters: Filters) -> TextSearch:
    """Words alone: they filter, and the items kept are ranked by their prototype + steering."""
    return search_text(catalog, text, k, filters)
