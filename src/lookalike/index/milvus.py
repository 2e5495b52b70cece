"""The Milvus backend of the vector-store contract (`lookalike.index.vector_store`).

    LOOKALIKE_VECTOR_STORE=milvus://HOST:PORT[/DATABASE][?prefix=P&index=hnsw&ef=256&shards=1]

Needs the `milvus` extra (pymilvus, imported only when this module is); tested against Milvus
2.3.5 standalone, and uses nothing newer (no nullable fields, grouping, sparse or hybrid search).

**One collection per catalog**, in DATABASE (default ``default``, created when missing), named
``{prefix}lookalike_{folder}_{hash}``: the catalog folder's name (lower case, ``[a-z0-9_]``, at
most 40 characters) and the first 10 hex digits of the SHA-256 of its absolute path, so two
catalogs never share a collection. A catalog whose metadata is in PostgreSQL
(`Settings.database_url`) is named after what names it on every machine instead: its schema
(without ``lookalike_``) and the hash of the server's host, port, database and schema — so
`lookalike serve` on several machines, each with its own catalog folder, searches one
collection (every machine must spell the server's host alike). Its description records the
catalog (folder, or server and schema) and the vector width: a collection of another width, or
made for another catalog, is a clear error, never overwritten.
Fields:

* ``id`` INT64 primary key: the item's rowid in the metadata store;
* ``vector`` FLOAT_VECTOR of the catalog's width, inner product (vectors are unit length);
* every filterable field of `Scalars`, encoded so that Milvus's expression keeps exactly the
  items `Scalars.matches` keeps: ``category``, ``brand``, ``colour`` as VARCHAR(32) holding the
  value's 128-bit BLAKE2b digest in hex ("" when unknown: no digest equals it); ``sizes`` as an
  ARRAY of such digests; ``price`` and ``sustainability`` as DOUBLE (NaN when unknown: every
  comparison with NaN is false); ``kids`` and ``second_hand`` as INT8 (1, 0; -1 when unknown);
  ``state`` as the digest of available, reserved or sold (an unknown state is available: only
  sold items are left out by default). Brands, colours and prices are stored as `Scalars` holds
  them (normalised brand, colour spelling, price in the base currency) and a filter's values
  are turned into the same forms (`wanted_brands`, `wanted_colours`, `wanted_states`). Filters
  on fields `Scalars` does not hold reach `search` as `allowed` ids: more than 100,000 of them
  are sent as the ids left out, when those are fewer.
  A filter's values are digested the same way, so an expression holds only hex digits, numbers
  and field names: no value (a brand called ``x" or id > 0 or "``) can change its meaning.

**Index**: ``index=hnsw`` (default; M=16, efConstruction=200, searched with ``ef`` = max(ef, k))
or ``index=flat`` (exact). Filters are evaluated by Milvus before ranking; when a filter keeps
few items of a segment, Milvus 2.3 scores them all instead of walking the graph, so selective
filters keep their recall (`bench/bench_scale.py --milvus start`). The server should run with
``queryNode.segcore.interimIndex.enableIndex: false`` (`lookalike.servers.MilvusServer` does):
otherwise rows not yet indexed (recent writes) are searched through a coarse IVF index that
misses a third of the neighbours under a 0.1 % filter.

**Writes and other processes.** The metadata store is the source of truth and its change log
(`VectorSource.changes`) says what to write: `upsert`, `set_fields` and `remove` (called after
the metadata store has committed) all apply every change logged since the collection's *marker*
— reading each changed item's vector and fields from the metadata store, upserting the items
that still have a vector and deleting the rest — then advance the marker. The marker lives in
the collection's properties (``lookalike.applied``: the change log position applied,
``lookalike.ts``: the Milvus timestamp of the last write), so it moves with the data. Writers
take a file lock in the catalog folder (`LOCK`), so they apply changes one at a time and in
order; for a catalog in PostgreSQL they also hold a PostgreSQL advisory lock named after the
catalog, so writers on other machines wait too. A process that crashed after committing to
the metadata store but before writing to Milvus leaves the marker behind the change log: the
next `sync()` anywhere (when no writer holds the lock) repairs it from the metadata store.
Ids above the collection's *top* (``lookalike.top``: no higher id was ever written to it;
raised before rows are sent, so a writer that dies half-way leaves none above it) are
*inserted*; the others are upserted. An upsert deletes each id as well, and Milvus 2.3 counts
those deletes against the segment the new rows land in: every segment of an ingest was then
rewritten by a compaction and indexed a second time. A collection without a known top (made by
an older lookalike, or moved on by one) has its highest id read from Milvus once.

Searches run at the timestamp of the newest write this process knows of (its own, or the
marker's, read by `sync()` whenever the change log moved): they see every write made before,
without waiting for Milvus's next time tick as "Strong" consistency does (~200 ms per search).
Milvus 2.3 does not report a delete's timestamp: after deletes the marker holds the client's
clock (+1 ms), so deletes are seen at once by processes whose clock agrees with the server's
(and the catalog never shows an item its database no longer holds anyway). `sync()` costs one
small read of the metadata store when nothing changed. `vectors(ids)` reads the metadata store,
which holds the very vectors Milvus was given, locally.

**Repair.** At open, a missing collection is created and filled from the metadata store; one
whose marker is ahead of the metadata store's change log (a database restored or made anew) or
whose item count differs from it after catching up (checked when no writer is half-way) is
dropped and filled again; so is one of an older format (made by an older lookalike: format 1
had no ``state`` and compared brands, colours and prices as given).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import logging
import math
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from lookalike.config import Settings
from lookalike.index.base import Ids, Matrix
from lookalike.index.naming import CODE_LENGTH, catalog_identity, collection_name, text_code
from lookalike.index.vector_store import (
    Scalars,
    SearchPlan,
    SearchResult,
    VectorSource,
    VectorStoreError,
    as_ids,
    source_vectors,
    wanted_brands,
    wanted_colours,
    wanted_states,
)

if TYPE_CHECKING:
    from lookalike.catalog.filters import Filters

__all__ = [
    "LOCK",
    "MilvusStore",
    "MilvusUrl",
    "collection_schema",
    "entity_rows",
    "filter_expression",
    "schema_fields",
]

log = logging.getLogger(__name__)

#: 2: brands normalised, colours as `Scalars` spells them, prices in the base currency, and
#: the listing state; a collection of format 1 is filled again from the metadata store
FORMAT = 2
LOCK = "milvus.lock"  # in the catalog folder: one writer at a time
MAX_SIZES = 128  # distinct sizes an item may offer (the item schema allows 100)
MAX_TOP_K = 16_384  # Milvus's limit on k (and on queries per request)
MAX_EXPR_IDS = 100_000  # ids an `allowed` or `exclude` list may hold
_APPLIED, _TS, _TOP = "lookalike.applied", "lookalike.ts", "lookalike.top"
_WRITE_BYTES = 16 << 20  # rows per insert/upsert request: about this many bytes
_IN_FLIGHT = 2  # write requests under way at once (`_apply`)
_FLUSH_ROWS = 50_000  # a write of at least this many rows seals its segments (to be indexed)
_QUERY_BATCH = 256  # queries per search request
_INDEX_MIN_ROWS = 1024  # Milvus indexes no smaller segment (minSegmentNumRowsToEnableIndex)
_ID_PAGE = 16_384  # ids per query when listing them (Milvus returns the smallest first)
_NO_ID = -(2**63) + 1  # below every id (Milvus cannot parse -2**63)
_HNSW = {"M": 16, "efConstruction": 200}
#: HNSW search breadth: measured at 100k x 256, recall@10 under a 10 % filter 0.96 at 128,
#: 0.98 at 256, 0.99 at 512, for about the same latency (docs/scaling.md)
DEFAULT_EF = 256
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TEXT_FIELDS = ("category", "brand", "colour")
_BOOL_FIELDS = ("kids", "second_hand")


# -- the URL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MilvusUrl:
    """``milvus://[USER:PASSWORD@]HOST:PORT[/DATABASE][?prefix=&index=&ef=&shards=&timeout=]``."""

    host: str
    port: int
    database: str = "default"
    prefix: str = ""
    index: str = "hnsw"  # "hnsw" or "flat"
    ef: int = DEFAULT_EF
    shards: int = 1
    timeout: float = 10.0  # seconds to connect
    user: str = ""
    password: str = ""

    @classmethod
    def parse(cls, url: str) -> MilvusUrl:
        def bad(why: str) -> VectorStoreError:
            return VectorStoreError(f"vector store {cls._safe(url)!r}: {why}")

        parts = urlsplit(url.strip())
        if parts.scheme != "milvus":
            raise bad("expected milvus://HOST:PORT")
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise bad("the port must be a number from 1 to 65535") from None
        if not host or not port:
            raise bad("expected milvus://HOST:PORT")
        database = unquote(parts.path.strip("/")) or "default"
        if not _NAME.match(database):
            raise bad(f"database {database!r}: letters, digits and _, not starting with a digit")
        query = parse_qs(parts.query, keep_blank_values=True)
        known = {"prefix", "index", "ef", "shards", "timeout"}
        if unknown := sorted(set(query) - known):
            raise bad(f"unknown option {unknown[0]!r}; known: {', '.join(sorted(known))}")

        def one(name: str, default: str) -> str:
            values = query.get(name, [default])
            if len(values) != 1:
                raise bad(f"option {name!r} given twice")
            return values[0]

        def number(name: str, default: int, low: float, high: float) -> float:
            text = one(name, str(default))
            try:
                value = float(text)
            except ValueError:
                raise bad(f"{name}={text!r} is not a number") from None
            if not low <= value <= high:
                raise bad(f"{name}={text} is outside {low:g}..{high:g}")
            return value

        prefix = one("prefix", "")
        if prefix and not _NAME.match(prefix):
            raise bad(f"prefix {prefix!r}: letters, digits and _, not starting with a digit")
        index = one("index", "hnsw").lower()
        if index not in ("hnsw", "flat"):
            raise bad(f"index={index!r}: expected 'hnsw' or 'flat'")
        return cls(
            host=host, port=port, database=database, prefix=prefix, index=index,
            ef=int(number("ef", DEFAULT_EF, 1, 32_768)), shards=int(number("shards", 1, 1, 64)),
            timeout=number("timeout", 10, 0.1, 600),
            user=unquote(parts.username or ""), password=unquote(parts.password or ""),
        )

    @staticmethod
    def _safe(url: str) -> str:
        """The URL without its password (for messages)."""
        return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)

    def __str__(self) -> str:
        return f"milvus://{self.host}:{self.port}/{self.database}"


