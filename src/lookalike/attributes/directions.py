"""Attribute directions for steering: mean(embedding | attribute = v) − mean(rest).

Values come from the catalog (given, else predicted by a tagger): ``category``, ``colour`` and
``pattern`` (a ``pattern`` column lands in ``extra``). A value needs `MIN_ITEMS` items to get a
direction. Also kept per colour name: the mean palette of its items, so "in red" can move the
colour target of the colour-weight rerank as well as the embedding.

Directions are cached per catalog and recomputed when its items change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lookalike.attributes.colour import parse_palette
from lookalike.catalog import Catalog

__all__ = ["ATTRIBUTES", "AttributeDirections", "directions_for"]

ATTRIBUTES = ("category", "colour", "pattern")
MIN_ITEMS = 5
#: Catalog labels that are not an attribute value.
IGNORED_VALUES = frozenset({"", "not sure", "skip", "other", "na", "n/a", "none", "unknown"})

_SQL = """
SELECT rowid,
       coalesce(category, json_extract(predicted, '$.category.value')),
       lower(coalesce(colour, json_extract(predicted, '$.colour.value'))),
       lower(coalesce(json_extract(extra, '$.pattern'),
                      json_extract(predicted, '$.pattern.value'))),
       json_extract(predicted, '$.palette.value')
FROM items ORDER BY rowid
"""


@dataclass(frozen=True)
class AttributeDirections:
    """Unit steering directions by name (``"colour:red"``) and mean palettes by colour name."""

    directions: dict[str, NDArray[np.float32]]
    palettes: dict[str, NDArray[np.float32]]
    counts: dict[str, int]

    def names(self) -> list[str]:
        return sorted(self.directions)


_cache: dict[int, tuple[tuple[object, ...], AttributeDirections]] = {}
_lock = threading.Lock()


def _version(catalog: Catalog) -> tuple[object, ...]:
    with catalog.store.connection() as conn:
        row = conn.execute(
            "SELECT count(*), max(updated_at), sum(length(predicted)), max(rowid) FROM items"
        ).fetchone()
    return (str(catalog.store.path), tuple(row), len(catalog.index))


def compute_directions(catalog: Catalog) -> AttributeDirections:
    with catalog.store.connection() as conn:
        rows = conn.execute(_SQL).fetchall()
    if not rows:
        return AttributeDirections({}, {}, {})
    rowids = np.asarray([r[0] for r in rows], dtype=np.int64)
    present = np.isin(rowids, catalog.index.ids())
    rows = [r for r, ok in zip(rows, present, strict=True) if ok]
    vectors = catalog.index.vectors(rowids[present])
    if len(rows) == 0:
        return AttributeDirections({}, {}, {})
    total = vectors.sum(axis=0, dtype=np.float64)
    n = len(rows)
    directions: dict[str, NDArray[np.float32]] = {}
    counts: dict[str, int] = {}
    palettes: dict[str, NDArray[np.float32]] = {}
    for col, attr in enumerate(ATTRIBUTES, start=1):
        groups: dict[str, list[int]] = {}
        display: dict[str, str] = {}
        for i, r in enumerate(rows):
            value = r[col]
            if value is None or str(value).strip().lower() in IGNORED_VALUES:
                continue
            key = str(value).strip().lower()
            display.setdefault(key, str(value).strip())
            groups.setdefault(key, []).append(i)
        for key, members in groups.items():
            m = len(members)
            if m < MIN_ITEMS or m > n - MIN_ITEMS:
                continue
            inside = vectors[members].sum(axis=0, dtype=np.float64)
            diff = inside / m - (total - inside) / (n - m)
            norm = float(np.linalg.norm(diff))
            if norm == 0:
                continue
            name = f"{attr}:{display[key]}"
            directions[name] = (diff / norm).astype(np.float32)
            counts[name] = m
            if attr == "colour":
                pals = [parse_palette(rows[i][4]) for i in members]
                pals = [p for p in pals if p.any()]
                if pals:
                    palettes[key] = np.mean(pals, axis=0).astype(np.float32)
    return AttributeDirections(directions, palettes, counts)


def directions_for(catalog: Catalog) -> AttributeDirections:
    """The catalog's attribute directions (cached until its items change)."""
    version = _version(catalog)
    key = id(catalog)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
    fresh = compute_directions(catalog)
    with _lock:
        _cache[key] = (version, fresh)
    return fresh
