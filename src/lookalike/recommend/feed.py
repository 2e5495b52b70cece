"""The swipe feed: one stored preference vector per user, moved by every swipe.

    v ← normalise((1 − α)·v + α·(Σ liked − β·Σ disliked))

applied once per swipe (so the sums hold one item), α = settings.swipe_alpha,
β = settings.swipe_beta. The vector starts at the first like: dislikes before it only steer
the cold-start spread. (Starting from v = 0 instead, a run of dislikes leaves v = −mean of the
disliked items at full length, and the first like then moves it by only α: in simulation the
feed kept showing whatever was least like the dislikes — shoes to a shopper who liked a dress.)
`next(n)`:

* never returns an item the user was already shown (swiped or not);
* before the first like (cold start) returns a diverse spread of the catalog (`_Spread.walk`;
  built per filters within a budget, rebuilt in the background when the catalog changed):
  first the most typical item of every category (given or predicted; bigger categories first),
  then the most central item of each k-means mode of the allowed items, the modes least like
  those the user disliked items of first, then the medoids of finer clusters: every kind of
  thing the shop has, then a farthest-first walk over the catalog's visual modes;
* after a like, ranks the unseen allowed items by a hybrid taste score (`taste_scores`): cosine
  to the preference vector (weight `PREFERENCE_WEIGHT`) + item-kNN evidence (mean of the top-3
  similarities to liked items − β × the largest similarity to a disliked item) + the probability
  of a like from a small per-user logistic regression on the swiped items' embeddings (likes vs
  dislikes; once there is at least one of each; kept per user, refitted from its last fit after
  a new swipe) + `settings.feed_attribute_weight` × the user's
  like rates of the item's category and of its colour (`like_rate`, shrunk toward their overall
  rate). Candidates are the nearest items to the
  preference vector and to each of the latest liked items (so a taste with several modes, or
  whose nearest items are used up, keeps its other neighbourhoods); a share
  `settings.feed_exploration` of the slots goes to items drawn at random from further down the
  ranking (ranks n … 20n), so the feed keeps exploring beside the taste.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from threadpoolctl import ThreadpoolController

from lookalike.catalog import Catalog, Filters, Item, Result
from lookalike.errors import ItemNotFoundError
from lookalike.recommend.diversity import mmr
from lookalike.users import Swipe, User, Users

__all__ = ["Feed", "fit_classifier", "like_rate", "taste_scores", "update_preference"]

log = logging.getLogger(__name__)

SPREAD_CLUSTERS = 16
SPREAD_FINE_CLUSTERS = 64
SPREAD_SAMPLE = 4000
#: A cold start built this recently (seconds) is not rebuilt for a catalog changed since: items
#: added meanwhile join it at the next build, deleted or no longer matching ones are left out.
#: An older one is rebuilt in the background while it goes on serving (k-means: 0.2-2.6 CPU s,
#: never on a request's path once a cold start exists).
SPREAD_REUSE_SECONDS = 30.0
#: Cold starts (k-means) built per minute, for all filters and visitors together, after a burst
#: of `SPREAD_BUILDS_BURST`: filters are free for anyone to vary, so beyond this budget a new
#: filter walks the unfiltered cold start over its items instead, and an old cold start serves on.
SPREAD_BUILDS_PER_MINUTE = 4.0
SPREAD_BUILDS_BURST = 8
SPREAD_CACHE = 32  # cold starts kept (by filters); beyond, the least recently built go
KNN_TOP = 3  # liked items whose similarities are averaged (item-kNN evidence)
KNN_QUERIES = 12  # latest liked items searched around for candidates
CLASSIFIER_SWIPES = 300  # latest swipes the per-user logistic regression is fitted on
#: Users whose classifier is kept (least recently used forgotten first): a feed view without a
#: new swipe reuses it, a new swipe refits from it (warm start: a few iterations).
CLASSIFIER_CACHE = 512
PREFERENCE_WEIGHT = 0.0
ATTRIBUTE_PRIOR = 2.0  # pseudo-swipes of the prior of a category's or colour's like rate
TASTE_ATTRIBUTES = ("category", "colour")


def update_preference(
    v: NDArray[np.float32] | None,
    x: NDArray[np.float32],
    liked: bool,
    alpha: float,
    beta: float,
) -> NDArray[np.float32]:
    """One swipe's step of v ← normalise((1−α)v + α(Σliked − βΣdisliked))."""
    x = np.asarray(x, dtype=np.float32)
    old = np.zeros_like(x) if v is None else np.asarray(v, dtype=np.float32)
    step = x if liked else -beta * x
    new = (1.0 - alpha) * old + alpha * step
    norm = float(np.linalg.norm(new))
    out: NDArray[np.float32] = (new / norm if norm > 0 else new).astype(np.float32)
    return out


