"""Synthetic catalogs for scale tests and benchmarks: clustered unit vectors with realistic
metadata, made fast (no images, no encoder).

Vectors: a direction every item shares (image features are not centred), its category's (20)
and its style's (50 per category) directions, variation in a 32-dimensional subspace shared by
all items, and noise in every dimension, normalised. The weights were chosen so that at the
clothing dataset's size (5.4k items) the similarities look like the default model's on it:
best match cosine 0.75 (real: 0.75), 10th 0.67 (0.70), 100th 0.60 (0.62), median 0.31 (0.29) —
neighbourhoods as dense as real ones, which is what makes approximate search hard. Queries are
fresh items from the same distribution: photos of things like catalog items, not copies.

Metadata: the category, a brand (500, Zipf popularity), a price (log-normal, by category),
second-hand (40 %), kids (10 %), sizes from the category's size set, a colour (70 % given, 20 %
predicted by a tagger, 10 % unknown), a sustainability score for half the items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lookalike.catalog.schema import ItemFields, Tag
from lookalike.catalog.store import NewItem

__all__ = ["CATEGORIES", "SyntheticCatalog"]

CATEGORIES = (
    "dress", "t-shirt", "shirt", "blouse", "sweater", "hoodie", "jacket", "coat", "jeans",
    "trousers", "shorts", "skirt", "suit", "sneakers", "boots", "sandals", "heels", "bag",
    "hat", "scarf",
)
COLOURS = ("black", "white", "grey", "blue", "navy", "red", "pink", "green", "beige", "brown",
           "yellow", "purple")
SIZES = (("xs", "s", "m", "l", "xl", "xxl"), ("34", "36", "38", "40", "42", "44"),
         ("37", "38", "39", "40", "41", "42", "43", "44"), ("one size",))
_STYLES = 50
_RANK = 32
# weights of the shared, category, style, subspace and noise parts (see the module doc)
_SHARED, _CATEGORY, _STYLE, _VARIATION, _NOISE = 0.58, 0.55, 0.35, 0.5, 0.3


@dataclass(frozen=True)
class SyntheticCatalog:
    """A reproducible world of `dim`-d items: `items(a, b)` are items a..b-1 of catalog
    `seed`; `queries(m)` fresh items of the same world."""

    dim: int
    seed: int = 0

    def _world(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        rng = np.random.default_rng(12345)
        shared = rng.standard_normal(self.dim)
        cats = rng.standard_normal((len(CATEGORIES), self.dim))
        styles = (_SHARED * shared + _CATEGORY * np.repeat(cats, _STYLES, axis=0)
                  + _STYLE * rng.standard_normal((len(CATEGORIES) * _STYLES, self.dim)))
        basis = rng.standard_normal((_RANK, self.dim)) / np.sqrt(_RANK)
        return styles.astype(np.float32), basis.astype(np.float32)

    def vectors(self, n: int, seed: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """n unit vectors and each one's style (style // 50 is its category)."""
        styles, basis = self._world()
        rng = np.random.default_rng(seed)
        style = rng.integers(0, len(styles), n)
        x = (styles[style]
             + _VARIATION * (rng.standard_normal((n, _RANK)).astype(np.float32) @ basis)
             + _NOISE * rng.standard_normal((n, self.dim)).astype(np.float32))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float32), style.astype(np.int64)

    def queries(self, m: int, seed: int = 10_000) -> NDArray[np.float32]:
        return self.vectors(m, seed)[0]

    def batches(
        self, n: int, batch: int = 50_000
    ) -> Iterator[tuple[list[NewItem], NDArray[np.float32]]]:
        """The catalog's n items, `batch` at a time, ready for `Catalog.add_items`."""
        for a in range(0, n, batch):
            b = min(n, a + batch)
            yield self.items(a, b)

    def items(self, a: int, b: int) -> tuple[list[NewItem], NDArray[np.float32]]:
        n = b - a
        vectors, style = self.vectors(n, self.seed * 1_000_003 + a)
        rng = np.random.default_rng([self.seed, a, 7])
        category = style // _STYLES
        brand = (rng.zipf(1.4, n) - 1) % 500
        price = np.round(np.exp(rng.normal(3.0 + 0.08 * category, 0.7)), 2)
        second_hand = rng.random(n) < 0.4
        kids = rng.random(n) < 0.1
        colour = rng.integers(0, len(COLOURS), n)
        colour_how = rng.random(n)  # < 0.7 given, < 0.9 predicted, else unknown
        sustainability = np.where(rng.random(n) < 0.5, np.round(rng.uniform(0, 5, n), 1), np.nan)
        size_set = category % len(SIZES)
        items = []
        for i in range(n):
            sizes = SIZES[size_set[i]]
            pick = rng.random(len(sizes)) < 0.4
            predicted = None
            if 0.7 <= colour_how[i] < 0.9:
                predicted = {"colour": Tag(value=COLOURS[colour[i]], confidence=0.8)}
            fields = ItemFields.model_construct(
                title=f"{CATEGORIES[category[i]]} {a + i}",
                category=CATEGORIES[category[i]],
                brand=f"brand-{brand[i]:03d}",
                price=float(price[i]),
                currency="EUR",
                second_hand=bool(second_hand[i]),
                kids=bool(kids[i]),
                sizes=[s for s, p in zip(sizes, pick, strict=True) if p] or [sizes[0]],
                colour=COLOURS[colour[i]] if colour_how[i] < 0.7 else None,
                sustainability=None if np.isnan(sustainability[i]) else float(sustainability[i]),
                department=None, url=None, source="synthetic", extra={},
            )
            key = f"{self.seed}-{a + i}"
            items.append(NewItem(
                id=f"syn-{key}", fields=fields, image_path=f"synthetic/{key}.jpg",
                image_hash=hashlib.blake2b(key.encode(), digest_size=16).hexdigest(),
                predicted=predicted,
            ))
        return items, vectors