# -- fields and filters ------------------------------------------------------------------------


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _flag(value: bool | None) -> int:
    return -1 if value is None else int(value)


def schema_fields(dim: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, Milvus data type name, options) of the collection's fields."""
    text = {"max_length": CODE_LENGTH}
    return [
        ("id", "INT64", {"is_primary": True}),
        ("vector", "FLOAT_VECTOR", {"dim": dim}),
        *((name, "VARCHAR", text) for name in _TEXT_FIELDS),
        ("sizes", "ARRAY", {"element_type": "VARCHAR", "max_capacity": MAX_SIZES, **text}),
        ("price", "DOUBLE", {}),
        ("sustainability", "DOUBLE", {}),
        *((name, "INT8", {}) for name in _BOOL_FIELDS),
        ("state", "VARCHAR", text),
    ]


def collection_schema(dim: int, description: str = "") -> Any:
    """The pymilvus `CollectionSchema` of a catalog's collection."""
    from pymilvus import CollectionSchema, DataType, FieldSchema

    fields = []
    for name, kind, options in schema_fields(dim):
        opts = dict(options)
        if "element_type" in opts:
            opts["element_type"] = getattr(DataType, opts["element_type"])
        fields.append(FieldSchema(name, getattr(DataType, kind), **opts))
    return CollectionSchema(fields, description=description)


