"""Attribute directions for steering: mean(embedding | attribute = v) − mean(rest).

Values come from the catalog (given, else predicted by a tagger): ``category``, ``colour`` and
every attribute of `Settings.tag_attributes` the items have (``pattern``, ``usage``,
``gender``... from columns or extra metadata fields). Colours by canonical name (`Navy Blue` and
the tagger's `navy` are one direction, ``colour:navy``). A value needs `MIN_ITEMS` items to get
a direction. Also kept per colour name: the mean palette of its items, so "in red" can move the
colour target of the colour-weight rerank as well as the embedding.

Directions are cached per catalog and recomputed when its items change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lookalike.attributes.colour import parse_palette
from lookalike.attributes.probe import IGNORED_VALUES
from lookalike.catalog import Catalog
from lookalike.catalog.filters import attribute_sql
from lookalike.colour_names import canonical_colour

__all__ = ["AttributeDirections", "catalog_version", "direction_attributes", "directions_for"]

#: Attributes that always get directions; `Settings.tag_attributes` adds the others.
ATTRIBUTES = ("category", "colour")
MIN_ITEMS = 5


def direction_attributes(catalog: Catalog) -> tuple[str, ...]:
    """The attributes whose values get steering directions in this catalog."""
    return tuple(dict.fromkeys((*ATTRIBUTES, *catalog.settings.tag_attributes)))


def _sql(attributes: tuple[str, ...]) -> str:
    values = ", ".join(attribute_sql(a) for a in attributes)
    return f"SELECT rowid, {values}, json_extract(predicted, '$.palette.value') FROM items " \
        "ORDER BY rowid"


def value_key(attribute: str, value: str) -> str:
    """How values of `attribute` are compared: colours by canonical name, others by lower
    case without surrounding spaces."""
    return canonical_colour(value) if attribute == "colour" else value.strip().lower()


@dataclass(frozen=True)
class AttributeDirections:
    """Unit steering directions by name (``"colour:red"``) and mean palettes by colour name."""

    directions: dict[str, NDArray[np.float32]]
    palettes: dict[str, NDArray[np.float32]]
    counts: dict[str, int]

    def names(self) -> list[str]:
        return sorted(self.directions)

    def resolve(self, name: str) -> str | None:
        """The direction `name` stands for, or None: exact, else by attribute and value
        compared case-insensitively (colours by canonical name: ``colour:Navy Blue`` →
        ``colour:navy``)."""
        if name in self.directions:
            return name
        attr, sep, value = name.partition(":")
        if not sep:
            return None
        attr = attr.strip().lower()
        key = value_key(attr, value)
        for known in self.directions:
            k_attr, _, k_value = known.partition(":")
            if k_attr.lower() == attr and value_key(attr, k_value) == key:
                return known
        return None


_cache: dict[int, tuple[tuple[object, ...], AttributeDirections]] = {}
_lock = threading.Lock()


def catalog_version(catalog: Catalog) -> tuple[object, ...]:
    """Changes when the catalog's items, tags or vectors change (one read): the key of
    caches of what is derived from them (directions, the words' vocabulary)."""
    with catalog.store.connection() as conn:
        row = conn.execute(
            "SELECT count(*), max(updated_at), sum(length(predicted)), max(rowid) FROM items"
        ).fetchone()
    return (catalog.store.location, tuple(row), len(catalog.index),
            direction_attributes(catalog))


def compute_directions(catalog: Catalog) -> AttributeDirections:
    attributes = direction_attributes(catalog)
    with catalog.store.connection() as conn:
        rows = conn.execute(_sql(attributes)).fetchall()
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
    palette_col = len(attributes) + 1
    for col, attr in enumerate(attributes, start=1):
        groups: dict[str, list[int]] = {}
        display: dict[str, str] = {}
        for i, r in enumerate(rows):
            value = r[col]
            if value is None or str(value).strip().lower() in IGNORED_VALUES:
                continue
            key = value_key(attr, str(value))
            display.setdefault(key, key if attr == "colour" else str(value).strip())
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
                pals = [parse_palette(rows[i][palette_col]) for i in members]
                pals = [p for p in pals if p.any()]
                if pals:
                    palettes[key] = np.mean(pals, axis=0).astype(np.float32)
    return AttributeDirections(directions, palettes, counts)


def directions_for(catalog: Catalog) -> AttributeDirections:
    """The catalog's attribute directions (cached until its items change)."""
    version = catalog_version(catalog)
    key = id(catalog)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
    fresh = compute_directions(catalog)
    with _lock:
        _cache[key] = (version, fresh)
    return fresh
