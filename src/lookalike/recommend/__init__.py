"""Recommendation queries: style profiles, the swipe feed, Rocchio + steering, MMR diversity.

    results = search_image(catalog, Path("query.jpg"), k=10)        # look-alikes of a photo
    results = similar(catalog, "sku-1234", k=10)                     # more like this item
    results = recommend(catalog, Query(positives=[v1, v2], steer={"colour:red": 0.8}), k=10)
    results = profile_search(catalog, photo_vectors, k=10)
    feed = Feed(catalog, Users(catalog.store)); feed.next(user); feed.swipe(user, item_id, True)
    found = search_text(catalog, "red floral dress under 50", k=10)   # words (+ photo=...)
"""

from lookalike.recommend.diversity import mean_pairwise_distance, mmr, mmr_reference
from lookalike.recommend.feed import Feed, update_preference
from lookalike.recommend.profile import cluster_profile, interleave, profile_search
from lookalike.recommend.query import (
    EmptyQueryError,
    Query,
    UnknownDirectionError,
    photo_palette,
    ranking_bound,
    recommend,
    rocchio,
    search_image,
    similar,
    steering_directions,
    with_probe,
)
from lookalike.recommend.words import (
    CatalogVocabulary,
    TextEncoder,
    TextIntent,
    TextSearch,
    search_text,
)

__all__ = [
    "CatalogVocabulary",
    "EmptyQueryError",
    "Feed",
    "Query",
    "TextEncoder",
    "TextIntent",
    "TextSearch",
    "UnknownDirectionError",
    "cluster_profile",
    "interleave",
    "mean_pairwise_distance",
    "mmr",
    "mmr_reference",
    "photo_palette",
    "profile_search",
    "ranking_bound",
    "recommend",
    "rocchio",
    "search_image",
    "search_text",
    "similar",
    "steering_directions",
    "update_preference",
    "with_probe",
]
