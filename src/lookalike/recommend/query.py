""""More like these, less like those": Rocchio queries, attribute steering, colour weight, MMR.
Every query of the library, the CLI and the API is ranked here (photo search: `search_image`,
"more like this": `similar`, several photos, positive / negative items).

    q = Σ wᵢ·posᵢ / Σ wᵢ  −  γ · Σ vⱼ·negⱼ / Σ vⱼ          (Rocchio, γ = settings.rocchio_gamma)
    q ← q/|q| + Σ sₐ · steer_scale · dₐ                     (dₐ: unit attribute direction)
    match = (1 − w)·cos(q, x) + w·colour_sim(target, x)     (w: colour weight, "match colour")
    score = match − diversity · max cos(x, results ranked above x)     (MMR, `diversity.py`;
                                                       above 0, near-duplicates collapsed)

Candidates come from the catalog's pre-filtered search, so filters always hold (sold items
are left out unless a filter asks for them).

Pages (`offset`, `k`) of one query are slices of one ranking, so none repeats or skips an item:

* relevance order without diversity: the exact order by match, as deep as the page asked for
  (up to `settings.max_results`). The cosine pool is widened until no item outside it could
  match better than the last one kept, so the order does not depend on the page;
* with diversity, or sorted by anything but relevance (`lookalike.catalog.sorting`): the
  `settings.sort_depth` best look-alikes (MMR picks among `MMR_PER_RESULT` times as many
  candidates) are the list, sorted (ties and items without the value keep their relevance
  order), and pages are cut from it. A sorted list is therefore still a list of look-alikes;
  `ranking_bound` says how deep a query's pages reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lookalike.attributes.colour import (
    colour_palette,
    colour_similarity,
    format_palette,
    parse_palette,
)
from lookalike.attributes.directions import directions_for
from lookalike.attributes.palettes import palettes_of
from lookalike.catalog import Catalog, Filters, Result
from lookalike.catalog.sorting import SORTS, sort_positions
from lookalike.config import Settings
from lookalike.errors import LookalikeError
from lookalike.images import ImageSource
from lookalike.recommend.diversity import mmr

__all__ = [
    "EmptyQueryError",
    "Query",
    "UnknownDirectionError",
    "photo_palette",
    "ranking_bound",
    "recommend",
    "rocchio",
    "steering_directions",
]

Vector = NDArray[np.float32]

#: Candidates fetched by cosine for the colour weight to rerank, per result wanted, at first
#: (at most `POOL_EXTRA_MAX` more than wanted); the pool widens while that is not enough.
POOL_PER_RESULT = 10
POOL_EXTRA_MAX = 1000
#: Candidates (best match first) that diversity picks among, per result of the depth ranked.
MMR_PER_RESULT = 4


class EmptyQueryError(LookalikeError):
    """A query needs at least one positive example or one steering direction."""


class UnknownDirectionError(LookalikeError):
    """Steering named an attribute direction this catalog does not have."""


@dataclass
class Query:
    """What the shopper wants: examples to move towards and away from, steering, controls.

    `positive_palettes` (optional) are the colour palettes of the positives, used by the colour
    weight; `add_item` / `add_photo` fill vectors and palettes together, and `add_item` notes
    the item in `example_rowids`, which `recommend` never returns.
    """

    positives: list[Vector] = field(default_factory=list)
    negatives: list[Vector] = field(default_factory=list)
    positive_weights: list[float] | None = None
    negative_weights: list[float] | None = None
    steer: dict[str, float] = field(default_factory=dict)
    colour_weight: float | None = None
    diversity: float | None = None
    positive_palettes: list[Vector] = field(default_factory=list)
    example_rowids: list[int] = field(default_factory=list)

    def add_item(
        self, catalog: Catalog, item_id: str, liked: bool = True, weight: float = 1.0
    ) -> Query:
        """Add a catalog item as a positive (or negative) example."""
        vec = catalog.vector_of(item_id)
        item = catalog.get(item_id)
        self.example_rowids.append(item.rowid)
        palette = item.predicted.get("palette")
        self._add(vec, liked, weight, parse_palette(palette.value) if palette else None)
        return self

    def add_photo(
        self, catalog: Catalog, source: ImageSource, liked: bool = True, weight: float = 1.0,
        name: str | None = None,
    ) -> Query:
        """Add a photo (path or bytes; `name` labels bytes in errors) as a positive (or
        negative) example: its vector and its garment colours, from one decode (as ingest tags
        a catalog item)."""
        img = catalog.load_photo(source, name)
        self._add(catalog.embed_image(img), liked, weight, photo_palette(img))
        return self

    def _add(self, vec: Vector, liked: bool, weight: float, palette: Vector | None) -> None:
        if liked:
            self.positives.append(vec)
            if self.positive_weights is not None or weight != 1.0:
                self.positive_weights = (self.positive_weights or [1.0] * (len(self.positives) - 1))
                self.positive_weights.append(weight)
            if palette is not None and palette.any():
                self.positive_palettes.append(palette * weight)
        else:
            self.negatives.append(vec)
            if self.negative_weights is not None or weight != 1.0:
                self.negative_weights = (self.negative_weights or [1.0] * (len(self.negatives) - 1))
                self.negative_weights.append(weight)


def photo_palette(img: Image.Image) -> Vector:
    """A photo's garment palette exactly as the colour tagger stores an item's (rounded, small
    shares dropped), so a photo of a catalog item matches that item's colours fully."""
    hist, _ = colour_palette(img)
    return parse_palette(format_palette(hist))


