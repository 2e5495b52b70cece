"""Taste features with the real encoder on the bundled sample (18 items per label), and the
colour tagger against the hand labels in tests/data (needs ../shared). Marked slow."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike.attributes import ColourTagger, default_taggers
from lookalike.catalog import Catalog, Filters
from lookalike.config import Settings
from lookalike.demo import build_demo_catalog
from lookalike.images import load_image
from lookalike.recommend import (
    Feed,
    Query,
    mean_pairwise_distance,
    profile_search,
    recommend,
    similar,
)
from lookalike.users import Users

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
LABELS = Path(__file__).resolve().parents[1] / "data" / "colour_labels.csv"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("taste") / "cat"
    cat, report = build_demo_catalog(Settings(catalog_dir=folder, model="efficientnet-lite0"))
    assert report.added == 306
    cat.close()
    return folder


@pytest.fixture
def catalog(built: Path, tmp_path: Path) -> Catalog:
    """A copy per test: the feed's draws are seeded by user id, so each test's shoppers are
    the same ones whichever tests ran before it (or were left out with -k)."""
    shutil.copytree(built, tmp_path / "cat")
    return Catalog.open(Settings(catalog_dir=tmp_path / "cat", model="efficientnet-lite0"),
                        create=False, taggers=default_taggers)


@pytest.mark.skipif(not (SHARED / "datasets").is_dir(), reason="needs ../shared/datasets")
def test_colour_tagger_against_hand_labels() -> None:
    tagger = ColourTagger()
    rows = list(csv.DictReader(LABELS.open()))
    assert len(rows) == 100
    hits = 0
    for r in rows:
        img = load_image(SHARED / "datasets" / r["dataset"] / r["path"], draft_size=(256, 256))
        hits += tagger(img)["colour"].value == r["colour"]
    assert hits >= 50  # measured 58 (docs/development/notes/issue-5.md); chance is ~1/13


@pytest.mark.parametrize("label", ["Shoes", "Hat"])
def test_simulated_shopper_is_served_their_label(catalog: Catalog, label: str) -> None:
    """The sample holds only 18 items per label, so the feed runs out of them quickly; judge
    the swipes themselves: the cold start shows every category within its first 17 cards (one
    each), and after the first like most cards show the liked label."""
    feed = Feed(catalog, Users(catalog.store))
    user, _ = feed.users.create_guest()
    liked = []
    for _ in range(30):
        (card,) = feed.next(user, 1)
        liked.append(card.item.category == label)
        feed.swipe(user, card.item.id, liked[-1])
    first = liked.index(True)
    assert first < len({i.category for i in catalog.items(limit=1000)})
    after = liked[first + 1 :]
    assert np.mean(after) >= 0.6, (first, after)
    assert len(feed.likes(user)) == sum(liked)


def test_swiped_look_alikes_steer_the_feed_for_most_shoppers(catalog: Catalog) -> None:
    """The shopper of the browser test, for 20 guests (the feed's exploration draws are seeded
    by the user): one who likes the first card and its 30 nearest items and passes the rest.
    After 10 swipes, the 7 items up next must sit much nearer that first card than the cold
    start's did (median rank among its 100 nearest). One shopper is one random draw (measured
    on the sample: median rank 12-48 across guests), so the claim is judged over all of them."""
    feed = Feed(catalog, Users(catalog.store))
    before_after = []
    for _ in range(20):
        user, _ = feed.users.create_guest()
        first = feed.next(user, 7, mark_shown=False)
        start = first[0].item.id
        nearest = [hit.item.id for hit in similar(catalog, start, k=100)]
        rank = {item_id: i for i, item_id in enumerate(nearest)}
        taste = {start, *nearest[:30]}
        for _ in range(10):
            card = feed.next(user, 7, mark_shown=False)[0].item.id
            feed.swipe(user, card, card in taste)
        upcoming = [r.item.id for r in feed.next(user, 7, mark_shown=False)]
        before_after.append((np.median([rank.get(r.item.id, 100) for r in first[1:]]),
                             np.median([rank.get(i, 100) for i in upcoming]),
                             sum(i in taste for i in upcoming)))
    before, after, in_taste = np.asarray(before_after).T
    assert np.median(after) <= 25 and np.median(after) <= 0.5 * np.median(before), before_after
    assert np.mean(after <= 40) >= 0.85, before_after
    assert np.mean(in_taste >= 3) >= 0.85, before_after  # of the 7 up next, most in the taste


def test_two_prototypes_return_both_kinds(catalog: Catalog) -> None:
    shoes = catalog.items(Filters(category=["Shoes"]), limit=3)
    dresses = catalog.items(Filters(category=["Dress"]), limit=3)
    vecs = np.stack([catalog.vector_of(i.id) for i in shoes + dresses])
    ex = [i.rowid for i in shoes + dresses]
    found = {r.item.category for r in profile_search(catalog, vecs, 10, exclude=ex)}
    assert {"Shoes", "Dress"} <= found


def test_mmr_spreads_results_and_keeps_filters(catalog: Catalog) -> None:
    divs = []
    for diversity in (0.0, 0.5):
        d = []
        for item in catalog.items(limit=20, offset=50):
            q = Query(positives=[catalog.vector_of(item.id)], diversity=diversity)
            res = recommend(catalog, q, 10, Filters(second_hand=False), exclude=[item.rowid])
            assert all(r.item.second_hand is False for r in res)
            d.append(mean_pairwise_distance(np.stack([catalog.vector_of(r.item.id)
                                                      for r in res])))
        divs.append(np.mean(d))
    assert divs[1] > divs[0]


def test_steering_in_red_raises_red_and_keeps_category(catalog: Catalog) -> None:
    red, same = [], []
    for strength in (0.0, 0.5):
        r_share, c_share = [], []
        for item in catalog.items(limit=40, offset=100):
            if item.attribute("colour") == "red":
                continue
            q = Query(steer={"colour:red": strength} if strength else {})
            res = recommend(catalog, q.add_item(catalog, item.id), 10)
            r_share.append(np.mean([r.item.attribute("colour") == "red" for r in res]))
            c_share.append(np.mean([r.item.category == item.category for r in res]))
        red.append(np.mean(r_share))
        same.append(np.mean(c_share))
    assert red[1] > red[0] + 0.1
    assert same[1] >= same[0] - 0.1
