"""Recommendation on a real catalog (bundled sample, fake encoder, SQLite in tmp): the feed,
profiles, Rocchio + steering, MMR. Fast paths are checked against plain reference loops."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lookalike.attributes import default_taggers
from lookalike.catalog import Catalog, Filters, Result
from lookalike.config import Settings
from lookalike.demo import sample_images, sample_metadata
from lookalike.encoders import create
from lookalike.errors import ItemNotFoundError, LookalikeError
from lookalike.recommend import (
    EmptyQueryError,
    Feed,
    Query,
    UnknownDirectionError,
    cluster_profile,
    mean_pairwise_distance,
    mmr,
    mmr_reference,
    photo_palette,
    profile_search,
    recommend,
    search_image,
    similar,
    steering_directions,
    update_preference,
)
from lookalike.recommend.feed import SPREAD_CLUSTERS, _Spread, like_rate, taste_scores
from lookalike.users import Users


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    folder = tmp_path_factory.mktemp("catalog")
    s = Settings(catalog_dir=folder, model="fake", cache_dir=folder / "cache")
    cat = Catalog.open(s, encoder=create("fake", s), taggers=default_taggers)
    cat.ingest(sample_images(), sample_metadata())
    return cat


@pytest.fixture
def feed(catalog: Catalog) -> Feed:
    return Feed(catalog, Users(catalog.store))


def _unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=-1, keepdims=True)).astype(np.float32)


# -- MMR ---------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 25),
    k=st.integers(0, 12),
    diversity=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]) | st.floats(0, 1),
    dup=st.sampled_from([None, 0.95, 0.6]),
    seed=st.integers(0, 10_000),
)
def test_mmr_matches_the_reference_loop(
    n: int, k: int, diversity: float, dup: float | None, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    vecs = _unit(rng.standard_normal((n, 6)))
    rel = rng.random(n).astype(np.float32)
    picked, scores = mmr(rel, vecs, k, diversity, dup)
    ref_picked, ref_scores = mmr_reference(rel, vecs, k, diversity, dup)
    assert picked == ref_picked
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    # the score each result was taken with: never above its relevance, never rising
    assert all(sc <= rel[i] + 1e-6 for i, sc in zip(picked, scores, strict=True))
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(scores))


def test_mmr_diversity_zero_is_relevance_order_and_collapses_duplicates() -> None:
    rng = np.random.default_rng(1)
    vecs = _unit(rng.standard_normal((8, 16)))
    vecs[3] = vecs[0]  # a near-duplicate of the best item
    rel = np.linspace(1, 0.3, 8).astype(np.float32)
    picked, scores = mmr(rel, vecs, 8, 0.0)
    assert picked == list(range(8))
    np.testing.assert_allclose(scores, rel)
    assert 3 not in mmr(rel, vecs, 8, 0.0, duplicate_cos=0.99)[0]


def test_more_diversity_is_more_diverse() -> None:
    rng = np.random.default_rng(2)
    centre = _unit(rng.standard_normal(32))
    near = _unit(centre + 0.2 * rng.standard_normal((30, 32)))
    far = _unit(rng.standard_normal((30, 32)))
    vecs = np.concatenate([near, far])
    rel = vecs @ centre
    div = [mean_pairwise_distance(vecs[mmr(rel, vecs, 10, d)[0]]) for d in (0.0, 0.4, 1.0)]
    assert div[0] < div[1] < div[2]


# -- preference vector ------------------------------------------------------------------------


def test_preference_update_follows_the_formula() -> None:
    rng = np.random.default_rng(3)
    xs = _unit(rng.standard_normal((6, 8)))
    likes = [True, False, True, True, False, False]
    alpha, beta = 0.3, 0.5
    v = None
    ref = np.zeros(8)
    for x, liked in zip(xs, likes, strict=True):
        v = update_preference(v, x, liked, alpha, beta)
        ref = (1 - alpha) * ref + alpha * (x if liked else -beta * x)
        ref = ref / np.linalg.norm(ref)
        np.testing.assert_allclose(v, ref, atol=1e-5)


# -- feed -------------------------------------------------------------------------------------


def test_feed_never_shows_an_item_twice(feed: Feed, catalog: Catalog) -> None:
    user, _ = feed.users.create_guest()
    seen: list[str] = []
    for page in range(8):
        items = feed.next(user, 10)
        assert len(items) == 10
        seen += [r.item.id for r in items]
        for r in items[:3]:
            feed.swipe(user, r.item.id, r.item.category == "Dress" or page % 2 == 0)
    assert len(seen) == len(set(seen))


def test_one_card_at_a_time_with_full_exploration(catalog: Catalog) -> None:
    feed = Feed(catalog, Users(catalog.store))
    feed.exploration = 1.0  # every card is an exploration card
    user, _ = feed.users.create_guest()
    seen = []
    for i in range(25):
        (card,) = feed.next(user, 1)
        seen.append(card.item.id)
        feed.swipe(user, card.item.id, i % 3 == 0)
    assert len(set(seen)) == 25


def test_feed_runs_dry_instead_of_repeating(catalog: Catalog) -> None:
    feed = Feed(catalog, Users(catalog.store))
    user, _ = feed.users.create_guest()
    only = Filters(category=["Hat"])
    total = catalog.store.count(only)
    got = [r.item.id for _ in range(total // 5 + 3) for r in feed.next(user, 5, only)]
    assert len(got) == len(set(got)) == total


def test_cold_start_shows_every_category_once_first(feed: Feed, catalog: Catalog) -> None:
    user, _ = feed.users.create_guest()
    categories = {i.category for i in catalog.items(limit=1000)}
    first = feed.next(user, len(categories))
    assert sorted(r.item.category for r in first) == sorted(categories)


def test_cold_start_without_categories_is_a_visual_spread(catalog: Catalog) -> None:
    """Items without categories: the coarse modes' central items are further apart than
    random items."""
    ids = catalog.index.ids()
    mat = catalog.index.vectors(ids)
    picks = _Spread(ids, mat).pick(12, set(), mat[:0])
    spread = mean_pairwise_distance(np.stack([catalog.vector_of(i.id)
                                              for i in catalog.store.get_many(picks)]))
    rng = np.random.default_rng(0)
    random = np.mean([mean_pairwise_distance(mat[rng.choice(len(ids), 12, False)])
                      for _ in range(20)])
    assert len(set(picks)) == 12 and spread > random


def test_cold_start_reaches_a_rare_category_after_disliking_every_mode() -> None:
    """20 common looks (100 items each) and a rare one (15 items): a shopper who dislikes every
    card is shown a rare item soon after the coarse modes, not after ~2,000 cards."""
    rng = np.random.default_rng(3)
    centres = _unit(rng.standard_normal((21, 48)))
    sizes = [100] * 20 + [15]
    vecs = _unit(np.concatenate([c + 0.5 * _unit(rng.standard_normal((m, 48)))
                                 for c, m in zip(centres, sizes, strict=True)]))
    rowids = np.arange(1, len(vecs) + 1, dtype=np.int64)
    rare = set(rowids[-15:].tolist())
    spread = _Spread(rowids, vecs)
    seen: set[int] = set()
    shown: list[int] = []
    while not rare & set(shown) and len(shown) < 200:
        shown += spread.pick(1, seen, vecs[np.asarray(shown, dtype=np.int64) - 1])
    assert rare & set(shown), "no rare item in 200 cards"
    assert len(shown) <= SPREAD_CLUSTERS + 16, len(shown)
    assert len(set(shown)) == len(shown)


def test_cold_start_shows_the_most_typical_item_of_every_category_first() -> None:
    """Bigger categories first, each by its item nearest the category's mean; after the heads,
    other items, none twice."""
    rng = np.random.default_rng(5)
    vecs = _unit(rng.standard_normal((60, 16)))
    names = ["big"] * 40 + ["mid"] * 15 + ["rare"] * 4 + [""]  # "" = no category
    rowids = np.arange(100, 160, dtype=np.int64)
    first = _Spread(rowids, vecs, names).pick(3, set(), vecs[:0])
    expected = []
    for name in ("big", "mid", "rare"):
        idx = np.flatnonzero(np.asarray(names) == name)
        expected.append(int(rowids[idx[np.argmax(vecs[idx] @ vecs[idx].mean(axis=0))]]))
    assert first == expected
    more = _Spread(rowids, vecs, names).pick(10, set(first), vecs[:0])
    assert len(set(more)) == 10 and not set(more) & set(first)


def test_like_rate_by_hand() -> None:
    # 3 likes (2 Dress, 1 Skirt), 2 dislikes (Shoes, Skirt): p = (3 + 1) / (5 + 2) = 4/7
    p = 4 / 7
    got = like_rate(["Dress", "Skirt", "Shoes", "Hat", ""],
                            ["Dress", "Dress", "Skirt"], ["Shoes", "Skirt"], prior_strength=2)
    expected = [(2 + 2 * p) / (2 + 2), (1 + 2 * p) / (2 + 2), (0 + 2 * p) / (1 + 2), p, p]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert np.allclose(like_rate(["A"], [], []), 0.5)  # nothing known: neutral


def test_warm_builds_the_cold_start_once_and_tolerates_an_empty_catalog(
    catalog: Catalog, tmp_path: Path
) -> None:
    feed = Feed(catalog, Users(catalog.store))
    feed.warm()
    assert len(feed._spreads) == 1
    user, _ = feed.users.create_guest()
    feed.next(user, 3)
    assert len(feed._spreads) == 1  # the unfiltered spread was reused
    s = Settings(catalog_dir=tmp_path / "empty", model="fake")
    empty = Catalog.open(s, encoder=create("fake", s), taggers=default_taggers)
    Feed(empty, Users(empty.store)).warm()  # nothing to cluster: no error
    empty.close()


def test_feed_learns_a_taste(feed: Feed, catalog: Catalog) -> None:
    """Shoppers who like what is near a hidden target (20% of the catalog) get more of it."""
    target = catalog.vector_of(catalog.items(limit=1, offset=123)[0].id)
    sims = catalog.index.vectors(catalog.index.ids()) @ target
    cut = float(np.quantile(sims, 0.8))
    shares = []
    for _ in range(4):
        user, _ = feed.users.create_guest()
        for _ in range(6):
            for r in feed.next(user, 5):
                feed.swipe(user, r.item.id, float(catalog.vector_of(r.item.id) @ target) >= cut)
        page = feed.next(user, 10, mark_shown=False)
        shares.append(np.mean([float(catalog.vector_of(r.item.id) @ target) >= cut
                               for r in page]))
        liked = feed.likes(user)
        assert liked and all(float(catalog.vector_of(i.id) @ target) >= cut for i in liked)
    assert np.mean(shares) >= 0.45, shares  # base rate 0.2


def _two_clusters(seed: int, n: int = 200, dim: int = 32, noise: float = 0.9) -> np.ndarray:
    """`n` unit vectors around centre A, then `n` around centre B (overlapping clouds)."""
    rng = np.random.default_rng(seed)
    a, b = _unit(rng.standard_normal((2, dim)))
    return _unit(np.concatenate([a + noise * _unit(rng.standard_normal((n, dim))),
                                 b + noise * _unit(rng.standard_normal((n, dim)))]))


@pytest.mark.parametrize("seed", range(4))
def test_taste_scores_find_the_liked_cluster(seed: int) -> None:
    """A shopper liking cluster A and disliking B, shown the top-scored unseen item each swipe
    (cold start: one random item of each), gets ≥ 80% A in the next 10 after 6 swipes."""
    vecs = _two_clusters(seed)
    n = len(vecs) // 2
    is_a = np.arange(len(vecs)) < n
    rng = np.random.default_rng(seed)
    shown = [int(rng.integers(0, n)), int(rng.integers(n, 2 * n))]
    v = update_preference(None, vecs[shown[0]], True, 0.3, 0.5)
    v = update_preference(v, vecs[shown[1]], False, 0.3, 0.5)
    for _ in range(6):
        liked = vecs[[i for i in shown if is_a[i]]]
        disliked = vecs[[i for i in shown if not is_a[i]]]
        score = taste_scores(vecs, v, liked, disliked, 0.5)
        score[shown] = -np.inf
        nxt = int(np.argmax(score))
        shown.append(nxt)
        v = update_preference(v, vecs[nxt], bool(is_a[nxt]), 0.3, 0.5)
    liked = vecs[[i for i in shown if is_a[i]]]
    disliked = vecs[[i for i in shown if not is_a[i]]]
    score = taste_scores(vecs, v, liked, disliked, 0.5)
    score[shown] = -np.inf
    top = np.argsort(-score)[:10]
    assert is_a[top].mean() >= 0.8


def test_taste_scores_keep_both_modes_of_a_two_mode_taste() -> None:
    """Likes in two far-apart clusters: the kNN evidence ranks both above a disliked third,
    where the mean of the likes (the preference vector alone) would sit between them."""
    rng = np.random.default_rng(7)
    centres = _unit(rng.standard_normal((3, 32)))
    vecs = _unit(np.repeat(centres, 30, axis=0) + 0.3 * rng.standard_normal((90, 32)))
    group = np.repeat(np.arange(3), 30)
    liked = vecs[[0, 1, 30, 31]]
    disliked = vecs[[60, 61]]
    pref = _unit(liked.mean(axis=0))
    score = taste_scores(vecs, pref, liked, disliked, 0.5)
    score[[0, 1, 30, 31, 60, 61]] = -np.inf
    top = group[np.argsort(-score)[:10]]
    assert set(top.tolist()) == {0, 1}
    assert min(np.sum(top == 0), np.sum(top == 1)) >= 3


def test_feed_respects_filters(feed: Feed) -> None:
    user, _ = feed.users.create_guest()
    cheap = Filters(price_max=60, second_hand=False)
    for _ in range(3):
        page = feed.next(user, 8, cheap)
        for r in page:
            assert r.item.price is not None and r.item.price <= 60 and r.item.second_hand is False
            feed.swipe(user, r.item.id, True)


def test_peek_does_not_mark_shown(feed: Feed) -> None:
    user, _ = feed.users.create_guest()
    a = [r.item.id for r in feed.next(user, 5, mark_shown=False)]
    b = [r.item.id for r in feed.next(user, 5)]
    assert a == b


def test_swiping_an_unknown_item_raises(feed: Feed) -> None:
    user, _ = feed.users.create_guest()
    with pytest.raises(ItemNotFoundError):
        feed.swipe(user, "no-such-item", True)
    assert feed.swipes(user) == []


# -- profiles ---------------------------------------------------------------------------------


def test_cluster_profile_splits_two_kinds() -> None:
    rng = np.random.default_rng(4)
    a, b = _unit(rng.standard_normal(32)), _unit(rng.standard_normal(32))
    vecs = _unit(np.stack([a + 0.1 * rng.standard_normal(32) for _ in range(3)]
                          + [b + 0.1 * rng.standard_normal(32) for _ in range(3)]))
    groups = cluster_profile(vecs, 3, 0.35)
    assert sorted(map(sorted, groups)) == [[0, 1, 2], [3, 4, 5]]
    assert len(cluster_profile(vecs, 1, 0.35)) == 1


def test_two_prototype_profile_returns_both_kinds(catalog: Catalog) -> None:
    dresses = catalog.items(Filters(category=["Dress"]), limit=3)
    shoes = catalog.items(Filters(category=["Shoes"]), limit=3)
    vecs = np.stack([catalog.vector_of(i.id) for i in dresses + shoes])
    exclude = [i.rowid for i in dresses + shoes]
    found = profile_search(catalog, vecs, 10, exclude=exclude)
    assert len(found) == 10 and not {r.item.rowid for r in found} & set(exclude)
    prototypes = cluster_profile(vecs, 3, catalog.settings.profile_distance)
    assert len(prototypes) >= 2
    only_shoes = profile_search(catalog, vecs, 10, Filters(category=["Shoes"]))
    assert {r.item.category for r in only_shoes} == {"Shoes"}


# -- Rocchio, steering, colour weight -------------------------------------------------------


def test_recommend_respects_filters_and_excludes_examples(catalog: Catalog) -> None:
    item = catalog.items(limit=1)[0]
    q = Query().add_item(catalog, item.id)
    f = Filters(category=["Dress", "Skirt"], price_max=120)
    for diversity in (0.0, 0.5, 1.0):
        q.diversity = diversity
        res = recommend(catalog, q, 10, f)
        assert res and all(r.item.category in ("Dress", "Skirt") for r in res)
        assert all(r.item.price is not None and r.item.price <= 120 for r in res)
        assert item.id not in {r.item.id for r in res}


def test_recommend_relevance_only_matches_plain_search(catalog: Catalog) -> None:
    item = catalog.items(limit=1, offset=17)[0]
    q = Query(positives=[catalog.vector_of(item.id)], diversity=0.0, colour_weight=0.0)
    plain = catalog.search_vector(catalog.vector_of(item.id), 10)
    assert [r.item.id for r in recommend(catalog, q, 10)] == [r.item.id for r in plain]


def test_negatives_push_results_away(catalog: Catalog) -> None:
    a, b = catalog.items(limit=2, offset=40)
    va, vb = catalog.vector_of(a.id), catalog.vector_of(b.id)
    base = recommend(catalog, Query(positives=[va], diversity=0.0, colour_weight=0.0), 10)
    away = recommend(
        catalog, Query(positives=[va], negatives=[vb], diversity=0.0, colour_weight=0.0), 10
    )
    mean_b = lambda rs: np.mean([catalog.vector_of(r.item.id) @ vb for r in rs])  # noqa: E731
    assert mean_b(away) < mean_b(base)


def test_steering_names_and_errors(catalog: Catalog) -> None:
    names = steering_directions(catalog)
    assert "category:Dress" in names and any(n.startswith("colour:") for n in names)
    item = catalog.items(limit=1)[0]
    with pytest.raises(UnknownDirectionError):
        recommend(catalog, Query(positives=[catalog.vector_of(item.id)], steer={"x:y": 1}), 5)
    with pytest.raises(EmptyQueryError):
        recommend(catalog, Query(), 5)
    only_steer = recommend(catalog, Query(steer={"category:Dress": 1.0}), 5)
    assert len(only_steer) == 5


def test_steering_towards_a_colour_raises_its_share(catalog: Catalog) -> None:
    shares = []
    for strength in (0.0, 1.0):
        hits = 0
        for item in catalog.items(limit=20, offset=100):
            q = Query(steer={"colour:red": strength} if strength else {}, colour_weight=0.3)
            q.add_item(catalog, item.id)
            hits += sum(r.item.attribute("colour") == "red" for r in recommend(catalog, q, 10))
        shares.append(hits)
    assert shares[1] > shares[0]


def test_colour_weight_raises_colour_agreement(catalog: Catalog) -> None:
    agree = []
    for w in (0.0, 0.6):
        n = 0
        for item in catalog.items(limit=25, offset=150):
            q = Query(colour_weight=w, diversity=0.0).add_item(catalog, item.id)
            colour = item.attribute("colour")
            n += sum(r.item.attribute("colour") == colour for r in recommend(catalog, q, 10))
        agree.append(n)
    assert agree[1] > agree[0]


# -- every query: colour weight, ranking scores, pages ---------------------------------------


def _colour_agreement(catalog: Catalog, results: list[Result], colour: str | None) -> int:
    return sum(r.item.attribute("colour") == colour for r in results)


def test_photo_search_and_more_like_this_match_colour(catalog: Catalog) -> None:
    agree: dict[str, list[int]] = {"photo": [], "similar": []}
    for w in (0.0, 0.6):
        photo = alike = 0
        for item in catalog.items(limit=25, offset=150):
            colour = item.attribute("colour")
            found = search_image(catalog, Path(item.image_path), 10, colour_weight=w,
                                 diversity=0.0)
            photo += _colour_agreement(catalog, found[1:], colour)  # [0]: the item itself
            alike += _colour_agreement(
                catalog, similar(catalog, item.id, 10, colour_weight=w, diversity=0.0), colour
            )
        agree["photo"].append(photo)
        agree["similar"].append(alike)
    assert agree["photo"][1] > agree["photo"][0]
    assert agree["similar"][1] > agree["similar"][0]


def test_a_photo_of_an_item_matches_it_fully(catalog: Catalog) -> None:
    item = catalog.items(limit=1, offset=33)[0]
    top = search_image(catalog, Path(item.image_path), 3, colour_weight=0.5)[0]
    # same vector, and the photo's palette is the stored one (same decode, same rounding)
    assert top.item.id == item.id
    assert top.score == pytest.approx(1.0, abs=1e-5)
    assert top.similarity == pytest.approx(1.0, abs=1e-5)


def test_scores_are_what_the_results_are_ranked_by(catalog: Catalog) -> None:
    item = catalog.items(limit=1, offset=60)[0]
    vec = catalog.vector_of(item.id)
    for w, d in ((0.0, 0.0), (0.3, 0.0), (0.3, 0.25), (0.6, 1.0)):
        found = recommend(catalog, Query(colour_weight=w, diversity=d).add_item(catalog, item.id),
                          20)
        scores = [r.score for r in found]
        assert scores == sorted(scores, reverse=True), (w, d)
        for r in found:  # similarity: the plain cosine to the query
            assert r.similarity == pytest.approx(float(catalog.vector_of(r.item.id) @ vec),
                                                 abs=1e-4)
        if w == 0 and d == 0:
            assert scores == pytest.approx([r.similarity for r in found])


def test_pages_are_cut_from_one_ranking(catalog: Catalog) -> None:
    item = catalog.items(limit=1, offset=90)[0]
    query = Query(colour_weight=0.3, diversity=0.25).add_item(catalog, item.id)
    whole = recommend(catalog, query, 36)
    pages = [recommend(catalog, query, 12, offset=o) for o in (0, 12, 24)]
    assert [(r.item.id, r.score) for p in pages for r in p] == [
        (r.item.id, r.score) for r in whole
    ]
    # the photo search and "more like this" page the same way
    by_photo = search_image(catalog, Path(item.image_path), 20, Filters(kids=False))
    paged = search_image(catalog, Path(item.image_path), 10, Filters(kids=False), offset=10)
    assert [r.item.id for r in paged] == [r.item.id for r in by_photo[10:]]
    with pytest.raises(LookalikeError, match="offset"):
        recommend(catalog, query, 5, offset=-1)


def test_profile_matches_the_colours_of_its_photos(catalog: Catalog) -> None:
    agree = []
    for w in (0.0, 0.6):
        n = 0
        for item in catalog.items(limit=15, offset=200):
            img = catalog.load_photo(Path(item.image_path))
            vecs = catalog.embed_image(img)[None]
            found = profile_search(catalog, vecs, 10, exclude=[item.rowid],
                                   palettes=[photo_palette(img)], colour_weight=w,
                                   diversity=0.0)
            n += _colour_agreement(catalog, found, item.attribute("colour"))
        agree.append(n)
    assert agree[1] > agree[0]


def test_palette_cache_follows_a_retag_by_another_process(catalog: Catalog) -> None:
    from lookalike.attributes.colour import COLOUR_NAMES, parse_palette
    from lookalike.attributes.palettes import palettes_of
    from lookalike.catalog.schema import Tag

    item = catalog.items(limit=1, offset=5)[0]
    before = palettes_of(catalog, [item.rowid])[0]
    assert before.any()
    np.testing.assert_allclose(before, parse_palette(item.predicted["palette"].value))
    other = Catalog.open(catalog.settings,
                         taggers=default_taggers)  # another handle on the file, as another process
    try:
        other.store.set_predicted(item.rowid, {"palette": Tag(value="purple:1.00", confidence=1)})
        after = palettes_of(catalog, [item.rowid])[0]
        assert after[COLOUR_NAMES.index("purple")] == 1.0 and after.sum() == 1.0
    finally:
        other.store.set_predicted(item.rowid, {"palette": item.predicted["palette"]})
        other.close()
    np.testing.assert_allclose(palettes_of(catalog, [item.rowid])[0], before)