def _weighted_mean(vectors: list[Vector], weights: list[float] | None) -> Vector:
    mat = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    w = np.ones(len(vectors), dtype=np.float32) if weights is None else np.asarray(weights)
    if len(w) != len(mat):
        raise LookalikeError("one weight per example")
    if (w < 0).any() or float(w.sum()) <= 0:
        raise LookalikeError("example weights must be non-negative and not all zero")
    out: Vector = (w[:, None] * mat).sum(axis=0) / float(w.sum())
    return out.astype(np.float32)


def _unit(v: Vector) -> Vector:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def rocchio(query: Query, gamma: float) -> Vector | None:
    """The Rocchio vector of the query's examples (None without positives), unit length."""
    if not query.positives:
        return None
    q = _weighted_mean(query.positives, query.positive_weights)
    if query.negatives:
        q = q - gamma * _weighted_mean(query.negatives, query.negative_weights)
    return _unit(q.astype(np.float32))


def steering_directions(catalog: Catalog) -> list[str]:
    """Names usable in `Query.steer`, e.g. ``["category:Dress", "colour:red", ...]``."""
    return directions_for(catalog).names()


def ranking_bound(settings: Settings, diversity: float | None = None,
                  sort: str = "relevance") -> int:
    """How deep a query's pages reach (offset + k stays within it): `max_results` in relevance
    order without diversity; `sort_depth` (within it) when sorted or diversified."""
    d = settings.diversity if diversity is None else diversity
    if sort == "relevance" and d <= 0:
        return settings.max_results
    return min(settings.sort_depth, settings.max_results)


def with_probe(offset: int, size: int, bound: int) -> int:
    """Results to ask for a page of `size` at `offset`: one more while the `bound`
    (`ranking_bound`) allows, so that the answer knows whether a next page exists (no empty
    last page)."""
    return size + 1 if offset + size < bound else size


@dataclass(frozen=True)
class _Colour:
    """How the colour weight bends the match: the target palette (None: no colour to move
    towards), palettes moved away from, and the weight."""

    target: Vector | None
    avoid: list[tuple[float, Vector]]
    weight: float

    def similarity(self, palettes: Vector) -> Vector:
        sim = np.zeros(len(palettes), dtype=np.float32)
        if self.target is not None:
            sim += colour_similarity(self.target, palettes)
        for strength, pal in self.avoid:
            sim -= strength * colour_similarity(pal, palettes)
        return sim

    @property
    def best(self) -> float:
        """The most colour similarity any item can have (intersection ≤ the target's mass)."""
        return 0.0 if self.target is None else float(self.target.sum())


