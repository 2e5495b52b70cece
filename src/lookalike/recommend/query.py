""""More like these, less like those": Rocchio queries, attribute steering, colour weight, MMR.
Every query of the library, the CLI and the API is ranked here (photo search, "more like this",
several photos, positive / negative items).

    q = Σ wᵢ·posᵢ / Σ wᵢ  −  γ · Σ vⱼ·negⱼ / Σ vⱼ          (Rocchio, γ = settings.rocchio_gamma)
    q ← q/|q| + Σ sₐ · steer_scale · dₐ                     (dₐ: unit attribute direction)
    match = (1 − w)·cos(q, x) + w·colour_sim(target, x)     (w: colour weight, "match colour")
    score = match − diversity · max cos(x, results ranked above x)     (MMR, `diversity.py`;
                                                       above 0, near-duplicates collapsed)

Candidates come from the catalog's pre-filtered search, so filters always hold. A query is
ranked to a fixed depth (`settings.max_results`, or deeper if asked for more): the candidates
and hence the ranking do not depend on which page of it is asked for, so `offset` pages never
repeat or skip an item.
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
from lookalike.errors import LookalikeError
from lookalike.images import ImageSource
from lookalike.recommend.diversity import mmr

__all__ = [
    "EmptyQueryError",
    "Query",
    "UnknownDirectionError",
    "photo_palette",
    "recommend",
    "rocchio",
    "steering_directions",
]

Vector = NDArray[np.float32]

#: Candidates fetched by cosine for the colour weight to rerank, per result of the depth ranked.
POOL_PER_RESULT = 10
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


def recommend(
    catalog: Catalog,
    query: Query,
    k: int = 10,
    filters: Filters | None = None,
    exclude: Sequence[int] = (),
    offset: int = 0,
) -> list[Result]:
    """Results `offset` … `offset + k` of a query's ranking: Rocchio + steering, colour weight,
    then MMR diversity; `exclude` rowids (e.g. the examples themselves) never come back.

    Each `Result.score` is the score it was ranked by (never rising down the list) and
    `Result.similarity` the plain cosine to the query vector."""
    if k < 0 or offset < 0:
        raise LookalikeError(f"k and offset must not be negative (k={k}, offset={offset})")
    s = catalog.settings
    q, colour_target, avoid_palettes = _direction(catalog, query)
    w = s.colour_weight if query.colour_weight is None else float(query.colour_weight)
    w = float(np.clip(w, 0.0, 1.0))
    diversity = s.diversity if query.diversity is None else float(query.diversity)
    diversity = float(np.clip(diversity, 0.0, 1.0))
    colour = w > 0 and (colour_target is not None or bool(avoid_palettes))
    # the candidates depend on the settings, not on the page asked for: every page is cut
    # from one ranking (by cosine alone any pool as deep as the page gives the same order)
    depth = max(s.max_results, offset + k)
    candidates = max(MMR_PER_RESULT * depth, 100) if diversity > 0 else offset + k
    pool = max(POOL_PER_RESULT * depth, 200) if colour else candidates
    excluded = sorted({*map(int, exclude), *query.example_rowids})
    hits = catalog.search_vectors(q[None], pool, filters, excluded)[0]
    if not hits or k == 0:
        return []
    rowids = np.asarray([r for r, _ in hits], dtype=np.int64)
    cosine = np.asarray([sc for _, sc in hits], dtype=np.float32)
    match = cosine
    if colour:
        palettes = palettes_of(catalog, rowids.tolist())
        if palettes.any():
            colour_sim = np.zeros(len(rowids), dtype=np.float32)
            if colour_target is not None:
                colour_sim += colour_similarity(colour_target, palettes)
            for strength, pal in avoid_palettes:
                colour_sim -= strength * colour_similarity(pal, palettes)
            match = (1 - w) * cosine + w * colour_sim
    order = np.argsort(-match, kind="stable")[:candidates]
    if diversity > 0:
        vectors = catalog.index.exact.get(rowids[order])
        if len(vectors) != len(order):  # not every candidate in the exact store (should not be)
            vectors = np.stack([catalog.store.vector(int(r)) for r in rowids[order]])
        # near-duplicates (a re-photo, a second listing of one garment) are collapsed only
        # when the shopper asks for variety: at diversity 0 a cheaper listing of it shows too
        picked, scores = mmr(match[order], vectors, offset + k, diversity, s.near_duplicate_cos)
    else:
        picked = list(range(min(len(order), offset + k)))
        scores = [float(match[order[i]]) for i in picked]
    chosen = [(int(rowids[order[i]]), sc) for i, sc in zip(picked, scores, strict=True)]
    sims: list[float | None] = [float(cosine[order[i]]) for i in picked]
    return catalog.results(chosen[offset:], sims[offset:])


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
