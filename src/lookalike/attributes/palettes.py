"""The stored garment palettes of a catalog's items, parsed once and kept in memory.

A query's colour weight compares the palettes of up to a thousand candidates; reading them
from SQLite and parsing them at every query cost more than the search itself. The cache of a
catalog follows its items: it starts afresh when the vectors change (items added or removed,
by any process: `vectors_version`) or when existing items' tags do (a re-tag, by any process:
`tags_version`), and is filled as queries need rows (13 floats per item).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from lookalike.attributes.colour import COLOUR_NAMES, parse_palettes
from lookalike.catalog import Catalog

__all__ = ["PaletteCache", "palettes_of"]


def _read(catalog: Catalog, rowids: Sequence[int]) -> NDArray[np.float32]:
    texts: dict[int, str | None] = {}
    with catalog.store.connection() as conn:
        for start in range(0, len(rowids), 500):
            chunk = [int(r) for r in rowids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            texts.update(conn.execute(
                f"SELECT rowid, json_extract(predicted, '$.palette.value') FROM items"
                f" WHERE rowid IN ({marks})",
                chunk,
            ).fetchall())
    return parse_palettes([texts.get(int(r)) for r in rowids])


class PaletteCache:
    """Palettes of one catalog's indexed items by rowid (zeros: no palette)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._ids = np.empty(0, dtype=np.int64)
        self._rows = np.zeros((0, len(COLOUR_NAMES)), dtype=np.float32)
        self._known = np.zeros(0, dtype=bool)

    def get(self, catalog: Catalog, rowids: Sequence[int]) -> NDArray[np.float32]:
        wanted = np.asarray(rowids, dtype=np.int64)
        store = catalog.store
        key = (store.location, store.vectors_version(), store.tags_version())
        with self._lock:
            if key != self._key:
                self._ids = np.array(catalog.index.ids(), dtype=np.int64)
                self._rows = np.zeros((len(self._ids), len(COLOUR_NAMES)), dtype=np.float32)
                self._known = np.zeros(len(self._ids), dtype=bool)
                self._key = key
            pos = np.minimum(np.searchsorted(self._ids, wanted), max(len(self._ids) - 1, 0))
            indexed = (self._ids[pos] == wanted) if len(self._ids) else np.zeros(len(wanted), bool)
            new = indexed & ~self._known[pos]
            if new.any():
                self._rows[pos[new]] = _read(catalog, wanted[new].tolist())
                self._known[pos[new]] = True
            out = np.zeros((len(wanted), len(COLOUR_NAMES)), dtype=np.float32)
            out[indexed] = self._rows[pos[indexed]]
        if not indexed.all():  # not in the index (should not happen): read, do not keep
            out[~indexed] = _read(catalog, wanted[~indexed].tolist())
        return out


_caches: dict[int, PaletteCache] = {}
_caches_lock = threading.Lock()


def palettes_of(catalog: Catalog, rowids: Sequence[int]) -> NDArray[np.float32]:
    """The palettes of these items (rows in order; zeros where an item has none), from the
    catalog's cache, which lives as long as the catalog object."""
    with _caches_lock:
        cache = _caches.get(id(catalog))
        if cache is None:
            cache = _caches[id(catalog)] = PaletteCache()
            weakref.finalize(catalog, _caches.pop, id(catalog), None)
    return cache.get(catalog, rowids)