def fit_classifier(
    liked: NDArray[np.float32],
    disliked: NDArray[np.float32],
    start: LogisticRegression | None = None,
) -> LogisticRegression:
    """The logistic regression of likes vs dislikes (balanced classes) on the swiped items'
    vectors; from `start`'s weights when given (an earlier fit of the same user: the optimum
    barely moves with one more swipe, so lbfgs needs a few iterations instead of dozens)."""
    x = np.concatenate([liked, disliked]).astype(np.float32)
    y = np.concatenate([np.ones(len(liked)), np.zeros(len(disliked))])
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=200,
                             warm_start=start is not None)
    if start is not None:
        clf.coef_ = start.coef_.copy()
        clf.intercept_ = start.intercept_.copy()
    return clf.fit(x, y)


def taste_scores(
    vectors: NDArray[np.float32],
    preference: NDArray[np.float32] | None,
    liked: NDArray[np.float32],
    disliked: NDArray[np.float32],
    beta: float,
    preference_weight: float = PREFERENCE_WEIGHT,
    classifier: LogisticRegression | None = None,
) -> NDArray[np.float32]:
    """Hybrid taste score of candidate `vectors` (rows, unit length): relevance feedback.

    preference_weight × cos(v) + mean of the top-3 similarities to liked items − β × the largest
    similarity to a disliked item + P(like) of a logistic regression on the swiped items (likes
    vs dislikes, balanced classes), the last only when there are both likes and dislikes
    (`classifier`: that regression already fitted, `fit_classifier`; else fitted here).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    score = np.zeros(len(vectors), dtype=np.float64)
    if preference is not None and preference_weight:
        score += preference_weight * (vectors @ np.asarray(preference, dtype=np.float32))
    if len(liked):
        sims = vectors @ np.asarray(liked, dtype=np.float32).T
        k = min(KNN_TOP, sims.shape[1])
        score += np.sort(sims, axis=1)[:, -k:].mean(axis=1)
    if len(disliked):
        score -= beta * (vectors @ np.asarray(disliked, dtype=np.float32).T).max(axis=1)
    if len(liked) and len(disliked):
        clf = classifier if classifier is not None else fit_classifier(liked, disliked)
        score += clf.predict_proba(vectors)[:, 1]
    out: NDArray[np.float32] = score.astype(np.float32)
    return out


def like_rate(
    candidates: Sequence[str],
    liked: Sequence[str],
    disliked: Sequence[str],
    prior_strength: float = ATTRIBUTE_PRIOR,
) -> NDArray[np.float32]:
    """The user's like rate of each candidate's value of an attribute (its category, its
    colour), shrunk toward their overall like rate: (likes of v + m·p) / (swipes of v + m),
    p = (likes + 1) / (swipes + 2). A value never swiped (or none, "") scores p: what the feed
    does not know stays neutral."""
    likes: dict[str, int] = {}
    seen: dict[str, int] = {}
    for name in liked:
        likes[name] = likes.get(name, 0) + 1
        seen[name] = seen.get(name, 0) + 1
    for name in disliked:
        seen[name] = seen.get(name, 0) + 1
    p = (len(liked) + 1.0) / (len(liked) + len(disliked) + 2.0)
    out = np.full(len(candidates), p, dtype=np.float32)
    for i, name in enumerate(candidates):
        if name and name in seen:
            out[i] = (likes.get(name, 0) + prior_strength * p) / (seen[name] + prior_strength)
    return out


class _Spread:
    """The cold-start walk over a set of items: a typical item per category, then coarse and
    fine k-means clusters, each cluster's items from central outwards."""

    def __init__(
        self,
        rowids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        categories: Sequence[str] = (),
    ) -> None:
        n = len(rowids)
        # the most typical item of each category (nearest to its mean), bigger categories first.
        # (Choosing among a category's 20% most typical the one least like the heads already
        # chosen spread the page further in embedding space, but shoppers of a rare category
        # then liked an atypical skirt and its neighbours were shorts: Skirt at 20 swipes 0.13
        # instead of 0.73 in bench/simulate_shoppers.py.)
        self.heads: list[int] = []
        if len(categories):
            names = np.asarray(categories, dtype=object)
            groups = [(int(np.sum(names == c)), str(c)) for c in set(categories) if c]
            for _, name in sorted(groups, key=lambda g: (-g[0], g[1])):
                idx = np.flatnonzero(names == name)
                centre = vectors[idx].mean(axis=0)
                self.heads.append(int(rowids[idx[int(np.argmax(vectors[idx] @ centre))]]))
        rng = np.random.default_rng(0)
        sample = vectors if n <= SPREAD_SAMPLE else vectors[rng.choice(n, SPREAD_SAMPLE, False)]
        self.centres, self.members = self._clusters(
            rowids, vectors, sample, max(1, min(SPREAD_CLUSTERS, n // 4 or 1))
        )
        fine = max(1, min(SPREAD_FINE_CLUSTERS, n // 8 or 1))
        _, fine_members = self._clusters(rowids, vectors, sample, fine)
        # fine-cluster medoids, with their vectors and cluster sizes
        self.fine = np.asarray([m[0] for m in fine_members if len(m)], dtype=np.int64)
        self.fine_sizes = np.asarray([len(m) for m in fine_members if len(m)])
        position = {int(r): i for i, r in enumerate(rowids)}
        self.fine_vectors = vectors[[position[int(r)] for r in self.fine]]

    @staticmethod
    def _clusters(
        rowids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        sample: NDArray[np.float32],
        k: int,
    ) -> tuple[NDArray[np.float32], list[NDArray[np.int64]]]:
        km = KMeans(n_clusters=min(k, len(sample)), n_init=1, random_state=0).fit(sample)
        centres: NDArray[np.float32] = km.cluster_centers_.astype(np.float32)
        sims = vectors @ centres.T
        labels = sims.argmax(axis=1)
        members: list[NDArray[np.int64]] = []
        for c in range(len(centres)):
            idx = np.flatnonzero(labels == c)
            order = idx[np.argsort(-sims[idx, c], kind="stable")]
            members.append(rowids[order])
        return centres, members

    def pick(self, n: int, seen: set[int], disliked: NDArray[np.float32]) -> list[int]:
        """Up to `n` unseen items of `walk`; they are added to `seen`."""
        out = list(itertools.islice(self.walk(seen, disliked), n))
        seen.update(out)
        return out

    def walk(self, seen: set[int], disliked: NDArray[np.float32]) -> Iterator[int]:
        """The items not in `seen`, each once, coarse to fine (lazily: taking n costs what n
        need, so a caller may skip items it cannot show without starting over):

        0. the most typical item of each category, bigger categories first (when the items have
           categories, given or predicted): a shopper sees every kind of thing the shop has;
        1. the most central item of each coarse cluster, the clusters least like the clusters
           of disliked items first (bigger first among equals);
        2. once those are shown, the medoids of the fine clusters, least like any disliked
           item first (bigger first among equals): a shopper who disliked every mode is led
           into the smaller regions of the catalog the modes hid (a rare category);
        3. then the coarse clusters' further items, round-robin.
        """
        passed = set(seen)
        sizes = np.asarray([len(m) for m in self.members])
        penalty = np.zeros(len(self.members))
        disliked = np.asarray(disliked, dtype=np.float32)
        if len(disliked):
            hit = np.unique((disliked @ self.centres.T).argmax(1))
            unit = self.centres / np.linalg.norm(self.centres, axis=1, keepdims=True)
            penalty = np.round((unit @ unit[hit].T).max(axis=1), 2)
        order = sorted(range(len(self.members)), key=lambda c: (penalty[c], -sizes[c], c))
        closeness = np.zeros(len(self.fine))
        if len(disliked):
            closeness = np.round((self.fine_vectors @ disliked.T).max(axis=1), 2)
        fine = sorted(range(len(self.fine)), key=lambda i: (closeness[i], -self.fine_sizes[i]))
        firsts = itertools.chain(
            self.heads,
            (int(self.members[c][0]) for c in order if len(self.members[c])),
            (int(self.fine[i]) for i in fine),
        )
        for rowid in firsts:
            if rowid not in passed:
                passed.add(rowid)
                yield rowid
        cursors = [0] * len(self.members)
        progressed = True
        while progressed:
            progressed = False
            for c in order:
                members = self.members[c]
                while cursors[c] < len(members) and int(members[cursors[c]]) in passed:
                    cursors[c] += 1
                if cursors[c] < len(members):
                    progressed = True
                    rowid = int(members[cursors[c]])
                    passed.add(rowid)
                    yield rowid


class _OneCore:
    """Feed work on one core: BLAS and OpenMP (k-means, the classifier, matrix products) on one
    thread while a feed computation runs, so that however many visitors ask, each computation
    keeps at most one core busy and searches keep the others. OpenMP's thread count belongs to
    the calling thread, set and restored around each computation; BLAS's is process-wide, so
    the first computation in limits it and the last one out restores it (the state below is
    per process, like that thread count). The order matters where BLAS runs on OpenMP (the
    OpenBLAS that numpy loads here): setting BLAS's count also sets the calling thread's OpenMP
    count, so the thread's own OpenMP limit is taken first and restored last; the other order
    left the first thread in at one OpenMP thread for good, and its next BLAS call set the
    whole process's BLAS back to one thread. Each limit covers (and restores) only its own
    libraries: threadpoolctl's `limit` restores every library it saw, which would put BLAS back
    to the count another computation had set."""

    _lock = threading.Lock()
    _inside = 0
    _openmp: Any = None  # threadpoolctl's view of the loaded OpenMP libraries
    _blas_libraries: Any = None  # ... and of the BLAS ones (a limit restores only its own)
    _blas: Any = None  # the BLAS limit while any computation runs

    @classmethod
    @contextmanager
    def held(cls) -> Iterator[None]:
        with cls._lock:
            if cls._openmp is None:
                controller = ThreadpoolController()
                cls._openmp = controller.select(user_api="openmp")
                cls._blas_libraries = controller.select(user_api="blas")
            openmp_libraries = cls._openmp
        openmp = openmp_libraries.limit(limits=1)  # this thread's, first
        try:
            with cls._lock:
                if cls._inside == 0:
                    cls._blas = cls._blas_libraries.limit(limits=1)
                cls._inside += 1
            try:
                yield
            finally:
                with cls._lock:
                    cls._inside -= 1
                    if cls._inside == 0:
                        cls._blas.restore_original_limits()
                        cls._blas = None
        finally:
            openmp.restore_original_limits()  # last: BLAS's restore sets it too


class _Budget:
    """A token bucket: `take()` is True (and spends a token) when one is left; `burst` tokens
    at most, refilled at `per_minute`. Thread-safe."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


@dataclass
class _Taste:
    """What a user's swipes say: preference vector, liked/disliked items and their vectors,
    and the catalog's categories and colours to count them by."""

    preference: NDArray[np.float32]
    liked: NDArray[np.float32]
    disliked: NDArray[np.float32]
    liked_rowids: list[int]
    disliked_rowids: list[int]
    values: dict[str, dict[int, str]]  # attribute → rowid → value (category, colour)
    user_id: int = 0


class Feed:
    """A swipe feed over a catalog, with users, swipes and preferences in its SQLite file."""

    def __init__(self, catalog: Catalog, users: Users) -> None:
        self.catalog = catalog
        self.users = users
        self.alpha = catalog.settings.swipe_alpha
        self.beta = catalog.settings.swipe_beta
        self.exploration = catalog.settings.feed_exploration
        self.attribute_weight = catalog.settings.feed_attribute_weight
        # feed pages computed at once (each on one core, `_OneCore`); more wait their turn
        self._turns = threading.BoundedSemaphore(catalog.settings.feed_concurrency)
        # filters → (catalog version it was built for, when, spread), least recently built first
        self._spreads: OrderedDict[str, tuple[tuple[int, int, int], float, _Spread]] = (
            OrderedDict()
        )
        self._attributes: dict[str, tuple[tuple[int, int], dict[int, str]]] = {}
        self._lock = threading.Lock()
        self._build = threading.Lock()  # one cold start built at a time, never the same twice
        self._budget = _Budget(SPREAD_BUILDS_PER_MINUTE, SPREAD_BUILDS_BURST)
        # rebuilds of old cold starts: one thread, one pending rebuild per filters at most
        self._builder = ThreadPoolExecutor(1, thread_name_prefix="feed-cold-start")
        self._pending: set[str] = set()
        # user id → (the swipes it was fitted on, the classifier), least recently used first
        self._classifiers: OrderedDict[int, tuple[int, LogisticRegression]] = OrderedDict()

    # -- swipes ------------------------------------------------------------------------------

    def swipe(self, user: User, item_id: str, liked: bool) -> None:
        """Record a like or dislike and move the user's preference vector."""
        x = self.catalog.vector_of(item_id)  # raises ItemNotFoundError for an unknown item

        def update(v: NDArray[np.float32] | None) -> NDArray[np.float32] | None:
            if v is None and not liked:
                return None  # the vector starts at the first like (see the module notes)
            return update_preference(v, x, liked, self.alpha, self.beta)

        self.users.record_swipe(user, item_id, liked, update=update)

    def swipes(self, user: User) -> list[Swipe]:
        return self.users.swipes(user)

    def likes(self, user: User) -> list[Item]:
        """Items the user liked, most recent first (items deleted since are left out)."""
        out: list[Item] = []
        for sw in reversed(self.users.swipes(user)):
            if sw.liked:
                try:
                    out.append(self.catalog.get(sw.item_id))
                except ItemNotFoundError:
                    continue
        return out

    # -- the feed ----------------------------------------------------------------------------

    def _rowid_map(self, item_ids: set[str]) -> dict[str, int]:
        ids = sorted(item_ids)
        found: dict[str, int] = {}
        with self.catalog.store.connection() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    (str(r[1]), int(r[0]))
                    for r in conn.execute(
                        f"SELECT rowid, id FROM items WHERE id IN ({marks})", chunk
                    )
                )
        return found

    def _rowids(self, item_ids: set[str]) -> set[int]:
        return set(self._rowid_map(item_ids).values())

    def warm(self) -> None:
        """Build the unfiltered cold start now (two k-means: ~1.2 s on 5,400 items, 2 cores)
        rather than while the first visitor waits for a card."""
        if len(self.catalog.index):
            self._spread(None)

    def _values(self, name: str) -> dict[int, str]:
        """rowid → category or colour (given or predicted), cached until the index changes."""
        ids = self.catalog.index.ids()
        key = (len(ids), int(ids[-1]) if len(ids) else 0)
        with self._lock:
            cached_key, cached = self._attributes.get(name, ((-1, -1), {}))
        if cached_key != key:
            cached = self.catalog.store.attribute_values(name)
            with self._lock:
                self._attributes[name] = (key, cached)
        return cached

    def _spread(self, filters: Filters | None) -> tuple[_Spread, NDArray[np.int64]]:
        """A cold start for these filters and the rowids it may show now (those in the index
        that pass the filters): the spread may be older than the catalog (items deleted or
        changed since) or, beyond the build budget, the unfiltered one; callers skip what it
        may not show.

        Only the unfiltered cold start is ever waited for, and only when there is none yet
        (`warm` builds it at startup). A new filter is built at once while the budget lasts;
        an old cold start of a changed catalog is rebuilt in the background while it serves."""
        allowed = self.catalog.allowed_rowids(filters)
        index = self.catalog.index
        ids = index.ids()
        rowids = ids if allowed is None else np.intersect1d(ids, allowed, assume_unique=True)
        key = filters.model_dump_json() if filters is not None else ""
        version = (len(ids), int(ids[-1]) if len(ids) else 0, len(rowids))
        with self._lock:
            cached = self._spreads.get(key)
        if cached is not None and cached[2].centres.shape[1] != self.catalog.index.dim:
            cached = None  # built before a re-encoding with another model: never served
        if cached is not None:
            if cached[0] != version and time.monotonic() - cached[1] >= SPREAD_REUSE_SECONDS:
                self._rebuild_later(key, filters)
            return cached[2], rowids
        if key and not len(rowids):  # nothing passes the filters: nothing to cluster
            return self._spread(None)[0], rowids
        if key and self._budget.take():
            return self._build_now(key, rowids, version), rowids
        if key:  # beyond the budget: the unfiltered walk, skipping what the filters refuse
            return self._spread(None)[0], rowids
        return self._build_now(key, rowids, version), rowids

    def _build_now(
        self, key: str, rowids: NDArray[np.int64], version: tuple[int, int, int],
        replace: bool = False,
    ) -> _Spread:
        """Build the cold start of `key` (unless one exists and not `replace`) and keep it."""
        with self._build:  # callers arriving meanwhile wait for this build, then reuse it
            with self._lock:
                cached = self._spreads.get(key)
            if cached is not None and not replace:
                return cached[2]
            category_of = self._values("category")
            names = [category_of.get(int(r), "") for r in rowids]
            spread = _Spread(rowids, self.catalog.index.vectors(rowids), names)
            with self._lock:
                self._spreads.pop(key, None)
                self._spreads[key] = (version, time.monotonic(), spread)
                while len(self._spreads) > SPREAD_CACHE:
                    self._spreads.popitem(last=False)
            return spread

    def _rebuild_later(self, key: str, filters: Filters | None) -> None:
        """Queue a rebuild of the cold start of `filters` (once, within the budget)."""
        with self._lock:
            if key in self._pending or not self._budget.take():
                return
            self._pending.add(key)

        def rebuild() -> None:
            try:
                with _OneCore.held():
                    self._rebuild(key, filters)
            except Exception:  # the old cold start serves on; the next view tries again
                log.exception("rebuilding the feed's cold start failed")
            finally:
                with self._lock:
                    self._pending.discard(key)

        self._builder.submit(rebuild)

    def _rebuild(self, key: str, filters: Filters | None) -> None:
        self.catalog.refresh()
        allowed = self.catalog.allowed_rowids(filters)
        ids = self.catalog.index.ids()
        rowids = ids if allowed is None else np.intersect1d(ids, allowed, assume_unique=True)
        version = (len(ids), int(ids[-1]) if len(ids) else 0, len(rowids))
        if len(rowids):  # the old one serves until this one replaces it
            self._build_now(key, rowids, version, replace=True)

    def wait_for_builds(self, timeout: float | None = None) -> None:
        """Return once the cold starts queued for a rebuild so far are built (tests, tools)."""
        self._builder.submit(lambda: None).result(timeout)

    def next(
        self, user: User, n: int = 10, filters: Filters | None = None, mark_shown: bool = True
    ) -> list[Result]:
        """The next `n` items for the user (never one shown before); they count as shown
        unless `mark_shown` is False (a peek, for tests and simulations). At most
        `settings.feed_concurrency` of these run at once, each on one core."""
        self.catalog.refresh()
        if n <= 0 or len(self.catalog.index) == 0:
            return []
        with self._turns, _OneCore.held():
            return self._next(user, n, filters, mark_shown)

    def _next(
        self, user: User, n: int, filters: Filters | None, mark_shown: bool
    ) -> list[Result]:
        swipes = self.users.swipes(user)
        seen = self._rowids(self.users.shown(user))
        rng = np.random.default_rng([user.id, len(seen)])
        preference = self.users.preference(user)
        vectors_of = self.catalog.index.vectors
        recent = swipes[-CLASSIFIER_SWIPES:]
        rowid_of = self._rowid_map({s.item_id for s in recent})
        liked = [rowid_of[s.item_id] for s in recent if s.liked and s.item_id in rowid_of]
        disliked = [rowid_of[s.item_id] for s in recent if not s.liked and s.item_id in rowid_of]
        dis_vecs = vectors_of(np.asarray(disliked, dtype=np.int64))
        if preference is None or not liked:
            spread, showable = self._spread(filters)
            walk = spread.walk(seen, dis_vecs)
            picks = list(itertools.islice(walk, n)) if len(showable) else []
            if len(picks) and not np.isin(picks, showable).all():
                # an older cold start, or the unfiltered one for filters: walk on past the
                # items it may not show now
                ok = set(showable.tolist())
                picks = [r for r in picks if r in ok]
                picks += itertools.islice((r for r in walk if r in ok), n - len(picks))
            hits = [(r, 0.0) for r in picks]
            if preference is not None and picks:
                scores = vectors_of(np.asarray(picks, dtype=np.int64)) @ preference
                hits = [(r, float(s)) for r, s in zip(picks, scores, strict=True)]
        else:
            like_vecs = vectors_of(np.asarray(liked, dtype=np.int64))
            taste = _Taste(preference, like_vecs, dis_vecs, liked, disliked,
                           {name: self._values(name) for name in TASTE_ATTRIBUTES}, user.id)
            hits = self._exploit(taste, n, filters, seen, rng)
        results = self.catalog.results(hits)
        if mark_shown and results:
            self.users.mark_shown(user, [r.item.id for r in results])
        return results

    def _classifier(self, taste: _Taste) -> LogisticRegression | None:
        """The user's likes-vs-dislikes classifier for these swipes: the cached one when they
        are the swipes it was fitted on, else refitted from it (None: not both kinds yet)."""
        if not len(taste.liked) or not len(taste.disliked):
            return None
        swiped = hash((tuple(taste.liked_rowids), tuple(taste.disliked_rowids)))
        with self._lock:
            cached = self._classifiers.get(taste.user_id)
        if cached is not None and cached[1].n_features_in_ != taste.liked.shape[1]:
            cached = None  # fitted before a re-encoding with another model
        if cached is not None and cached[0] == swiped:
            clf = cached[1]
        else:
            clf = fit_classifier(taste.liked, taste.disliked,
                                 cached[1] if cached is not None else None)
        with self._lock:
            self._classifiers[taste.user_id] = (swiped, clf)
            self._classifiers.move_to_end(taste.user_id)
            while len(self._classifiers) > CLASSIFIER_CACHE:
                self._classifiers.popitem(last=False)
        return clf

    def _exploit(
        self,
        taste: _Taste,
        n: int,
        filters: Filters | None,
        seen: set[int],
        rng: np.random.Generator,
    ) -> list[tuple[int, float]]:
        pool = max(20 * n, 100)
        # candidates: around the preference vector and around each of the latest likes
        preference, liked, disliked = taste.preference, taste.liked, taste.disliked
        queries = np.concatenate([preference[None], liked[-KNN_QUERIES:]]).astype(np.float32)
        found = self.catalog.search_vectors(queries, pool, filters, sorted(seen))
        candidates = np.asarray(sorted({r for hits in found for r, _ in hits}), dtype=np.int64)
        index = self.catalog.index
        vectors = index.vectors(candidates)
        while len(vectors) != len(candidates):  # an item was deleted since the search
            candidates = candidates[np.isin(candidates, index.ids())]
            vectors = index.vectors(candidates)
        if not len(candidates):
            return []
        score = taste_scores(vectors, preference, liked, disliked, self.beta,
                             classifier=self._classifier(taste))
        if self.attribute_weight:
            for values in taste.values.values():
                score += self.attribute_weight * like_rate(
                    [values.get(int(r), "") for r in candidates],
                    [values.get(r, "") for r in taste.liked_rowids],
                    [values.get(r, "") for r in taste.disliked_rowids],
                )
        order = np.argsort(-score, kind="stable")[:pool]
        ranked = [(int(candidates[i]), float(score[i])) for i in order]
        vectors = vectors[order]
        scores = score[order]
        # near-duplicates collapsed (diversity 0: relevance order otherwise kept)
        keep, _ = mmr(scores, vectors, len(ranked), 0.0, self.catalog.settings.near_duplicate_cos)
        ranked = [ranked[i] for i in sorted(keep)]
        expected = self.exploration * n
        n_explore = int(expected) + int(rng.random() < expected - int(expected))
        n_explore = min(n_explore, max(0, len(ranked) - n))
        top = ranked[: n - n_explore]
        tail = ranked[n - n_explore :]
        explore: list[tuple[int, float]] = []
        if n_explore and tail:
            picks = rng.choice(len(tail), size=min(n_explore, len(tail)), replace=False)
            explore = [tail[int(i)] for i in sorted(picks)]
        out = list(top)
        # exploration slots spread through the page, not all at the end
        for hit in explore:
            out.insert(int(rng.integers(0, len(out) + 1)), hit)
        return out[:n]

