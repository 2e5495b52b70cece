""""More like these, less like those": Rocchio queries, attribute steering, colour weight, MMR.

    q = Σ wᵢ·posᵢ / Σ wᵢ  −  γ · Σ vⱼ·negⱼ / Σ vⱼ          (Rocchio, γ = settings.rocchio_gamma)
    q ← q/|q| + Σ sₐ · steer_scale · dₐ                     (dₐ: unit attribute direction)
    score = (1 − w)·cos(q, x) + w·colour_sim(target, x)     (w: colour weight)

then maximal marginal relevance (λ = 1 − diversity) over a candidate pool with near-duplicates
collapsed. Candidates come from the catalog's pre-filtered search, so filters always hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from lookalike.attributes.colour import colour_palette, colour_similarity, parse_palette
from lookalike.attributes.directions import directions_for
from lookalike.catalog import Catalog, Filters, Result
from lookalike.errors import LookalikeError
from lookalike.images import ImageSource, load_image, read_image_bytes
from lookalike.recommend.diversity import mmr

__all__ = [
    "EmptyQueryError",
    "Query",
    "UnknownDirectionError",
    "recommend",
    "rocchio",
    "steering_directions",
]

Vector = NDArray[np.float32]


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
        self, catalog: Catalog, source: ImageSource, liked: bool = True, weight: float = 1.0
    ) -> Query:
        """Add a photo (path or bytes) as a positive (or negative) example."""
        data = source if isinstance(source, bytes) else read_image_bytes(source, catalog.limits)
        vec = catalog.embed(data)
        palette, _ = colour_palette(load_image(data, limits=catalog.limits, draft_size=(128, 128)))
        self._add(vec, liked, weight, palette)
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


def _palettes_of(catalog: Catalog, rowids: Sequence[int]) -> NDArray[np.float32]:
    from lookalike.attributes.colour import COLOUR_NAMES

    out = np.zeros((len(rowids), len(COLOUR_NAMES)), dtype=np.float32)
    if not rowids:
        return out
    where = {int(r): i for i, r in enumerate(rowids)}
    with catalog.store.connection() as conn:
        for start in range(0, len(rowids), 500):
            chunk = [int(r) for r in rowids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            for rowid, text in conn.execute(
                f"SELECT rowid, json_extract(predicted, '$.palette.value') FROM items"
                f" WHERE rowid IN ({marks})",
                chunk,
            ):
                out[where[int(rowid)]] = parse_palette(text)
    return out


def recommend(
    catalog: Catalog,
    query: Query,
    k: int = 10,
    filters: Filters | None = None,
    exclude: Sequence[int] = (),
) -> list[Result]:
    """Top-k items for a query: Rocchio + steering + colour weight, then MMR; `exclude` rowids
    (e.g. the examples themselves) never come back."""
    s = catalog.settings
    q = rocchio(query, s.rocchio_gamma)
    dirs = directions_for(catalog) if query.steer else None
    colour_target: Vector | None = None
    if query.positive_palettes:
        mean = np.mean(query.positive_palettes, axis=0).astype(np.float32)
        colour_target = mean / max(float(mean.sum()), 1e-9)
    avoid_palettes: list[tuple[float, Vector]] = []
    if dirs is not None:
        shift = np.zeros(catalog.index.dim, dtype=np.float32)
        for name, strength in query.steer.items():
            if name not in dirs.directions:
                raise UnknownDirectionError(
                    f"no steering direction {name!r}; see steering_directions()"
                )
            strength = float(np.clip(strength, -1.0, 1.0))
            shift += strength * s.steer_scale * dirs.directions[name]
            attr, _, value = name.partition(":")
            pal = dirs.palettes.get(value.lower()) if attr == "colour" else None
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
    q = _unit(q.astype(np.float32))

    k = max(0, int(k))
    pool = max(20 * k, 200)
    excluded = sorted({*map(int, exclude), *query.example_rowids})
    hits = catalog.search_vectors(q[None], pool, filters, excluded)[0]
    if not hits:
        return []
    rowids = [r for r, _ in hits]
    relevance = np.asarray([sc for _, sc in hits], dtype=np.float32)
    vectors = catalog.index.vectors(np.asarray(rowids, dtype=np.int64))
    if len(vectors) != len(rowids):  # not every candidate in the exact store (should not be)
        vectors = np.stack([catalog.store.vector(r) for r in rowids])

    w = s.colour_weight if query.colour_weight is None else float(query.colour_weight)
    w = float(np.clip(w, 0.0, 1.0))
    score = relevance
    if (colour_target is not None or avoid_palettes) and w > 0:
        palettes = _palettes_of(catalog, rowids)
        if palettes.any():
            colour = np.zeros(len(rowids), dtype=np.float32)
            if colour_target is not None:
                colour += colour_similarity(colour_target, palettes)
            for strength, pal in avoid_palettes:
                colour -= strength * colour_similarity(pal, palettes)
            score = (1 - w) * relevance + w * colour

    diversity = 1.0 - s.mmr_lambda if query.diversity is None else float(query.diversity)
    lam = 1.0 - float(np.clip(diversity, 0.0, 1.0))
    order = np.argsort(-score, kind="stable")[: max(10 * k, 100)]
    picked = mmr(score[order], vectors[order], k, lam, s.near_duplicate_cos)
    chosen = [(rowids[order[i]], float(score[order[i]])) for i in picked]
    return catalog.results(chosen)