def _best_matches(
    catalog: Catalog,
    q: Vector,
    n: int,
    filters: Filters | None,
    excluded: list[int],
    colour: _Colour | None,
) -> tuple[NDArray[np.int64], Vector, Vector]:
    """(rowids, match, cosine) of the `n` best matches, best first (ties by rowid). Exact
    whatever `n` is (exact index): without colour the cosine search's own top n; with colour,
    the cosine pool widens until the n-th match is at least what any item outside the pool
    could reach ((1 − w)·the pool's lowest cosine + w·the best colour similarity)."""
    pool = n if colour is None else max(min(POOL_PER_RESULT * n, n + POOL_EXTRA_MAX), 200)
    while True:
        hits = catalog.search_vectors(q[None], pool, filters, excluded)[0]
        rowids = np.asarray([r for r, _ in hits], dtype=np.int64)
        cosine = np.asarray([sc for _, sc in hits], dtype=np.float32)
        match = cosine
        if colour is not None and len(hits):
            palettes = palettes_of(catalog, rowids.tolist())
            if palettes.any():
                match = ((1 - colour.weight) * cosine
                         + colour.weight * colour.similarity(palettes)).astype(np.float32)
        order = np.lexsort((rowids, -match))[:n]
        if colour is None or len(hits) < pool or pool >= len(catalog):
            break
        ceiling = (1 - colour.weight) * float(cosine.min()) + colour.weight * colour.best
        if len(order) == n and float(match[order[-1]]) >= ceiling:
            break
        pool *= 4
    return rowids[order], match[order], cosine[order]


def recommend(
    catalog: Catalog,
    query: Query,
    k: int = 10,
    filters: Filters | None = None,
    exclude: Sequence[int] = (),
    offset: int = 0,
    sort: str = "relevance",
) -> list[Result]:
    """Results `offset` … `offset + k` of a query's ranking: Rocchio + steering, colour weight,
    then MMR diversity, then `sort` (`lookalike.catalog.sorting`; relevance by default) over the
    best `sort_depth` look-alikes; `exclude` rowids (e.g. the examples themselves) never come
    back.

    Each `Result.score` is the score it was ranked by (never rising down a list in relevance
    order) and `Result.similarity` the plain cosine to the query vector."""
    if k < 0 or offset < 0:
        raise LookalikeError(f"k and offset must not be negative (k={k}, offset={offset})")
    if sort not in SORTS:
        raise LookalikeError(f"unknown sort {sort!r}; sorts: {', '.join(SORTS)}")
    s = catalog.settings
    q, colour_target, avoid_palettes = _direction(catalog, query)
    w = s.colour_weight if query.colour_weight is None else float(query.colour_weight)
    w = float(np.clip(w, 0.0, 1.0))
    diversity = s.diversity if query.diversity is None else float(query.diversity)
    diversity = float(np.clip(diversity, 0.0, 1.0))
    use_colour = w > 0 and (colour_target is not None or bool(avoid_palettes))
    colour = _Colour(colour_target, avoid_palettes, w) if use_colour else None
    excluded = sorted({*map(int, exclude), *query.example_rowids})
    if k == 0:
        return []
    if sort == "relevance" and diversity <= 0:
        # the exact order by match, as deep as the page: every page a slice of it
        rowids, match, cosine = _best_matches(catalog, q, offset + k, filters, excluded, colour)
        picked = list(range(len(rowids)))
        scores = [float(m) for m in match]
    else:
        # the list is the `depth` best look-alikes, whatever page is asked for
        depth = max(ranking_bound(s, diversity, sort), offset + k)
        wanted = depth if sort != "relevance" else offset + k
        if diversity > 0:
            rowids, match, cosine = _best_matches(
                catalog, q, max(MMR_PER_RESULT * depth, 100), filters, excluded, colour
            )
            vectors = catalog.index.vectors(rowids)
            if len(vectors) != len(rowids):  # not every candidate in the exact store
                vectors = np.stack([catalog.store.vector(int(r)) for r in rowids])
            # near-duplicates (a re-photo, a second listing of one garment) are collapsed
            # only when the shopper asks for variety: at diversity 0 a cheaper listing shows
            picked, scores = mmr(match, vectors, wanted, diversity, s.near_duplicate_cos)
        else:
            rowids, match, cosine = _best_matches(catalog, q, depth, filters, excluded, colour)
            picked = list(range(len(rowids)))
            scores = [float(m) for m in match]
        if sort != "relevance":
            values = catalog.store.sort_values([int(rowids[i]) for i in picked], sort)
            positions = sort_positions(values, sort)
            picked = [picked[p] for p in positions]
            scores = [scores[p] for p in positions]
    if not len(rowids):
        return []
    chosen = [(int(rowids[i]), sc) for i, sc in zip(picked, scores, strict=True)]
    sims: list[float | None] = [float(cosine[i]) for i in picked]
    end = offset + k
    return catalog.results(chosen[offset:end], sims[offset:end])


