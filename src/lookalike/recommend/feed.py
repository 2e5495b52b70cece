"""The swipe feed: one stored preference vector per user, moved by every swipe.

    v ← normalise((1 − α)·v + α·(Σ liked − β·Σ disliked))

applied once per swipe (so the sums hold one item), α = settings.swipe_alpha,
β = settings.swipe_beta. The vector starts at the first like: dislikes before it only steer
the cold-start spread. (Starting from v = 0 instead, a run of dislikes leaves v = −mean of the
disliked items at full length, and the first like then moves it by only α: in simulation the
feed kept showing whatever was least like the dislikes — shoes to a shopper who liked a dress.)
`next(n)`:

* never returns an item the user was already shown (swiped or not);
* before the first like (cold start) returns a diverse spread of the catalog: the allowed items
  are clustered (k-means), and the most central unseen item of a cluster is shown, taking first
  the clusters whose centre is least like the centres of clusters the user disliked items of
  (bigger ones first among equals): a farthest-first walk over the catalog's modes;
* after a like, ranks the unseen allowed items by the preference vector; a share
  `settings.feed_exploration` of the slots goes to items drawn at random from further down the
  ranking (ranks n … 20n), so the feed keeps exploring beside the taste.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans

from lookalike.catalog import Catalog, Filters, Item, Result
from lookalike.errors import ItemNotFoundError
from lookalike.recommend.diversity import mmr
from lookalike.users import Swipe, User, Users

__all__ = ["Feed", "update_preference"]

SPREAD_CLUSTERS = 16
SPREAD_SAMPLE = 4000


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


class _Spread:
    """K-means clusters of a set of items, with each cluster's items from central outwards."""

    def __init__(self, rowids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        n = len(rowids)
        k = max(1, min(SPREAD_CLUSTERS, n // 4 or 1))
        rng = np.random.default_rng(0)
        sample = vectors if n <= SPREAD_SAMPLE else vectors[rng.choice(n, SPREAD_SAMPLE, False)]
        km = KMeans(n_clusters=min(k, len(sample)), n_init=1, random_state=0).fit(sample)
        self.centres: NDArray[np.float32] = km.cluster_centers_.astype(np.float32)
        sims = vectors @ self.centres.T
        labels = sims.argmax(axis=1)
        self.members: list[NDArray[np.int64]] = []
        for c in range(len(self.centres)):
            idx = np.flatnonzero(labels == c)
            order = idx[np.argsort(-sims[idx, c], kind="stable")]
            self.members.append(rowids[order])

    def pick(self, n: int, seen: set[int], disliked: NDArray[np.float32]) -> list[int]:
        """Central unseen items of the clusters least like the clusters of disliked items
        (bigger clusters first among equals): a farthest-first walk over the catalog's modes."""
        sizes = np.asarray([len(m) for m in self.members])
        penalty = np.zeros(len(self.members))
        if len(disliked):
            hit = np.unique((np.asarray(disliked, dtype=np.float32) @ self.centres.T).argmax(1))
            unit = self.centres / np.linalg.norm(self.centres, axis=1, keepdims=True)
            penalty = np.round((unit @ unit[hit].T).max(axis=1), 2)
        order = sorted(range(len(self.members)), key=lambda c: (penalty[c], -sizes[c], c))
        cursors = [0] * len(self.members)
        out: list[int] = []
        while len(out) < n:
            progressed = False
            for c in order:
                members = self.members[c]
                while cursors[c] < len(members) and int(members[cursors[c]]) in seen:
                    cursors[c] += 1
                if cursors[c] < len(members):
                    rowid = int(members[cursors[c]])
                    cursors[c] += 1
                    seen.add(rowid)
                    out.append(rowid)
                    progressed = True
                    if len(out) >= n:
                        break
            if not progressed:
                break
        return out


class Feed:
    """A swipe feed over a catalog, with users, swipes and preferences in its SQLite file."""

    def __init__(self, catalog: Catalog, users: Users) -> None:
        self.catalog = catalog
        self.users = users
        self.alpha = catalog.settings.swipe_alpha
        self.beta = catalog.settings.swipe_beta
        self.exploration = catalog.settings.feed_exploration
        self._spreads: dict[tuple[object, ...], _Spread] = {}
        self._lock = threading.Lock()

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

    def _rowids(self, item_ids: set[str]) -> set[int]:
        ids = sorted(item_ids)
        found: set[int] = set()
        with self.catalog.store.connection() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    int(r[0])
                    for r in conn.execute(f"SELECT rowid FROM items WHERE id IN ({marks})", chunk)
                )
        return found

    def _spread(self, filters: Filters | None) -> _Spread:
        allowed = self.catalog.allowed_rowids(filters)
        exact = self.catalog.index.exact
        rowids = exact.ids if allowed is None else exact.ids[exact.positions(allowed)]
        key = (
            filters.model_dump_json() if filters is not None else "",
            len(exact),
            int(exact.ids[-1]) if len(exact) else 0,
            len(rowids),
        )
        with self._lock:
            spread = self._spreads.get(key)
        if spread is None:
            spread = _Spread(rowids, exact.get(rowids))
            with self._lock:
                if len(self._spreads) > 32:
                    self._spreads.clear()
                self._spreads[key] = spread
        return spread

    def next(
        self, user: User, n: int = 10, filters: Filters | None = None, mark_shown: bool = True
    ) -> list[Result]:
        """The next `n` items for the user (never one shown before); they count as shown
        unless `mark_shown` is False (a peek, for tests and simulations)."""
        if n <= 0 or len(self.catalog.index) == 0:
            return []
        swipes = self.users.swipes(user)
        seen = self._rowids(self.users.shown(user))
        rng = np.random.default_rng([user.id, len(seen)])
        preference = self.users.preference(user)
        if preference is None or not any(s.liked for s in swipes):
            spread = self._spread(filters)
            disliked = self._rowids({s.item_id for s in swipes if not s.liked})
            exact = self.catalog.index.exact
            dis_vecs = exact.get(np.asarray(sorted(disliked), dtype=np.int64))
            picks = spread.pick(n, set(seen), dis_vecs)
            hits = [(r, 0.0) for r in picks]
            if preference is not None and picks:
                scores = exact.get(np.asarray(picks, dtype=np.int64)) @ preference
                hits = [(r, float(s)) for r, s in zip(picks, scores, strict=True)]
        else:
            hits = self._exploit(preference, n, filters, seen, rng)
        results = self.catalog.results(hits)
        if mark_shown and results:
            self.users.mark_shown(user, [r.item.id for r in results])
        return results

    def _exploit(
        self,
        preference: NDArray[np.float32],
        n: int,
        filters: Filters | None,
        seen: set[int],
        rng: np.random.Generator,
    ) -> list[tuple[int, float]]:
        pool = max(20 * n, 100)
        ranked = self.catalog.search_vectors(preference[None], pool, filters, sorted(seen))[0]
        if not ranked:
            return []
        rowids = np.asarray([r for r, _ in ranked], dtype=np.int64)
        vectors = self.catalog.index.exact.get(rowids)
        scores = np.asarray([s for _, s in ranked], dtype=np.float32)
        # near-duplicates collapsed (λ = 1: relevance order otherwise kept)
        keep = mmr(scores, vectors, len(ranked), 1.0, self.catalog.settings.near_duplicate_cos)
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

