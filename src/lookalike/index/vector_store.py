"""The vector-store contract: what `Catalog` asks of whatever holds and searches its vectors.

A catalog keeps its items in a metadata store (SQLite by default: `CatalogStore`), the source of
truth for items *and* their vectors, and searches them through a `VectorStore` chosen by
`Settings.vector_store`:

* ``"embedded"`` (default): `lookalike.index.embedded.EmbeddedStore`, files in the catalog
  folder, memory-mapped so that every process serving the catalog shares one copy;
* ``"milvus://HOST:PORT"``: a Milvus server (pymilvus), for catalogs beyond one machine;
* ``"pgvector"`` or ``"postgresql://…"``: a PostgreSQL table with the pgvector extension
  (`lookalike.index.pgvector.PgvectorStore`), in the catalog's own database or another.

All implement the same protocol, and the same congruence tests hold them to the same answers.

Ids are the metadata store's int64 item rowids. Vectors are L2-normalised float32 rows of the
catalog's width (`dim`, recorded with the catalog's model), so inner product is cosine.

Writes. `Catalog` writes an item to the metadata store first, then tells the vector store:
`upsert(ids, vectors, fields)` for new items or new vectors, `set_fields(ids, fields)` when only
an item's filterable fields changed (an edit, a predicted tag), `remove(ids)` for deleted items.
Every item carries its filterable scalar fields (`Scalars`), so a backend filters by itself:
`search` takes the catalog's `Filters` and applies them *before* ranking (pre-filtering), never
by dropping results afterwards, so a filter keeping 1 % of the catalog still returns k items.
A filter on a field `Scalars` does not hold (`Scalars.covers`) is resolved by the metadata store
instead and reaches `search` as `allowed` ids.

Several processes. A catalog may be written by one process (a CLI ingest, the server's upload
route) while others search it (the server's search processes, see `lookalike.api.cpu`). The
metadata store records every change to a vector or to an item's filterable fields in a change
log (`VectorSource.changes`, kept by SQLite triggers, so writes that bypass `Catalog` — a tagger
setting predicted colours — are logged too); `sync()` brings a store in step with it. `Catalog`
calls `sync()` before every search, so it must cost one small read when nothing changed. A
backend whose state lives on a server (Milvus) sees other processes' writes by itself, and may use
the log to repair writes a crashed process did not finish.

Reads. `search` returns, per query, the k best (score, id) pairs, best first, padded with score
-inf and id -1, and the `SearchPlan` that served it. `vectors(ids)` returns stored rows (for
"more like this", rescoring and taste), `ids()` every id, `len()` how many.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from lookalike.errors import LookalikeError
from lookalike.index.base import Ids, Matrix

if TYPE_CHECKING:
    from lookalike.catalog.filters import Filters


@dataclass(frozen=True)
class Scalars:
    """One item's filterable fields, as a vector store keeps them beside its vector, in the
    forms the catalog's `Filters` compare (`Filters.to_sql`): `category` lower case and given,
    else predicted; `brand` normalised (`normalise_brand`, the items' `brand_key`); `colour`
    given, else predicted, lower case with hyphens, underscores and slashes as spaces
    (`colour_sql`); `price` in the catalog's base currency (`price_base`); `state` one of
    available, reserved, sold. None is "unknown": no filter on that field keeps the item (a
    state of None counts as available)."""

    category: str | None = None
    brand: str | None = None
    colour: str | None = None
    sizes: tuple[str, ...] = ()
    price: float | None = None
    kids: bool | None = None
    second_hand: bool | None = None
    sustainability: float | None = None
    state: str | None = None

    @staticmethod
    def covers(filters: Filters) -> bool:
        """Whether every field `filters` sets is one of these (currency, brand ratings,
        shoppers' ratings and other attributes are not: the caller resolves such a filter
        through the metadata store and passes the ids it keeps as `allowed`)."""
        return set(filters.model_dump(exclude_defaults=True)) <= _COVERED

    def matches(self, filters: Filters) -> bool:
        """The reference meaning of a filter, item by item (backends must agree with it)."""
        f = filters
        return (
            _any_of(self.category, [w.lower() for w in f.category])
            and _any_of(self.brand, wanted_brands(f))
            and _any_of(self.colour, wanted_colours(f))
            and (not f.size or bool({s.lower() for s in f.size} & set(self.sizes)))
            and (f.price_min is None or (self.price is not None and self.price >= f.price_min))
            and (f.price_max is None or (self.price is not None and self.price <= f.price_max))
            and (f.kids is None or self.kids == f.kids)
            and (f.second_hand is None or self.second_hand == f.second_hand)
            and (
                f.min_sustainability is None
                or (self.sustainability is not None
                    and self.sustainability >= f.min_sustainability)
            )
            and _state_ok(self.state or "available", f)
        )


def _any_of(value: str | None, wanted: list[str]) -> bool:
    return not wanted or (value is not None and value in wanted)


def _state_ok(state: str, f: Filters) -> bool:
    if f.state:
        return state in f.state
    return not f.hides_sold() or state != "sold"


def wanted_brands(filters: Filters) -> list[str]:
    """The normalised brand names a brand filter keeps."""
    from lookalike.catalog.brands import normalise_brand

    return list(dict.fromkeys(normalise_brand(b) for b in filters.brand))


def wanted_colours(filters: Filters) -> list[str]:
    """Every colour name a colour filter keeps (`colour_variants`)."""
    from lookalike.colour_names import colour_variants

    return list(dict.fromkeys(v for c in filters.colour for v in colour_variants(c)))


def wanted_states(filters: Filters) -> list[str] | None:
    """The states a filter keeps, None for every state but sold (the default), [] for all."""
    if filters.state:
        return list(filters.state)
    return None if filters.hides_sold() else []


#: The `Filters` fields `Scalars` answers.
_COVERED = frozenset({"category", "brand", "colour", "size", "price_min", "price_max", "kids",
                      "second_hand", "min_sustainability", "state", "include_sold"})


@dataclass(frozen=True)
class SearchPlan:
    """Which method served a search, over how many candidate items (for logs, benchmarks and
    tests): "exact" (every item), "exact-subset" (every item the filter keeps), "ivf" (the
    embedded store's quantised inverted lists, exact rescoring), "milvus"..."""

    method: str
    candidates: int


class SearchResult(NamedTuple):
    scores: Matrix  # (m, k) float32, best first, -inf where fewer than k items qualify
    ids: Ids  # (m, k) int64, -1 where fewer than k items qualify
    plan: SearchPlan


#: Kinds of change in the metadata store's change log.
VECTOR, REMOVED, FIELDS = 0, 1, 2


class VectorSource(Protocol):
    """What a vector store may read from the metadata store (the source of truth):
    implemented by `lookalike.catalog.store.CatalogStore`."""

    def change_seq(self) -> int:
        """The newest change's sequence number (0 when none): one small read."""
        ...

    def changes(self, since: int) -> tuple[Ids, Ids, Ids]:
        """(sequence numbers, item ids, kinds: VECTOR, REMOVED or FIELDS) of the changes after
        `since`, oldest first."""
        ...

    def trim_changes(self, through: int) -> None:
        """Forget the changes up to `through` (a store has applied them)."""
        ...

    def vector_count(self) -> int:
        """How many items have a vector."""
        ...

    def model_generation(self) -> str | None:
        """How many times the catalog was re-encoded with another model (None: never)."""
        ...

    def vectors_of(self, rowids: Ids) -> tuple[Ids, Matrix]:
        """(ids found, their vectors), ascending; ids without a vector are left out."""
        ...

    def scalars_of(self, rowids: Ids) -> list[Scalars]:
        """Each id's filterable fields, in the order asked (Scalars() for unknown ids)."""
        ...

    def iter_vectors(self, batch: int) -> Iterator[tuple[Ids, Matrix, list[Scalars]]]:
        """Every item with a vector, ascending id, `batch` at a time, with its fields."""
        ...


class VectorStore(Protocol):
    """Holds a catalog's vectors and filterable fields; searches them. See the module doc."""

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def ids(self) -> Ids:
        """Every stored id, ascending."""
        ...

    def vectors(self, ids: Ids) -> Matrix:
        """The stored rows of those `ids` that are present, in the order asked."""
        ...

    def upsert(
        self, ids: Ids, vectors: Matrix, fields: Sequence[Scalars], *, compact: bool = True
    ) -> None:
        """Store (or replace) items already written to the metadata store. `compact=False`:
        more are coming (an ingest's chunks), leave any reorganising for the last."""
        ...

    def set_fields(self, ids: Ids, fields: Sequence[Scalars]) -> None:
        """New filterable fields for stored items (their vectors are unchanged)."""
        ...

    def remove(self, ids: Ids) -> None:
        """Forget items deleted from the metadata store (unknown ids are ignored)."""
        ...

    def search(
        self,
        queries: Matrix,
        k: int,
        filters: Filters | None = None,
        allowed: Ids | None = None,
        exclude: Ids | None = None,
    ) -> SearchResult:
        """The k nearest items per query among those `filters` keep, restricted to `allowed`
        ids when given, `exclude`d ids left out; (m, d) queries → (m, k) scores and ids."""
        ...

    def sync(self) -> bool:
        """Catch up with changes other processes made; True if anything changed. Cheap (one
        small read) when nothing did."""
        ...

    def describe(self) -> dict[str, object]:
        """What `lookalike info` shows about the store (backend, method, sizes)."""
        ...

    def close(self) -> None: ...


def as_ids(ids: Ids | Sequence[int] | NDArray[np.integer]) -> Ids:
    """Ids as a flat int64 array."""
    return np.asarray(ids, dtype=np.int64).reshape(-1)


def source_vectors(source: VectorSource, ids: Ids, dim: int) -> Matrix:
    """The rows of those `ids` that `source` holds, in the order asked: how a store whose
    vectors live on a server answers `vectors` (the metadata store holds the very vectors the
    server was given, and is local)."""
    ids = as_ids(ids)
    found, rows = source.vectors_of(np.unique(ids))
    if len(found) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    pos = np.clip(np.searchsorted(found, ids), 0, len(found) - 1)
    hit = found[pos] == ids
    out: Matrix = rows[pos[hit]]
    return out


class VectorStoreError(LookalikeError):
    """A vector store URL that names no backend, or a backend that cannot be used here."""