def search_image(
    catalog: Catalog,
    source: ImageSource,
    k: int = 10,
    filters: Filters | None = None,
    *,
    colour_weight: float | None = None,
    diversity: float | None = None,
    offset: int = 0,
    sort: str = "relevance",
    name: str | None = None,
) -> list[Result]:
    """Look-alikes of a photo (path or bytes; `name` labels bytes in errors) in `catalog`:
    results `offset` … `offset + k` of its ranking. `colour_weight` ("match colour", 0–1) and
    `diversity` (0–1) default to the settings'; `sort` orders the best look-alikes by price,
    sustainability...; see `recommend`."""
    query = Query(colour_weight=colour_weight, diversity=diversity).add_photo(
        catalog, source, name=name
    )
    return recommend(catalog, query, k, filters, offset=offset, sort=sort)


def similar(
    catalog: Catalog,
    item_id: str,
    k: int = 10,
    filters: Filters | None = None,
    *,
    colour_weight: float | None = None,
    diversity: float | None = None,
    offset: int = 0,
    sort: str = "relevance",
) -> list[Result]:
    """"More like this": look-alikes of a catalog item, the item itself left out; same
    controls as `search_image`."""
    query = Query(colour_weight=colour_weight, diversity=diversity).add_item(catalog, item_id)
    return recommend(catalog, query, k, filters, offset=offset, sort=sort)


def _direction(
    catalog: Catalog, query: Query
) -> tuple[Vector, Vector | None, list[tuple[float, Vector]]]:
    """The unit query vector, the colour target (None: no colour to match) and the palettes
    steered away from (strength, palette)."""
    s = catalog.settings
    q = rocchio(query, s.rocchio_gamma)
    colour_target: Vector | None = None
    if query.positive_palettes:
        mean = np.mean(query.positive_palettes, axis=0).astype(np.float32)
        colour_target = mean / max(float(mean.sum()), 1e-9)
    avoid_palettes: list[tuple[float, Vector]] = []
    if query.steer:
        dirs = directions_for(catalog)
        shift = np.zeros(catalog.index.dim, dtype=np.float32)
        for asked, strength in query.steer.items():
            name = dirs.resolve(asked)  # case-insensitive; colours by canonical name
            if name is None:
                raise UnknownDirectionError(
                    f"no steering direction {asked!r}; see steering_directions()"
                )
            strength = float(np.clip(strength, -1.0, 1.0))
            shift += strength * s.steer_scale * dirs.directions[name]
            attr, _, value = name.partition(":")
            pal = dirs.palettes.get(value) if attr == "colour" else None
            if pal is not None and strength > 0:
                colour_target = (
                    pal if colour_target is None
                    else (1 - strength) * colour_target + strength * pal
                )
            elif pal is not None and strength < 0:
                avoid_palettes.append((-strength, pal))
        q = shift if q is None else q + shift
    if q is None or not np.any(q):
        raise EmptyQueryError("a query needs a positive example or a steering direction")
    return _unit(q.astype(np.float32)), colour_target, avoid_palettes
