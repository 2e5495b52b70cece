"""The feed's per-user classifier (issue 17): fitted once per set of swipes, refitted from the
previous fit after a new swipe (warm start), kept for a bounded number of users, and a warm
start scores like a fit from scratch. Real catalog (bundled sample, fake encoder, SQLite in
tmp), real scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from lookalike.catalog import Catalog
from lookalike.config import Settings
from lookalike.demo import sample_images, sample_metadata
from lookalike.encoders import create
from lookalike.recommend import Feed
from lookalike.recommend import feed as feed_module
from lookalike.users import User, Users


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    folder = tmp_path_factory.mktemp("catalog")
    s = Settings(catalog_dir=folder, model="fake", cache_dir=folder / "cache")
    cat = Catalog.open(s, encoder=create("fake", s))
    cat.ingest(sample_images(), sample_metadata())
    return cat


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The fits the feed makes (the real function, recorded): True for a warm start."""
    made: list[bool] = []
    real = feed_module.fit_classifier

    def counted(liked: np.ndarray, disliked: np.ndarray,
                start: LogisticRegression | None = None) -> LogisticRegression:
        made.append(start is not None)
        return real(liked, disliked, start)

    monkeypatch.setattr(feed_module, "fit_classifier", counted)
    return made


def _swiper(feed: Feed, catalog: Catalog, likes: int, dislikes: int, offset: int = 0) -> User:
    user, _ = feed.users.create_guest()
    ids = [i.id for i in catalog.items(None, offset, likes + dislikes)]
    for i, item in enumerate(ids):
        feed.swipe(user, item, liked=i < likes)
    return user


def test_views_without_a_new_swipe_reuse_the_fit(catalog: Catalog, fits: list[bool]) -> None:
    feed = Feed(catalog, Users(catalog.store))
    user = _swiper(feed, catalog, 3, 4)
    first = [r.item.id for r in feed.next(user, 5, mark_shown=False)]
    assert fits == [False]
    again = [r.item.id for r in feed.next(user, 5, mark_shown=False)]
    assert fits == [False]  # the same swipes: the same classifier, no refit
    assert again == first
    feed.swipe(user, catalog.items(None, 200, 1)[0].id, liked=False)
    feed.next(user, 5, mark_shown=False)
    assert fits == [False, True]  # a new swipe: refitted, starting from the last fit


def test_the_classifier_cache_is_bounded(catalog: Catalog, fits: list[bool],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_module, "CLASSIFIER_CACHE", 2)
    feed = Feed(catalog, Users(catalog.store))
    users = [_swiper(feed, catalog, 2, 2, offset=10 * i) for i in range(3)]
    for user in users:
        feed.next(user, 3, mark_shown=False)
    assert len(feed._classifiers) == 2
    assert set(feed._classifiers) == {users[1].id, users[2].id}  # the oldest went first
    feed.next(users[0], 3, mark_shown=False)
    assert fits == [False, False, False, False]  # forgotten: fitted again from scratch


def test_a_warm_start_scores_like_a_fresh_fit() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(300, 64)).astype(np.float32)
    vectors[:100] += 0.6
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    liked, disliked = vectors[:40], vectors[100:220]
    before = feed_module.fit_classifier(liked[:-1], disliked)
    warm = feed_module.fit_classifier(liked, disliked, before)
    fresh = feed_module.fit_classifier(liked, disliked)
    assert warm is not before and before.coef_.shape == warm.coef_.shape
    np.testing.assert_allclose(warm.predict_proba(vectors), fresh.predict_proba(vectors),
                               atol=0.02)
