"""Words → filters and steering: synonyms, plurals, fuzzy matching, price and condition phrases,
words reported when not understood, bounded input; then searches with words on the bundled
sample (fake encoder)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lookalike.catalog import Catalog, Filters
from lookalike.config import Settings
from lookalike.demo import build_demo_catalog, sample_images
from lookalike.recommend import Query
from lookalike.recommend.words import (
    CatalogVocabulary,
    TextEncoder,
    TextIntent,
    TextTooLongError,
    merge_filters,
    search_text,
)

VALUES = {
    "category": ["Dress", "Shoes", "T-Shirt", "Tshirts", "Pants", "Hoodie", "Kurtas", "Jeans"],
    "colour": ["red", "navy", "grey", "off white", "black", "maroon"],
    "brand": ["Northwind", "Maison Ardent"],
    "pattern": ["floral", "striped", "checked"],
    "usage": ["Casual", "Formal", "Sports", "Ethnic"],
    "gender": ["Men", "Women", "Boys"],
}
DIRECTIONS = ["colour:red", "colour:navy", "colour:black", "pattern:floral", "usage:Formal",
              "category:Dress"]


@pytest.fixture
def vocab() -> CatalogVocabulary:
    return CatalogVocabulary(VALUES, DIRECTIONS, median_price=40.0, max_chars=200)


def understood(intent: TextIntent) -> dict[str, tuple[str, ...]]:
    return {m.field: m.values for m in intent.matches if not m.negated}


def test_the_vocabulary_mapper_is_a_text_encoder(vocab: CatalogVocabulary) -> None:
    assert isinstance(vocab, TextEncoder)
    assert vocab.encode_text("red dress").vector is None


def test_red_floral_dress(vocab: CatalogVocabulary) -> None:
    intent = vocab.encode_text("red floral dress")
    assert understood(intent) == {"colour": ("red",), "pattern": ("floral",),
                                  "category": ("Dress",)}
    assert intent.filters.category == ["Dress"] and intent.filters.colour == ["red"]
    assert intent.filters.attributes == {"pattern": ["floral"]}
    assert intent.steer == {"colour:red": 1.0, "pattern:floral": 1.0}  # appearance words steer
    assert intent.ignored == ()


@pytest.mark.parametrize(
    ("text", "field", "values", "how"),
    [
        ("DRESSES", "category", ("Dress",), "plural"),
        ("dress", "category", ("Dress",), "exact"),
        ("t-shirts", "category", ("T-Shirt", "Tshirts"), "plural"),
        ("tshirt", "category", ("T-Shirt", "Tshirts"), "exact"),
        ("tees", "category", ("T-Shirt", "Tshirts"), "synonym"),
        ("sneakers", "category", ("Shoes",), "synonym"),
        ("trousers", "category", ("Pants",), "synonym"),
        ("hoodies", "category", ("Hoodie",), "plural"),
        ("kurta", "category", ("Kurtas",), "exact"),
        ("Navy Blue", "colour", ("navy",), "synonym"),
        ("dark-blue", "colour", ("navy",), "synonym"),
        ("gray", "colour", ("grey",), "synonym"),
        ("Off-White", "colour", ("off white",), "exact"),
        ("burgundy", "colour", ("maroon",), "synonym"),
        ("stripes", "pattern", ("striped",), "synonym"),
        ("plaid", "pattern", ("checked",), "synonym"),
        ("office", "usage", ("Formal",), "synonym"),
        ("gym", "usage", ("Sports",), "synonym"),
        ("men's", "gender", ("Men",), "plural"),
        ("ladies", "gender", ("Women",), "synonym"),
        ("maison ardent", "brand", ("Maison Ardent",), "exact"),
        ("dres", "category", ("Dress",), "fuzzy"),
        ("flral", "pattern", ("floral",), "fuzzy"),
        ("hodie", "category", ("Hoodie",), "fuzzy"),
        ("Crème-free maroon", "colour", ("maroon",), "exact"),
    ],
)
def test_words_map_onto_the_catalogs_values(
    vocab: CatalogVocabulary, text: str, field: str, values: tuple[str, ...], how: str
) -> None:
    intent = vocab.encode_text(text)
    match = next(m for m in intent.matches if m.field == field)
    assert (match.values, match.how) == (values, how), match
    if how == "fuzzy":
        assert 0.85 <= match.score < 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("under 50", {"price_max": 50.0}),
        ("below €49.99", {"price_max": 49.99}),
        ("less than 30 euros", {"price_max": 30.0}),
        ("up to $80", {"price_max": 80.0}),
        ("<25", {"price_max": 25.0}),
        ("60 or less", {"price_max": 60.0}),
        ("over 20", {"price_min": 20.0}),
        ("at least 15,50 EUR", {"price_min": 15.5}),
        ("100 or more", {"price_min": 100.0}),
        ("between 20 and 40", {"price_min": 20.0, "price_max": 40.0}),
        ("from 40 to 20", {"price_min": 20.0, "price_max": 40.0}),
        ("between €20-€45", {"price_min": 20.0, "price_max": 45.0}),
        ("cheap", {"price_max": 40.0}),
        ("second hand", {"second_hand": True}),
        ("Second-Hand", {"second_hand": True}),
        ("pre-loved", {"second_hand": True}),
        ("used", {"second_hand": True}),
        ("vintage", {"second_hand": True}),
        ("brand new", {"second_hand": False}),
        ("not second hand", {"second_hand": False}),
        ("sustainable", {"min_sustainability": 4.0}),
        ("eco-friendly", {"min_sustainability": 4.0}),
        ("for kids", {"kids": True}),
        ("children's", {"kids": True}),
        ("adults", {"kids": False}),
        ("size M", {"size": ["M"]}),
        ("size 38", {"size": ["38"]}),
    ],
)
def test_price_condition_and_size_phrases(
    vocab: CatalogVocabulary, text: str, expected: dict[str, object]
) -> None:
    intent = vocab.encode_text(text)
    assert intent.filters.model_dump(exclude_defaults=True) == expected
    assert intent.ignored == ()


def test_unknown_words_are_reported_never_dropped(vocab: CatalogVocabulary) -> None:
    intent = vocab.encode_text("a sparkly sequinned red dress, please")
    assert intent.ignored == ("sparkly", "sequinned")
    assert set(intent.skipped) == {"a", "please"}
    assert understood(intent) == {"colour": ("red",), "category": ("Dress",)}
    teal = vocab.encode_text("teal")
    assert teal.ignored == ("teal",) and "no item has colour 'teal'" in teal.notes[0]
    assert not vocab.encode_text("zzz qqq").understood()


def test_not_steers_away_and_filters_nothing(vocab: CatalogVocabulary) -> None:
    intent = vocab.encode_text("dress, not black, without flowers")
    assert intent.steer == {"colour:black": -1.0, "pattern:floral": -1.0}  # category: a filter
    assert intent.filters.category == ["Dress"] and not intent.filters.colour
    assert intent.filters.attributes == {}


def test_with_a_photo_only_constraints_filter(vocab: CatalogVocabulary) -> None:
    intent = vocab.encode_text("this, but in red, formal, second hand under 60")
    beside_photo = intent.photo_filters()
    assert beside_photo.model_dump(exclude_defaults=True) == {"price_max": 60.0,
                                                              "second_hand": True}
    assert intent.steer == {"colour:red": 1.0, "usage:Formal": 1.0}


def test_contradicting_prices_keep_the_upper_bound(vocab: CatalogVocabulary) -> None:
    intent = vocab.encode_text("over 80 under 20")
    assert intent.filters.price_max == 20 and intent.filters.price_min is None
    assert any("cannot both hold" in n for n in intent.notes)


def test_hostile_and_long_input_is_bounded(vocab: CatalogVocabulary) -> None:
    with pytest.raises(TextTooLongError, match="at most 200 characters, got 201"):
        vocab.encode_text("a" * 201)
    nasty = [
        "1" * 199,
        "under " + "9" * 190,
        "(" * 199,
        "between " + "1 and " * 30,
        "€" * 199,
        "x y " * 49,
        "'; DROP TABLE items; --",
        "\x00\u202e\ufeffdress",
        "dréśś ÑAVY",
    ]
    for text in nasty:
        # CPU time of this thread: runaway parsing (backtracking) shows, a busy machine not
        start = time.thread_time()
        intent = vocab.encode_text(text)
        assert time.thread_time() - start < 0.5, text
        Filters.model_validate(intent.filters.model_dump())  # always a valid filter
    assert len(vocab.encode_text("x y " * 49).ignored) <= 100


def test_merge_filters_keeps_the_given_and_tightens_prices() -> None:
    given = Filters(category=["Dress"], price_max=50, attributes={"usage": ["Formal"]})
    words = Filters(category=["Shoes"], colour=["red"], price_max=30, price_min=10,
                    attributes={"usage": ["Casual"], "pattern": ["floral"]})
    merged, notes = merge_filters(given, words)
    assert merged.category == ["Dress"] and merged.colour == ["red"]
    assert (merged.price_min, merged.price_max) == (10, 30)
    assert merged.attributes == {"usage": ["Formal"], "pattern": ["floral"]}
    assert len(notes) == 2 and "category" in notes[0] and "usage" in notes[1]


def test_merge_filters_keeps_the_shop_filters_without_false_clashes() -> None:
    # a words filter leaves include_sold at its default: that is no clash with a given
    # include_sold=true, and "at least" filters take the higher of the two
    given = Filters(include_sold=True, min_rating=3, min_brand_rating=4, currency=["EUR"])
    merged, notes = merge_filters(given, Filters(category=["Dress"], min_sustainability=3,
                                                  min_rating=4))
    assert notes == []
    assert merged.include_sold and merged.currency == ["EUR"] and merged.category == ["Dress"]
    assert (merged.min_rating, merged.min_brand_rating, merged.min_sustainability) == (4, 4, 3)


# -- searching with words (bundled sample, fake encoder) -----------------------------------------


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    folder = tmp_path_factory.mktemp("words")
    cat, _ = build_demo_catalog(Settings(catalog_dir=folder, model="fake"))
    yield cat
    cat.close()


def test_text_only_filters_and_ranks_by_a_prototype(catalog: Catalog) -> None:
    found = search_text(catalog, "second hand shoes under 80", 10)
    assert found.results and all(
        r.item.category == "Shoes" and r.item.second_hand and (r.item.price or 0) <= 80
        for r in found.results)
    assert found.filters.category == ["Shoes"] and found.filters.price_max == 80
    # ranked: by closeness to the mean of the shoes that pass, not in catalog order
    proto = np.mean([catalog.vector_of(i.id) for i in catalog.items(found.filters, limit=500)],
                    axis=0)
    cos = [float(catalog.vector_of(r.item.id) @ proto) for r in found.results]
    assert cos[0] >= np.median(cos)


def test_text_beside_a_photo_steers_instead_of_filtering(catalog: Catalog) -> None:
    photo = next(p for p in sorted(sample_images().iterdir()) if p.suffix == ".jpg")
    found = search_text(catalog, "this, but in red", 10, photo=photo)
    assert found.filters.colour == []  # not a filter beside a photo
    assert found.steer == {"colour:red": catalog.settings.text_steer_strength}
    plain = search_text(catalog, "this", 10, photo=photo)
    red = [sum(r.item.attribute("colour") == "red" for r in s.results) for s in (plain, found)]
    assert red[1] > red[0]
    assert len(found.results) == 10  # steering re-ranks, it never empties the list


def test_words_with_given_filters_and_nothing_understood(catalog: Catalog) -> None:
    found = search_text(catalog, "dress", 10, Filters(price_max=60))
    assert found.results and all(r.item.category == "Dress" and (r.item.price or 0) <= 60
                                 for r in found.results)
    nothing = search_text(catalog, "sparkly unicorn", 10)
    assert nothing.results == [] and nothing.intent.ignored == ("sparkly", "unicorn")
    assert "none of the words matched" in nothing.notes[-1]
    steered = search_text(catalog, "not black", 5)  # no filter: steering alone ranks
    assert len(steered.results) == 5
    assert not any(r.item.attribute("colour") == "black" for r in steered.results)


def test_a_text_encoder_with_a_vector_is_searched_by_it(catalog: Catalog) -> None:
    """The seam for a CLIP-like model: an encoder returning a vector in the image space."""
    target = catalog.items(limit=1, offset=40)[0]

    class Embedding:
        name = "test-embedding"

        def encode_text(self, text: str) -> TextIntent:
            return TextIntent(text, Filters(), {}, vector=catalog.vector_of(target.id))

    found = search_text(catalog, "anything", 3, encoder=Embedding())
    assert found.results[0].item.id == target.id


def test_query_steering_is_kept_and_words_add_to_it(catalog: Catalog, tmp_path: Path) -> None:
    item = catalog.items(limit=1, offset=7)[0]
    query = Query(steer={"colour:blue": 0.3}).add_item(catalog, item.id)
    found = search_text(catalog, "red", 5, query=query)
    assert found.steer == {"colour:blue": 0.3,
                           "colour:red": catalog.settings.text_steer_strength}
    assert item.id not in {r.item.id for r in found.results}