def entity_rows(ids: Ids, vectors: Matrix, fields: Sequence[Scalars]) -> list[list[Any]]:
    """Column-wise data of items, in `schema_fields` order."""
    sizes = []
    for rowid, s in zip(ids.tolist(), fields, strict=True):
        codes = sorted({text_code(v) for v in s.sizes})
        if len(codes) > MAX_SIZES:
            raise ValueError(f"item {rowid}: {len(codes)} sizes, at most {MAX_SIZES}")
        sizes.append(codes)
    return [
        ids.tolist(),
        np.ascontiguousarray(vectors, dtype=np.float32),
        [text_code(s.category) for s in fields],
        [text_code(s.brand) for s in fields],
        [text_code(s.colour) for s in fields],
        sizes,
        [_number(s.price) for s in fields],
        [_number(s.sustainability) for s in fields],
        [_flag(s.kids) for s in fields],
        [_flag(s.second_hand) for s in fields],
        [text_code(s.state or "available") for s in fields],  # unknown counts as available
    ]


def _codes(values: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{c}"' for c in sorted({text_code(v) for v in values})) + "]"


def _varint(n: int) -> bytes:
    """`n` >= 0 as a protobuf varint."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _ids_list(ids: Ids, what: str) -> str:
    if len(ids) > MAX_EXPR_IDS:
        raise ValueError(f"{len(ids)} {what} ids; at most {MAX_EXPR_IDS:,}")
    return "[" + ", ".join(str(int(i)) for i in ids.tolist()) + "]"


def filter_expression(
    filters: Filters | None, allowed: Ids | None = None, exclude: Ids | None = None
) -> str | None:
    """The Milvus boolean expression keeping exactly the items `Scalars.matches(filters)` keeps
    (and `allowed`, not `exclude`d): "" keeps everything, None nothing."""
    parts: list[str] = []
    if filters is not None:
        f = filters
        texts = {"category": [w.lower() for w in f.category], "brand": wanted_brands(f),
                 "colour": wanted_colours(f)}
        for name in _TEXT_FIELDS:
            if texts[name]:
                parts.append(f"{name} in {_codes(texts[name])}")
        if f.size:
            parts.append(f"array_contains_any(sizes, {_codes([s.lower() for s in f.size])})")
        # the validated bounds are >= 0: finite or +inf
        if f.price_min is not None:
            if math.isinf(f.price_min):  # nothing is >= inf
                return None
            parts.append(f"price >= {float(f.price_min)!r}")
        if f.price_max is not None:  # <= inf: any known price
            bound = f.price_max if math.isfinite(f.price_max) else -sys.float_info.max
            parts.append(f"price {'<=' if math.isfinite(f.price_max) else '>='} {bound!r}")
        for name in _BOOL_FIELDS:
            value: bool | None = getattr(f, name)
            if value is not None:
                parts.append(f"{name} == {int(value)}")
        if f.min_sustainability is not None:
            parts.append(f"sustainability >= {float(f.min_sustainability)!r}")
        states = wanted_states(f)
        if states is None:  # by default sold items are left out
            parts.append(f'state != "{text_code("sold")}"')
        elif states:
            parts.append(f"state in {_codes(states)}")
    if allowed is not None:
        allowed = np.unique(as_ids(allowed))
        if len(allowed) == 0:
            return None
        parts.append(f"id in {_ids_list(allowed, 'allowed')}")
    if exclude is not None and len(exclude):
        parts.append(f"id not in {_ids_list(np.unique(as_ids(exclude)), 'excluded')}")
    return " and ".join(f"({p})" for p in parts)


# -- the store ---------------------------------------------------------------------------------


def _clock_ts() -> int:
    """A Milvus hybrid timestamp of now (physical milliseconds << 18), one tick ahead: later
    than any write that has returned (Milvus 2.3 does not report its deletes' timestamps)."""
    return (int(time.time() * 1000) + 1) << 18


@dataclass(frozen=True)
class _Marker:
    applied: int = 0  # change log position applied
    ts: int = 0  # Milvus timestamp of the last write
    #: no id above it was ever written to the collection (None: not known)
    top: int | None = None


class MilvusStore:
    """A `VectorStore` in a Milvus collection; see the module doc. Thread-safe."""

    def __init__(
        self, url: MilvusUrl, folder: Path, dim: int, source: VectorSource, settings: Settings
    ) -> None:
        self.url = url
        self.folder = Path(folder)
        self.name = collection_name(folder, url.prefix, settings.database_url)
        self.owner = catalog_identity(folder, settings.database_url)[1]
        self._pg: Any = None  # the connection holding the PostgreSQL writer lock
        self._dim = dim
        self.source = source
        self.settings = settings
        self._alias = f"lookalike-{uuid.uuid4().hex}"
        self._write_lock = threading.Lock()
        self._seen = -1  # change log position this process has caught up with
        self._ts = 0  # newest write timestamp known: searches run at it
        self._count: int | None = None
        self._ids: Ids | None = None
        self._collection: Any = None
        # an ingest's chunk being written in the background (`upsert(compact=False)`)
        self._pending: concurrent.futures.Future[None] | None = None
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str, folder: Path, dim: int, source: VectorSource, settings: Settings
    ) -> MilvusStore:
        """Connect, create or check the catalog's collection, and bring it in step with the
        metadata store."""
        parsed = MilvusUrl.parse(url)
        try:
            import pymilvus  # noqa: F401
        except ImportError:
            raise VectorStoreError(
                f"vector store {parsed}: the Milvus backend needs pymilvus "
                "(pip install 'lookalike[milvus]')"
            ) from None
        store = cls(parsed, folder, dim, source, settings)
        store._connect()
        try:
            with store._locked():
                store._prepare()
        except BaseException:
            store.close()
            raise
        return store

    def _connect(self) -> None:
        from pymilvus import MilvusException, connections, db

        u = self.url
        try:
            connections.connect(
                alias=self._alias, host=u.host, port=str(u.port), user=u.user,
                password=u.password, timeout=u.timeout,
            )
            if u.database != "default" and u.database not in db.list_database(using=self._alias):
                db.create_database(u.database, using=self._alias)
            connections.disconnect(self._alias)
            connections.connect(
                alias=self._alias, host=u.host, port=str(u.port), user=u.user,
                password=u.password, db_name=u.database, timeout=u.timeout,
            )
        except MilvusException as exc:
            raise VectorStoreError(
                f"Milvus at {u} is unreachable or refused the connection: {exc.message}"
            ) from None

    def _prepare(self) -> None:
        """(Lock held.) Create, check or repair the collection; load it; catch up."""
        from pymilvus import Collection, utility

        if not utility.has_collection(self.name, using=self._alias):
            self._rebuild(reason=None)
            return
        collection = Collection(self.name, using=self._alias)
        if outdated := self._check(collection):
            self._rebuild(reason=outdated)
            return
        self._collection = collection
        self._ensure_index()
        self._load()
        marker = self._marker()
        self._ts = max(self._ts, marker.ts)
        seq = self.source.change_seq()
        if marker.applied > seq:
            self._rebuild(reason="it is ahead of the catalog's database (restored or new)")
            return
        self._apply()
        # the same number of items as the database, unless a writer has committed to it since
        # (it writes to Milvus once it has the lock): then there is nothing to compare
        want = self.source.vector_count()
        if self.source.change_seq() != self._seen:
            return
        count = self._query_count()
        if count != want:  # once more at Milvus's newest time before rebuilding
            count = self._query_count(strong=True)
        if count != want and self.source.change_seq() == self._seen:
            self._rebuild(reason=f"it holds {count} items, the catalog's database {want}")

    def _check(self, collection: Any) -> str | None:
        """The collection is this catalog's and of its width, else a clear error; why it must
        be filled again when an older lookalike made it (an older format), else None."""
        try:
            about = json.loads(collection.description or "{}")
        except ValueError:
            about = {}
        where = f"Milvus collection {self.name!r} at {self.url}"
        fix = (f"drop it (pymilvus: MilvusClient('http://{self.url.host}:{self.url.port}')"
               f".drop_collection({self.name!r})) or choose another ?prefix=")
        if not isinstance(about, dict) or "lookalike" not in about:
            raise VectorStoreError(f"{where} was not made by lookalike; {fix}")
        if about.get("folder") != self.owner:
            raise VectorStoreError(
                f"{where} belongs to the catalog in {about.get('folder')!r}, not "
                f"{self.owner!r}; {fix}"
            )
        vector = next((f for f in collection.schema.fields if f.name == "vector"), None)
        dim = None if vector is None else int(vector.params.get("dim", 0))
        if dim != self._dim and about.get("generation") != self.source.model_generation():
            # the same catalog re-encoded with a model of another width (`lookalike reembed`)
            return f"it holds {dim}-d vectors of the model the catalog had before re-encoding"
        if dim != self._dim:
            raise VectorStoreError(
                f"{where} holds {dim}-d vectors but this catalog's model gives {self._dim}-d "
                f"(the catalog was made again with another model?); {fix}"
            )
        made = about.get("lookalike")
        if not isinstance(made, int) or made > FORMAT:
            raise VectorStoreError(
                f"{where} is of format {made!r}, this lookalike's {FORMAT} (made by a newer "
                f"lookalike?); {fix}"
            )
        names = [f.name for f in collection.schema.fields]
        if made < FORMAT or names != [name for name, _, _ in schema_fields(self._dim)]:
            return (f"it is of format {made} with fields {', '.join(names)}: made by an older "
                    f"lookalike")
        return None

    def _create(self) -> None:
        from pymilvus import Collection

        about = json.dumps({"lookalike": FORMAT, "folder": self.owner,
                            "dim": self._dim, "generation": self.source.model_generation()})
        self._collection = Collection(
            self.name, collection_schema(self._dim, about), using=self._alias,
            shards_num=self.url.shards, consistency_level="Bounded",
        )
        self._ensure_index()
        self._load()

    def _load(self) -> None:
        """Load the collection into the query nodes (waits). Right after a collection was
        dropped and made again under the same name, Milvus's proxy may still know the old one
        for a moment ("collection not found"): retried for up to 30 s."""
        from pymilvus import MilvusException

        deadline = time.monotonic() + 30
        while True:
            try:
                self._collection.load()
                return
            except MilvusException as exc:
                if "not found" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _ensure_index(self) -> None:
        if self._collection.has_index(index_name="vector"):
            return
        if self.url.index == "hnsw":
            params = {"index_type": "HNSW", "metric_type": "IP", "params": _HNSW}
        else:
            params = {"index_type": "FLAT", "metric_type": "IP", "params": {}}
        self._collection.create_index("vector", params, index_name="vector")

    def _rebuild(self, reason: str | None) -> None:
        """(Lock held.) A new collection filled from every vector of the metadata store."""
        from pymilvus import utility

        if reason is not None:
            log.warning("Milvus collection %s is out of step with %s (%s); filling it again",
                        self.name, self.folder, reason)
            utility.drop_collection(self.name, using=self._alias)
        seq = self.source.change_seq()  # before reading: nothing written meanwhile is missed
        self._create()
        ts, rows, top = 0, 0, _NO_ID
        batch = max(256, _WRITE_BYTES // (4 * self._dim + 200))
        for ids, vectors, scalars in self.source.iter_vectors(batch):
            result = self._send(as_ids(ids), vectors, scalars, insert=True)
            ts, rows = max(ts, int(result.timestamp)), rows + len(ids)
            top = max(top, int(np.max(ids))) if len(ids) else top
        if rows:
            self._collection.flush()
        self._set_marker(_Marker(seq, ts, top))
        self.source.trim_changes(seq)
        self._seen = seq
        self._forget()

    # -- markers, locks ------------------------------------------------------------------

    def _marker(self) -> _Marker:
        props = self._collection.describe().get("properties") or {}
        try:
            applied, ts = int(props.get(_APPLIED, 0)), int(props.get(_TS, 0))
        except (TypeError, ValueError):
            return _Marker()
        # "APPLIED:TOP": valid while no writer that does not keep it (an older lookalike) has
        # moved the marker since
        at, _, top = str(props.get(_TOP, "")).partition(":")
        known = at == str(applied) and top.lstrip("-").isdigit()
        return _Marker(applied, ts, int(top) if known else None)

    def _set_marker(self, marker: _Marker) -> None:
        props = {_APPLIED: str(marker.applied), _TS: str(marker.ts)}
        if marker.top is not None:
            props[_TOP] = f"{marker.applied}:{marker.top}"
        self._collection.set_properties(props)
        self._ts = max(self._ts, marker.ts)

    def _top(self, marker: _Marker) -> int:
        """(Lock held.) The marker's top, or when it is not known (a collection of an older
        lookalike, or a fill that stopped half-way) the highest id Milvus holds, read at
        Milvus's newest time: rows a crashed writer left beyond the marker are counted."""
        if marker.top is not None:
            return marker.top
        top = _NO_ID  # Milvus 2.3 cannot sort a query: the ids, a page at a time, upwards
        while rows := self._collection.query(f"id > {top}", output_fields=["id"],
                                             consistency_level="Strong", limit=_ID_PAGE):
            top = max(int(r["id"]) for r in rows)
        return top

    @contextlib.contextmanager
    def _locked(self, wait: bool = True) -> Iterator[bool]:
        """The catalog's Milvus writer lock (this thread, and no other process); yields False
        when `wait` is off and another holds it."""
        if not self._write_lock.acquire(blocking=wait):
            yield False
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with (self.folder / LOCK).open("a+b") as f:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    yield False
                    return
                try:
                    with self._server_locked(wait) as mine:
                        yield mine
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        finally:
            self._write_lock.release()

    @contextlib.contextmanager
    def _server_locked(self, wait: bool) -> Iterator[bool]:
        """(Folder lock held.) For a catalog in PostgreSQL, its advisory lock too: writers on
        other machines have other folders. Held on a connection of its own (a lost connection
        releases it)."""
        if not self.settings.database_url:
            yield True
            return
        import psycopg

        from lookalike.catalog.database import postgres_target

        if self._pg is None or self._pg.closed or self._pg.broken:
            target = postgres_target(self.settings.database_url, self.folder)
            self._pg = psycopg.connect(target.url, autocommit=True, connect_timeout=30)
        key = int.from_bytes(hashlib.sha256(self.owner.encode()).digest()[:8], "big",
                             signed=True)
        if wait:
            self._pg.execute("SELECT pg_advisory_lock(%s)", (key,))
        elif not self._pg.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(Exception):
                self._pg.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def _forget(self) -> None:
        self._count = None
        self._ids = None

    # -- writes --------------------------------------------------------------------------

    def _apply(self) -> bool:
        """(Lock held.) Write every change logged after the marker; True if there were any."""
        marker = self._marker()
        self._ts = max(self._ts, marker.ts)
        seq = self.source.change_seq()
        if marker.applied >= seq:
            self._seen = max(self._seen, seq)
            return False
        seqs, ids, _ = self.source.changes(marker.applied)
        applied = int(seqs[-1]) if len(seqs) else seq
        changed = np.unique(ids)
        # Ids above `top` were never in the collection: they are inserted. An upsert is an
        # insert plus a delete of each id; Milvus logs those deletes against the segment the
        # rows go to, and rewrites every segment whose rows are all "deleted" so (a compaction,
        # then a second index build of the same rows). The new top is recorded before any row
        # is sent, so a writer that dies half-way leaves no id that the next one would insert
        # twice.
        top = self._top(marker)
        if len(changed) and int(changed[-1]) > top:
            self._set_marker(_Marker(marker.applied, marker.ts, int(changed[-1])))
        ts, rows = marker.ts, 0
        batch = max(256, _WRITE_BYTES // (4 * self._dim + 200))
        # up to _IN_FLIGHT requests at once (each id is in one request only, so their order
        # does not matter): Milvus takes a request in about as long as its own CPU needs plus
        # waits, and the next one is read and packed meanwhile
        sent: list[concurrent.futures.Future[Any]] = []
        with concurrent.futures.ThreadPoolExecutor(
                _IN_FLIGHT, thread_name_prefix="lookalike-milvus-send") as pool:
            for a in range(0, len(changed), batch):
                chunk = changed[a : a + batch]
                found, vectors = self.source.vectors_of(chunk)
                gone = np.setdiff1d(chunk, found)
                if len(gone):
                    self._collection.delete(f"id in {_ids_list(gone, 'removed')}")
                    ts = max(ts, _clock_ts())
                found = as_ids(found)
                vectors = np.asarray(vectors, dtype=np.float32).reshape(len(found), self._dim)
                new = found > top
                for part, insert in ((~new, False), (new, True)):
                    if part.any():
                        if len(sent) >= _IN_FLIGHT:
                            ts = max(ts, int(sent.pop(0).result().timestamp))
                        sent.append(pool.submit(
                            self._send, found[part], vectors[part],
                            self.source.scalars_of(found[part]), insert=insert))
                        rows += int(part.sum())
            for done in sent:  # (an error is raised here, the marker left where it was)
                ts = max(ts, int(done.result().timestamp))
        if rows >= _FLUSH_ROWS:
            self._collection.flush()
        self._set_marker(_Marker(applied, ts, max(top, int(changed[-1]) if len(changed) else top)))
        self.source.trim_changes(applied)
        self._seen = max(self._seen, applied)
        self._forget()
        return True

    def _send(
        self, ids: Ids, vectors: Matrix, fields: Sequence[Scalars], *, insert: bool
    ) -> Any:
        """`Collection.upsert` (or `insert`) of the items, the vectors packed as protobuf
        bytes at once. pymilvus makes a Python float of every number of a vector column (a
        list, a flat list, then a protobuf field: a quarter of a Milvus ingest's time); here
        its request is made with a one-number stand-in per vector, then the vector field's
        data is replaced by the vectors' bytes (`upsert_param` / `insert_param`: pymilvus
        sends a request made by its caller)."""
        from pymilvus.client.prepare import Prepare as RequestPrepare
        from pymilvus.orm.prepare import Prepare as DataPrepare

        columns = entity_rows(ids, np.zeros((len(ids), 1), dtype=np.float32), fields)
        schema = self._collection.schema
        prepare = RequestPrepare.batch_insert_param if insert else RequestPrepare.batch_upsert_param
        request = prepare(
            self.name, DataPrepare.prepare_data(columns, schema, False), "",
            schema.to_dict()["fields"])
        (field,) = (f for f in request.fields_data if f.field_name == "vector")
        raw = np.ascontiguousarray(vectors, dtype="<f4").reshape(len(ids), self._dim).tobytes()
        field.vectors.dim = self._dim
        field.vectors.float_vector.Clear()
        # FloatArray's field 1, packed: tag 0x0a, the length as a varint, the floats' bytes
        field.vectors.float_vector.MergeFromString(b"\x0a" + _varint(len(raw)) + raw)
        if insert:
            return self._collection.insert(columns, insert_param=request)
        return self._collection.upsert(columns, upsert_param=request)

    def _write(self, ids: Ids, n_fields: int | None = None) -> None:
        if n_fields is not None and n_fields != len(ids):
            raise ValueError(f"{len(ids)} ids but {n_fields} field records")
        self._settle()
        with self._locked():
            self._apply()

    def _locked_apply(self) -> None:
        with self._locked():
            self._apply()

    def _settle(self) -> None:
        """Wait for the write `upsert(compact=False)` left under way; its error is raised
        here (by the next call of any kind)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def upsert(
        self, ids: Ids, vectors: Matrix, fields: Sequence[Scalars], *, compact: bool = True
    ) -> None:
        """Write the items (and every other change logged since the marker) as the metadata
        store holds them: it has committed them already, and is read again under the lock so
        that a later change by another process is never overwritten with an older one.

        `compact=False` (an ingest's chunks but the last): the write goes on in a background
        thread while the caller stores the next chunk (Milvus works on the other core instead
        of the caller waiting for it); every later call, of any kind, first waits for it and
        raises its error. The marker moves only once Milvus has the rows, as before: a crash
        meanwhile leaves it behind the change log, and the next `sync()` repairs it.
        (Segments are Milvus's own business: it merges them by itself.)"""
        ids = as_ids(ids)
        np.asarray(vectors, dtype=np.float32).reshape(len(ids), self._dim)
        if len(fields) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(fields)} field records")
        self._settle()
        if compact:
            self._write(ids)
            return
        if self._writer is None:
            self._writer = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="milvus-write")
        self._pending = self._writer.submit(self._locked_apply)

    def set_fields(self, ids: Ids, fields: Sequence[Scalars]) -> None:
        self._write(as_ids(ids), len(fields))

    def remove(self, ids: Ids) -> None:
        self._write(as_ids(ids))

    def sync(self) -> bool:
        """One read of the change log's position; when it moved: the marker (other processes'
        writes are then visible at its timestamp), and a repair of writes left unfinished when
        no writer holds the lock."""
        self._settle()
        seq = self.source.change_seq()
        if seq <= self._seen:
            return False
        marker = self._marker()
        self._ts = max(self._ts, marker.ts)
        self._forget()
        if marker.applied >= seq:
            self._seen = seq
            return True
        with self._locked(wait=False) as mine:
            if mine:  # nobody is writing: what is missing was left by a crashed writer
                self._apply()
        return True

    def seal(self, timeout: float = 600.0) -> float:
        """Seal the growing segments, merge away the rows that writes deleted from sealed ones,
        and wait until Milvus has indexed every sealed row and its query node searches them all
        through the index (after a bulk load, before measuring); returns the seconds waited.

        Rows deleted from a sealed segment (an upsert deletes the row it replaces) stay in its
        HNSW graph until Milvus compacts the segment: after 1,600 of 4,000 items had their
        state changed, the graph held both copies of those vectors and recall@10 under a
        filter keeping the changed items was 0.937-0.963 in five builds, no better with ``ef``
        512 to 2048 (0.98 or more once compacted). So when the sealed segments hold more rows
        than the collection's items, they are compacted first (Milvus leaves a segment with few
        deletes as it is).
        The query node lists no growing segment (`get_query_segment_info`), and takes over a
        sealed one some seconds after it was indexed (15-35 s on a loaded machine): it serves
        every sealed row once the rows it lists are those of the indexed segments."""
        from pymilvus import utility

        self._settle()
        start = time.monotonic()
        self._collection.flush()
        live = self._query_count()
        compacted = False
        while True:
            info = utility.index_building_progress(
                self.name, index_name="vector", using=self._alias
            )
            total, done = int(info.get("total_rows", 0)), int(info.get("indexed_rows", 0))
            built = total >= live and done >= total  # (compactions may still be re-indexing)
            if built and total > live and not compacted:  # deleted rows left in segments
                self._collection.compact()
                left = max(1.0, timeout - (time.monotonic() - start))
                self._collection.wait_for_compaction_completed(timeout=left)
                compacted = True
                continue
            # served: the query node's sealed segments hold every row of the indexed ones (it
            # lists no growing segment: an empty list while it still searches those), each
            # with an index if big enough for one
            segments = utility.get_query_segment_info(self.name, using=self._alias)
            rows = {s.segmentID: int(s.num_rows) for s in segments}  # (once per replica)
            served = sum(rows.values()) == total and all(
                s.state == 3 and (s.indexID or s.num_rows < _INDEX_MIN_ROWS)  # 3: Sealed
                for s in segments
            )
            if built and served:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise VectorStoreError(
                    f"Milvus collection {self.name!r} at {self.url}: not indexed and served "
                    f"within {timeout:.0f} s ({info}; the query node serves "
                    f"{sum(rows.values())} sealed rows)"
                )
            time.sleep(0.5)

    def compact(self) -> None:
        """Merge small segments now (Milvus also does it by itself). Not worth asking as items
        change: Milvus 2.3 compacts only the deletes its data node has written out (at a seal,
        or `dataNode.segment.syncPeriod` later), and then compacts by itself; asked right after
        1,600 of 4,000 items changed state, it rewrote and re-indexed the 4,000-row segment
        with the replaced rows still in it (docs/scaling.md, listing state changes)."""
        self._settle()
        self._collection.compact()

    def drop(self) -> None:
        """Delete the collection (the catalog's database is untouched)."""
        from pymilvus import utility

        self._settle()
        with self._locked():
            utility.drop_collection(self.name, using=self._alias)
        self._collection = None
        self._forget()

    def close(self) -> None:
        """Close, once a write still under way is done (its error is raised after closing)."""
        try:
            self._settle()
        finally:
            self._close()

    def _close(self) -> None:
        from pymilvus import connections

        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        with contextlib.suppress(Exception):
            connections.disconnect(self._alias)
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.close()
            self._pg = None
        self._collection = None

    # -- reads ---------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    def _consistency(self) -> dict[str, Any]:
        """Search at the newest write this process knows of."""
        return {"consistency_level": "Customized", "guarantee_timestamp": max(self._ts, 1)}

    def _query_count(self, strong: bool = False) -> int:
        consistency = {"consistency_level": "Strong"} if strong else self._consistency()
        rows = self._collection.query("", output_fields=["count(*)"], **consistency)
        return int(rows[0]["count(*)"])

    def __len__(self) -> int:
        self._settle()
        if self._count is None:
            self._count = self._query_count()
        return self._count

    def ids(self) -> Ids:
        """Every id, read from Milvus in pages of ascending ids (cached until a change)."""
        self._settle()
        if self._ids is None:
            pages: list[Ids] = []
            last = _NO_ID
            while True:
                rows = self._collection.query(f"id > {last}", output_fields=["id"],
                                              limit=_ID_PAGE, **self._consistency())
                page = np.sort(as_ids([r["id"] for r in rows]))
                if len(page) == 0:
                    break
                pages.append(page)
                last = int(page[-1])
                if len(page) < _ID_PAGE:
                    break
            self._ids = np.unique(np.concatenate(pages)) if pages else as_ids([])
        return self._ids

    def vectors(self, ids: Ids) -> Matrix:
        """The rows of those `ids` that are stored, in the order asked — read from the
        metadata store, which holds the very vectors Milvus was given (and is local)."""
        return source_vectors(self.source, ids, self._dim)

    def _plan(self, filtered: bool) -> SearchPlan:
        """Candidates: the item count when nothing is filtered and it is known (no extra
        request per search), else -1."""
        count = self._count if self._count is not None and not filtered else -1
        return SearchPlan(f"milvus-{self.url.index}", count)

    def search(
        self,
        queries: Matrix,
        k: int,
        filters: Filters | None = None,
        allowed: Ids | None = None,
        exclude: Ids | None = None,
    ) -> SearchResult:
        """Pre-filtered by Milvus. At most 16,384 results per query (Milvus's limit): the
        rest is padding."""
        self._settle()
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self._dim)
        m, k = len(queries), max(0, int(k))
        scores = np.full((m, k), -np.inf, dtype=np.float32)
        ids = np.full((m, k), -1, dtype=np.int64)
        if allowed is not None and len(allowed) > MAX_EXPR_IDS:  # (a filter the catalog resolved)
            allowed = np.unique(as_ids(allowed))
            others = np.setdiff1d(self.ids(), allowed)
            if len(others) <= MAX_EXPR_IDS:  # listed the other way round: the ids left out
                gone = others if exclude is None else np.union1d(as_ids(exclude), others)
                allowed, exclude = None, gone
        # an empty `Filters()` still leaves sold items out; None keeps every item
        expr = filter_expression(filters, allowed, exclude)
        plan = self._plan(bool(expr) or expr is None)
        limit = min(k, MAX_TOP_K)
        if expr is None or m == 0 or limit == 0:
            return SearchResult(scores, ids, SearchPlan(plan.method, 0) if expr is None else plan)
        params = {"metric_type": "IP", "params": {}}
        if self.url.index == "hnsw":
            params["params"] = {"ef": max(self.url.ef, limit)}
        for a in range(0, m, _QUERY_BATCH):
            hits = self._collection.search(
                queries[a : a + _QUERY_BATCH], "vector", params, limit=limit,
                expr=expr or None, **self._consistency(),
            )
            for j, row in enumerate(hits):
                got = row.ids
                ids[a + j, : len(got)] = got
                scores[a + j, : len(got)] = row.distances
        return SearchResult(scores, ids, plan)

    def describe(self) -> dict[str, object]:
        return {
            "backend": "milvus", "method": f"milvus-{self.url.index}", "url": str(self.url),
            "collection": self.name, "items": len(self), "ef": self.url.ef,
            "shards": self.url.shards,
        }
