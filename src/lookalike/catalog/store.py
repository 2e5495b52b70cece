"""The catalog's source of truth: one SQLite file (WAL) with items and their embeddings — or,
by configuration (`Settings.database_url`), one schema in a PostgreSQL database, with the same
tables, semantics and SQL (`lookalike.catalog.database`).

Writes happen in short transactions, so a killed process loses at most the batch it was
writing, and nothing already committed. Other modules (users, swipes) add their own tables
to the same file through `CatalogStore.connection`.

Damage never passes silently and never takes the whole catalog down: a file that is empty, not
SQLite, truncated or malformed raises `CatalogCorruptError` naming it (at open, or at the first
read that meets a damaged page); a row that cannot be read (an embedding blob of the wrong
length or with non-finite values, a field that does not parse) is left out with a warning, and
`lookalike check` lists it. A new catalog file is created complete (in a temp file, then linked
into place), so a process killed while creating one leaves no empty file behind.

Beside the items: the brand ratings (`brand_ratings`, by normalised brand name) and the
exchange rates (`rates`). Each item keeps copies derived from them, refreshed by the store in
the same transaction as every change to the item or the tables, so that a filter or a sort is
a plain column test: `brand_key` (its brand, normalised), `brand_overall` / `brand_people` /
`brand_planet` / `brand_animals` (its brand's ratings) and `price_base` (its price in the base
currency; an item without a currency is priced in the base currency).

A catalog made before these existed gains their columns and tables when it is opened
(`_migrate`, counted in SQLite's `user_version`; on PostgreSQL in the `meta` row
`schema_version`).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.catalog.brands import ASPECTS, BrandRating, normalise_brand
from lookalike.catalog.database import (
    Connection,
    Dialect,
    PostgresConnection,
    PostgresDialect,
    PostgresTarget,
    SQLiteDialect,
    Trigger,
    server_refusal,
    sqlite_trigger,
)
from lookalike.catalog.filters import VALUE_SQL, Filters, attribute_sql
from lookalike.catalog.rates import Rate
from lookalike.catalog.schema import Item, ItemFields, ItemUpdate, Tag
from lookalike.catalog.sketch import SKETCH_BYTES, vector_sketches
from lookalike.catalog.sorting import SORTS, order_by
from lookalike.colour_names import canonical_colour, colour_sql
from lookalike.errors import (
    CatalogCorruptError,
    CatalogMismatchError,
    CatalogNotFoundError,
    ItemNotFoundError,
    LookalikeError,
)
from lookalike.index.vector_store import Scalars
from lookalike.processes import is_alive

log = logging.getLogger(__name__)

#: An SQLite catalog's write-ahead log is copied into the database file (a checkpoint: the
#: pages written, then the log and the file flushed to disk) by a thread of the store's own,
#: on a connection of its own, at most every `CHECKPOINT_EVERY` seconds while commits go on,
#: instead of inside every commit that takes the log past SQLite's 1,000 pages. A writer
#: committing in a loop (an ingest) then no longer waits for the disk: at a million rows beside
#: Milvus, an ingest's writer spent ~30 % of its time in those commits' checkpoints, most of it
#: waiting for the flushes. The shared connection still checkpoints by itself once the log
#: reaches `WAL_BACKSTOP_PAGES` (the thread fell behind, or each of its checkpoints ended with
#: a newer commit already in the log, which keeps SQLite from starting the log again).
#: Crash safety is SQLite's own either way: a checkpoint is the same operation on any
#: connection.
CHECKPOINT_EVERY = 0.25
WAL_BACKSTOP_PAGES = 16_384


class _Checkpointer:
    """Checkpoints an SQLite file's WAL (PASSIVE: never waiting for, nor blocking, readers and
    writers) on a daemon thread with its own connection, when `nudge`d after commits and at
    most every `every` seconds. Started by a nudge; it ends (closing its connection) after
    `idle` seconds without one, so a store dropped without `close` leaves no thread behind for
    long. `stop` ends it before the store's connection closes, so that one, closing last, still
    checkpoints and removes the log. A failure is logged and ends checkpoints for good: the
    store's connection then checkpoints by itself (`WAL_BACKSTOP_PAGES`)."""

    def __init__(self, path: Path, every: float = CHECKPOINT_EVERY, idle: float = 5.0) -> None:
        self.path, self.every, self.idle = path, every, idle
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def nudge(self) -> None:
        """New commits: checkpoint them soon."""
        self._wake.set()  # (before the check: a thread ending meanwhile sees it, and stays)
        if self._thread is None or self._pid != os.getpid():  # (a forked child starts its own)
            with self._lock:
                if self._stopped.is_set() or self._failed:
                    return
                if self._thread is None or self._pid != os.getpid():
                    self._pid = os.getpid()
                    self._thread = threading.Thread(
                        target=self._run, name="lookalike-checkpoint", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=30
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            while True:
                if not self._wake.wait(self.idle):
                    with self._lock:
                        if not self._wake.is_set():  # idle: the next nudge starts another
                            self._thread = None
                            return
                if self._stopped.is_set():
                    return
                self._wake.clear()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if self._stopped.wait(self.every):
                    return
        except sqlite3.Error as exc:
            self._failed = True
            log.warning("%s: background checkpoints stopped (%s)", self.path, exc)
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()
            thread = self._thread if self._pid == os.getpid() else None
        self._wake.set()
        if thread is not None:
            thread.join()


_TABLES = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    category TEXT,
    department TEXT,
    kids INTEGER,
    price REAL,
    currency TEXT,
    brand TEXT,
    sizes TEXT NOT NULL DEFAULT '[]',
    colour TEXT,
    url TEXT,
    sustainability REAL,
    second_hand INTEGER,
    source TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    predicted TEXT NOT NULL DEFAULT '{}',
    image_path TEXT NOT NULL,
    image_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'available',
    rating REAL,
    reviews INTEGER,
    brand_key TEXT,
    price_base REAL,
    brand_overall REAL,
    brand_people REAL,
    brand_planet REAL,
    brand_animals REAL,
    phash INTEGER,
    duplicate_of TEXT,
    sketch BLOB
);
CREATE INDEX IF NOT EXISTS items_category ON items(category);
CREATE INDEX IF NOT EXISTS items_price ON items(price);
CREATE TABLE IF NOT EXISTS embeddings (
    item_rowid INTEGER PRIMARY KEY REFERENCES items(rowid) ON DELETE CASCADE,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS brand_ratings (
    brand_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    overall REAL NOT NULL,
    people REAL,
    planet REAL,
    animals REAL,
    source TEXT NOT NULL,
    url TEXT,
    rated_on TEXT,
    imported_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rates (
    currency TEXT PRIMARY KEY,
    rate REAL NOT NULL,
    rated_on TEXT NOT NULL,
    imported_at TEXT NOT NULL
);
"""
#: Columns added to `items` by issue 21: a new catalog's table has them (and a salvaged copy
#: keeps them, `lookalike.catalog.maintenance`); one made before gains them when opened.
_NEW_COLUMNS = {
    "state": "TEXT NOT NULL DEFAULT 'available'",
    "rating": "REAL",
    "reviews": "INTEGER",
    "brand_key": "TEXT",
    "price_base": "REAL",
    "brand_overall": "REAL",
    "brand_people": "REAL",
    "brand_planet": "REAL",
    "brand_animals": "REAL",
    "phash": "INTEGER",
    "duplicate_of": "TEXT",
    "sketch": "BLOB",
}
#: Indexes on those columns (made once the columns exist).
_NEW_INDEXES = """
CREATE INDEX IF NOT EXISTS items_state ON items(state);
CREATE INDEX IF NOT EXISTS items_brand_key ON items(brand_key);
CREATE INDEX IF NOT EXISTS items_price_base ON items(price_base);
CREATE INDEX IF NOT EXISTS items_unhashed ON items(rowid) WHERE phash IS NULL;
CREATE INDEX IF NOT EXISTS items_unsketched ON items(rowid) WHERE sketch IS NULL;
"""
#: The schema version this code writes (SQLite's `user_version`): 1 = issue 21's shop
#: columns, 2 = the repost columns (`phash`, `duplicate_of`), 3 = the vectors' sketches
#: (`sketch`, `lookalike.catalog.sketch`; an older catalog's are made from its stored vectors
#: by `CatalogStore.sketch_vectors`).
SCHEMA_VERSION = 3
#: Derived columns of the items `where` selects, refreshed from the rates and brand ratings.
#: Parameters: the base currency, twice. Prices convert through the rates' own base:
#: price × rate(base) / rate(currency).
_REFRESH = (
    "UPDATE items SET "
    "price_base = CASE WHEN price IS NULL THEN NULL "
    "WHEN coalesce(currency, :base) = :base THEN price "
    "ELSE price * (SELECT rate FROM rates WHERE currency = :base) "
    "/ (SELECT rate FROM rates WHERE currency = items.currency) END, "
    + ", ".join(
        f"brand_{a} = (SELECT {a} FROM brand_ratings b WHERE b.brand_key = items.brand_key)"
        for a in ("overall", *ASPECTS)
    )
    + " WHERE {where}"
)
# Bumped by every change to the vectors, whoever makes it (another server process, a CLI ingest
# into a served catalog): one cheap read tells a process its index is out of step. An upsert, so
# opening a catalog writes nothing (a missing row reads as 0).
_BUMP_VERSION = (
    "INSERT INTO meta (key, value) VALUES ('vectors_version', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = CAST(meta.value AS INTEGER) + 1;"
)
# The change log a vector store follows (lookalike.index.vector_store): every change to a
# vector (kind 0), a removal (1), a change to an item's filterable fields (2). AUTOINCREMENT:
# sequence numbers only grow, even once old entries are trimmed. Made after `_migrate` (its
# trigger names issue 21's columns).
CHANGE_LOG = """
CREATE TABLE IF NOT EXISTS vector_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_rowid INTEGER NOT NULL,
    kind INTEGER NOT NULL
);
"""
_FILTERED = ("category", "brand", "brand_key", "colour", "sizes", "price", "price_base", "kids",
             "second_hand", "sustainability", "predicted", "state")
_LOG_CHANGE = "INSERT INTO vector_changes (item_rowid, kind) VALUES ({rowid}, {kind})"
CHANGE_TRIGGERS = (
    Trigger("log_vector_added", "embeddings", "INSERT",
            _LOG_CHANGE.format(rowid="NEW.item_rowid", kind=0)),
    Trigger("log_vector_changed", "embeddings", "UPDATE OF vector",
            _LOG_CHANGE.format(rowid="NEW.item_rowid", kind=0)),
    Trigger("log_vector_removed", "embeddings", "DELETE",
            _LOG_CHANGE.format(rowid="OLD.item_rowid", kind=1)),
    # only when a filterable field really changed (a re-tag writing the same tags logs nothing)
    Trigger("log_fields_changed", "items", f"UPDATE OF {', '.join(_FILTERED)}",
            _LOG_CHANGE.format(rowid="NEW.rowid", kind=2),
            when=" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _FILTERED)),
)
# Bumped by every change to an existing item's predicted tags (a re-tag, in any process), so
# what is derived from the tags (the colour palettes a query compares) can be kept in memory.
_BUMP_TAGS = (
    "INSERT INTO meta (key, value) VALUES ('tags_version', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = CAST(meta.value AS INTEGER) + 1;"
)
TRIGGERS = (
    *(Trigger(f"embeddings_{name}", "embeddings", event, _BUMP_VERSION)
      for name, event in (("added", "INSERT"), ("removed", "DELETE"),
                          ("changed", "UPDATE OF vector"))),
    Trigger("items_tags_changed", "items", "UPDATE OF predicted", _BUMP_TAGS),
)
#: The whole schema as one SQLite script (a new catalog file is made from it).
SCHEMA = _TABLES + "".join(sqlite_trigger(t) for t in TRIGGERS)

# Rowids are never reused: a new item gets one above every rowid the catalog ever gave out
# (SQLite alone would hand the last one deleted to the next item). An index that remembers a
# removed rowid (HNSW keeps removed nodes) or a file saved before a delete thus never meets
# that rowid again as another item's. (On PostgreSQL the rowid column's identity sequence
# gives them out: never reused by construction.)
_HIGH_WATER = (
    "SELECT max(coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'rowid_high'), 0),"
    " coalesce((SELECT max(rowid) FROM items), 0))"
)
_GENERATION = "SELECT value FROM meta WHERE key = 'model_generation'"
_SET_HIGH_WATER = (
    "INSERT INTO meta (key, value) VALUES ('rowid_high', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

# the filterable fields as `Filters.to_sql` reads them: given, else predicted; the brand's
# normalised name, the price in the base currency, the colour as `colour_sql` normalises it
_SCALARS = (
    f"lower({VALUE_SQL['category']}), brand_key, {colour_sql(VALUE_SQL['colour'])}, sizes, "
    "price_base, kids, second_hand, sustainability, state"
)

_COLUMNS = (
    "items.rowid AS rowid, id, title, category, department, kids, price, currency, brand, "
    "sizes, colour, url, sustainability, second_hand, source, extra, predicted, image_path, "
    "image_hash, created_at, updated_at, state, rating, reviews, price_base, rated_name, "
    "rated_overall, rated_people, rated_planet, rated_animals, rated_source, rated_url, rated_on, "
    "phash, duplicate_of"
)
#: Items with their brand's rating (for `_COLUMNS`; the rating's columns renamed so that a
#: filter's WHERE clause names the items' own).
_FROM = (
    "items LEFT JOIN (SELECT brand_key AS rated_key, name AS rated_name, overall AS "
    "rated_overall, people AS rated_people, planet AS rated_planet, animals AS rated_animals, "
    "source AS rated_source, url AS rated_url, rated_on FROM brand_ratings) AS rated "
    "ON rated_key = items.brand_key"
)

def signed64(value: int) -> int:
    """An unsigned 64-bit hash as SQLite's signed INTEGER (and back with `& (2**64 - 1)`)."""
    return value - (1 << 64) if value >= 1 << 63 else value


_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary codes)


def is_corruption(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file is damaged or not a database (not busy, full, locked...)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF in _CORRUPT_CODES
    return "malformed" in str(exc) or "not a database" in str(exc)


def file_damage(path: Path) -> str | None:
    """Why `path` cannot be an intact SQLite database, from its size and header, or None when
    nothing is visibly wrong. A truncation is only judged without a write-ahead log (a crash
    during a checkpoint may legitimately leave the main file short; SQLite completes it from
    the log).

    The header is read through SQLite itself, never with open()/close() on the file: closing
    any descriptor of a database file drops every POSIX lock this process holds on it, so a
    plain read beside an open catalog (a second Catalog, a check, a backup in the same
    process) would silently unlock the first one's connection."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes), not a catalog database"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=30)) as conn:
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])  # page 1 only
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])  # and the schema
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc):
            raise
        if size < 100:
            return f"truncated: {size} bytes, shorter than SQLite's header"
        if int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF == sqlite3.SQLITE_CORRUPT:
            # SQLite itself compares the header's page count with the file's size
            return (f"truncated or overwritten: {size:,} bytes that SQLite reads as "
                    f"malformed ({exc})")
        return "not an SQLite database (the file does not start with SQLite's header)"
    wal = path.with_name(path.name + "-wal")
    no_log = not wal.exists() or wal.stat().st_size == 0
    if no_log and size < pages * page_size:  # page_count is the header's when it is valid
        return f"truncated: {size:,} bytes, its header says {pages} pages of {page_size} bytes"
    return None


def vector_problem(blob: object, dim: int) -> str | None:
    """Why a stored embedding cannot be used, or None."""
    if not isinstance(blob, bytes):
        return f"not a vector blob ({type(blob).__name__})"
    if len(blob) != 4 * dim:
        return f"{len(blob)} bytes, a {dim}-d vector has {4 * dim}"
    if not np.isfinite(np.frombuffer(blob, dtype=np.float32)).all():
        return "holds non-finite values (NaN or infinity)"
    return None


def _as_arrays(
    rows: Sequence[Any], dim: int, where: object
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """(item_rowid, vector blob) rows → (rowids, matrix); damaged rows (wrong length,
    non-finite values) are left out with a warning instead of failing the whole catalog."""
    good = [r for r in rows if isinstance(r[1], bytes) and len(r[1]) == 4 * dim]
    ids = np.fromiter((r[0] for r in good), dtype=np.int64, count=len(good))
    matrix = (
        np.frombuffer(b"".join(r[1] for r in good), dtype=np.float32).reshape(len(good), dim)
        if good and dim
        else np.zeros((0, dim), dtype=np.float32)
    )
    finite = np.isfinite(matrix.sum(axis=1, dtype=np.float64))
    if not finite.all():
        ids, matrix = ids[finite], matrix[finite]
    skipped = len(rows) - len(ids)
    if skipped:
        bad = sorted(set(int(r[0]) for r in rows) - set(ids.tolist()))
        log.warning(
            "%s: %d damaged embedding(s) left out of search (item rowids %s%s); "
            "run `lookalike check`, then `lookalike repair`",
            where, skipped, ", ".join(map(str, bad[:10])), ", ..." if len(bad) > 10 else "",
        )
    return ids, matrix.copy()


def _scalars(row: Sequence[Any]) -> Scalars:
    """Scalars from the `_SCALARS` columns of a row."""
    category, brand, colour, sizes, price, kids, second_hand, sustainability, state = row

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return Scalars(
        category=text(category), brand=text(brand), colour=text(colour),
        sizes=_sizes(sizes), price=price, kids=_bool_or_none(kids),
        second_hand=_bool_or_none(second_hand), sustainability=sustainability,
        state=text(state),
    )


def _sizes(text: Any) -> tuple[str, ...]:
    """Sizes from their JSON text; none from a damaged one (`lookalike check` reports it)."""
    try:
        sizes = json.loads(text or "[]")
    except (TypeError, ValueError):
        return ()
    return tuple(str(v).lower() for v in sizes) if isinstance(sizes, list) else ()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class NewItem:
    """An item ready to store: validated fields, its id, image and embedding."""

    id: str
    fields: ItemFields
    image_path: str
    image_hash: str
    predicted: dict[str, Tag] | None = None
    #: perceptual hash of the photo (`lookalike.catalog.duplicates`), unsigned 64-bit
    phash: int | None = None
    #: the id of the item this one reposts, when duplicates are flagged
    duplicate_of: str | None = None
    #: its vector's sketch (`lookalike.catalog.sketch`) when the caller has it already; the
    #: store makes it from the vector otherwise
    sketch: bytes | None = None


def _bool_or_none(value: Any) -> bool | None:
    return None if value is None else bool(value)


#: Positions in `_item_row` of the columns `CatalogStore._derived` reads.
_PRICE, _CURRENCY, _BRAND_KEY = 6, 7, 24


def _item_row(rowid: int, item: NewItem, now: str) -> tuple[Any, ...]:
    """The `items` row of a new item (the columns of `CatalogStore.add`'s INSERT)."""
    f = item.fields
    return (
        rowid, item.id, f.title, f.category, f.department,
        None if f.kids is None else int(f.kids),
        f.price, f.currency, f.brand, json.dumps(f.sizes) if f.sizes else "[]", f.colour, f.url,
        f.sustainability, None if f.second_hand is None else int(f.second_hand),
        f.source, json.dumps(f.extra) if f.extra else "{}",
        json.dumps({k: t.model_dump() for k, t in item.predicted.items()})
        if item.predicted else "{}",
        item.image_path, item.image_hash, now, now, f.state, f.rating, f.reviews,
        None if f.brand is None else normalise_brand(f.brand),
        None if item.phash is None else signed64(item.phash), item.duplicate_of,
    )


def _sketches(items: Sequence[NewItem], vectors: NDArray[np.float32]) -> builtins.list[bytes]:
    """The sketch of each item's vector: the one it brings, else made from the vector."""
    missing = [pos for pos, item in enumerate(items) if item.sketch is None]
    made = iter(vector_sketches(np.asarray(vectors, dtype=np.float32)[missing]))
    return [item.sketch if item.sketch is not None else next(made).tobytes() for item in items]


def _brand_rating(row: Any) -> BrandRating | None:
    """The brand rating joined to an item row (`_FROM`); None without one, or when the row was
    read from `items` alone (maintenance reads `SELECT rowid, * FROM items`)."""
    if _column(row, "rated_name") is None:
        return None
    return BrandRating(
        brand=row["rated_name"], overall=row["rated_overall"], people=row["rated_people"],
        planet=row["rated_planet"], animals=row["rated_animals"], source=row["rated_source"],
        url=row["rated_url"], rated_on=row["rated_on"],
    )


class DamagedRowError(ValueError):
    """An item row whose fields do not parse (bad JSON, bad timestamp...)."""


def _row_to_item(row: Any, base_currency: str | None = None) -> Item:
    try:
        return _parse_item(row, base_currency)
    except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError and pydantic's are too
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DamagedRowError(f"item {row['id']!r} (rowid {row['rowid']}): {reason}") from None


def _parse_item(row: Any, base_currency: str | None) -> Item:
    return Item(
        rowid=row["rowid"],
        id=row["id"],
        title=row["title"],
        category=row["category"],
        department=row["department"],
        kids=_bool_or_none(row["kids"]),
        price=row["price"],
        currency=row["currency"],
        brand=row["brand"],
        sizes=json.loads(row["sizes"]),
        colour=row["colour"],
        url=row["url"],
        sustainability=row["sustainability"],
        second_hand=_bool_or_none(row["second_hand"]),
        source=row["source"],
        extra=json.loads(row["extra"]),
        predicted={k: Tag(**v) for k, v in json.loads(row["predicted"]).items()},
        image_path=row["image_path"],
        image_hash=row["image_hash"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        state=_column(row, "state", "available"),
        rating=_column(row, "rating"),
        reviews=_column(row, "reviews"),
        base_price=_column(row, "price_base"),
        base_currency=base_currency if _column(row, "price_base") is not None else None,
        brand_rating=_brand_rating(row),
        duplicate_of=_column(row, "duplicate_of"),
    )


def _column(row: Any, name: str, default: Any = None) -> Any:
    """`row[name]`, or `default` for a row of a catalog made before that column (read as it
    is by `lookalike check`, which never migrates)."""
    try:
        return row[name]
    except (IndexError, KeyError):
        return default


def _readable(
    rows: Sequence[Any], where: object, base_currency: str | None = None
) -> list[Item]:
    """Items of `rows`, the damaged ones left out with a warning."""
    items = []
    for row in rows:
        try:
            items.append(_row_to_item(row, base_currency))
        except DamagedRowError as exc:
            log.warning("%s: left out %s; run `lookalike check`", where, exc)
    return items


class CatalogStore:
    """Items and embeddings in one SQLite file (`path`), or in one PostgreSQL schema (a
    `PostgresTarget`). Thread-safe (one connection behind a lock).

    `base_currency` is the currency prices are converted to for price filters and sorting;
    a catalog whose converted prices are in another one (another process's setting, an older
    catalog) is converted on opening. None (maintenance tools): the one the catalog's prices
    are converted to already (EUR for a new catalog).

    `create=False` raises CatalogNotFoundError where there is no catalog yet, creating
    nothing (PostgreSQL; an SQLite file is checked by its caller). `location` names where the
    catalog is, for messages."""

    def __init__(
        self, path: Path | PostgresTarget, base_currency: str | None = None, *,
        create: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self._checkpoints: _Checkpointer | None = None  # (SQLite)
        self._dim: int | None = None
        self._conn: Connection
        self.dialect: Dialect
        asked = None if base_currency is None else base_currency.upper()
        self.base_currency = asked or "EUR"
        if isinstance(path, PostgresTarget):
            self._path: Path | None = None
            self.location = path.shown
            self._open_postgres(path, create)
            try:
                self._prepare(asked)
            except BaseException:
                self._conn.close()
                raise
            self._generation: str | None = self.get_meta("model_generation")
            return
        self._path = Path(path)
        self.location = str(self._path)
        self.dialect = SQLiteDialect()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if not self._path.exists():
            _create_database(self._path, self.base_currency)
        damage = file_damage(self._path)
        if damage:
            raise CatalogCorruptError(str(self._path), damage)
        with self._guard():
            conn = sqlite3.connect(
                str(self._path), check_same_thread=False, isolation_level=None, timeout=30
            )
            try:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.executescript(SCHEMA)
                self._conn = conn
                self._prepare(asked)
            except BaseException:
                conn.close()
                raise
        self._generation = self.get_meta("model_generation")
        self._checkpoints = _Checkpointer(self._path)

    def _prepare(self, asked: str | None) -> None:
        """Bring an open catalog up to this code's schema and base currency."""
        if asked is None:  # the one the catalog's prices are converted to
            self.base_currency = self.get_meta("price_base_currency") or "EUR"
        self._migrate()
        self._change_log()
        self._use_base_currency()

    def _change_log(self) -> None:
        """The change log a vector store follows, and its triggers (after `_migrate`: the
        fields' trigger names issue 21's columns)."""
        if isinstance(self.dialect, SQLiteDialect):
            # (executescript commits first: outside a transaction, as SCHEMA is run)
            self._conn.executescript(CHANGE_LOG)
            self.dialect.triggers(self._conn, CHANGE_TRIGGERS)
            return
        with self.transaction() as conn:  # under the write lock: processes opening at once
            conn.executescript(CHANGE_LOG)
            self.dialect.numbered(conn, "vector_changes", "seq")
            self.dialect.triggers(conn, CHANGE_TRIGGERS)

    def _open_postgres(self, target: PostgresTarget, create: bool) -> None:
        """Connect, and make the schema, tables and triggers (under the catalog's write lock,
        so processes opening a new catalog at once make it once)."""
        dialect = PostgresDialect(target.schema)
        conn = PostgresConnection(target)
        try:
            conn.begin()
            try:
                fresh = not dialect.exists(conn)
                if not create and fresh:
                    raise CatalogNotFoundError(self.location, "its schema holds no catalog")
                dialect.create_schema(conn)
                # a new catalog is made complete, as `_create_database` makes a file; an older
                # one gains what it lacks in `_migrate`
                conn.executescript(_TABLES + (_NEW_INDEXES if fresh else ""))
                dialect.triggers(conn, TRIGGERS)
                if fresh:
                    conn.execute("INSERT INTO meta (key, value) VALUES "
                                 "('price_base_currency', ?)", (self.base_currency,))
                    dialect.set_schema_version(conn, SCHEMA_VERSION)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        except BaseException as exc:
            conn.close()
            refused = server_refusal(exc)
            if refused:  # e.g. no right to create the schema: one line, not a traceback
                raise LookalikeError(f"{self.location}: cannot open the catalog: {refused}"
                                     ) from None
            raise
        self.dialect, self._conn = dialect, conn

    @property
    def path(self) -> Path:
        """The SQLite file (a catalog in PostgreSQL has none: LookalikeError)."""
        if self._path is None:
            raise LookalikeError(
                f"the catalog is in PostgreSQL ({self.location}), not in an SQLite file: this "
                "works on SQLite catalogs only (for PostgreSQL use its own tools, e.g. pg_dump)"
            )
        return self._path

    def _migrate(self) -> None:
        """Bring a catalog made by older code up to `SCHEMA_VERSION`: add the missing
        columns, their indexes, the normalised brands and the derived values. One transaction,
        re-checked under the write lock, so two processes opening an old catalog at once
        migrate it once."""
        with self.connection() as conn:
            if self.dialect.schema_version(conn) >= SCHEMA_VERSION:
                return
        with self.transaction() as conn:
            if self.dialect.schema_version(conn) >= SCHEMA_VERSION:
                return
            have = self.dialect.columns(conn, "items")
            for name, decl in _NEW_COLUMNS.items():
                if name not in have:
                    conn.execute(f"ALTER TABLE items ADD COLUMN {name} {decl}")
            for statement in filter(str.strip, _NEW_INDEXES.split(";")):
                conn.execute(statement)
            rows = conn.execute(
                "SELECT rowid, brand FROM items WHERE brand IS NOT NULL AND brand_key IS NULL"
            ).fetchall()
            conn.executemany("UPDATE items SET brand_key = ? WHERE rowid = ?",
                             [(normalise_brand(r["brand"]), r["rowid"]) for r in rows])
            self._refresh(conn)
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES "
                         "('price_base_currency', ?)", (self.base_currency,))
            self.dialect.set_schema_version(conn, SCHEMA_VERSION)

    def _use_base_currency(self) -> None:
        """Convert the stored prices to `base_currency` unless they are in it already."""
        if self.get_meta("price_base_currency") == self.base_currency:
            return
        with self.transaction() as conn:
            self._refresh(conn)
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES "
                         "('price_base_currency', ?)", (self.base_currency,))

    def _refresh(self, conn: Connection, rowids: Sequence[int] | None = None) -> None:
        """Recompute the derived columns (converted price, brand ratings) of some items (all
        when `rowids` is None), inside the caller's transaction."""
        if rowids is None:
            conn.execute(_REFRESH.replace("{where}", "1"), {"base": self.base_currency})
            return
        where = "rowid IN (SELECT CAST(value AS INTEGER) FROM json_each(:ids))"
        conn.execute(_REFRESH.replace("{where}", where),
                     {"base": self.base_currency, "ids": json.dumps([int(r) for r in rowids])})

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.stop()
        with self._lock:
            self._conn.close()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's "malformed" / "not a database" become a CatalogCorruptError naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                reason = f"the database is damaged ({exc})"
                raise CatalogCorruptError(self.location, reason) from None
            raise

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One atomic write: everything inside commits together or not at all. Writers take
        turns (SQLite's BEGIN IMMEDIATE; PostgreSQL: the catalog's advisory lock)."""
        with self._lock, self._guard():
            self.dialect.begin(self._conn)
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(Exception):  # a damaged file may refuse even this
                    self.dialect.rollback(self._conn)
                raise
            self.dialect.commit(self._conn)
        if self._checkpoints is not None:
            self._checkpoints.nudge()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """The shared connection, locked for the caller (reads, or writes in autocommit)."""
        with self._lock, self._guard():
            yield self._conn

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.connection() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.connection() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
        if key == "dim":
            self._dim = None

    @property
    def dim(self) -> int | None:
        """The length of the stored vectors: the recorded `dim` when most stored vectors agree
        with it, else (with a warning) the length most of them have; None for a catalog with
        no vectors and no valid record. A wrong record must not make every row unreadable."""
        if self._dim is None:
            self._dim = self._vector_dim()
        return self._dim

    def _vector_dim(self) -> int | None:
        raw = self.get_meta("dim")
        recorded = int(raw) if raw is not None and raw.isdigit() and int(raw) > 0 else None
        with self.connection() as conn:
            sample = [r[0] for r in conn.execute(
                "SELECT length(vector) FROM embeddings ORDER BY item_rowid LIMIT 64")]
            if not sample:
                return recorded
            if recorded is not None and 2 * sample.count(4 * recorded) > len(sample):
                return recorded
            counts: Counter[int] = Counter(dict(conn.execute(
                "SELECT length(vector), count(*) FROM embeddings GROUP BY 1").fetchall()))
        length, _ = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        if recorded is not None and counts[4 * recorded] >= counts[length]:
            return recorded
        if length <= 0 or length % 4:
            return recorded
        log.warning(
            "%s: the recorded vector length (dim %s) disagrees with the stored vectors, most of "
            "which are %d-d: using %d; run `lookalike check`, then `lookalike repair`",
            self.location, raw, length // 4, length // 4,
        )
        return length // 4

    def bind_model(self, name: str, dim: int) -> None:
        """Record the encoder this catalog's vectors come from; refuse a different one."""
        stored_name, stored_dim = self.get_meta("model"), self.dim
        if stored_name is None:
            if self.count():
                raise CatalogMismatchError(f"{self.location}: items exist but no model is recorded")
            self.set_meta("model", name)
            self.set_meta("dim", str(dim))
            return
        if stored_dim is None:  # no vectors and no valid record of their length
            self.set_meta("dim", str(dim))
            stored_dim = dim
        if stored_name != name or stored_dim != dim:
            raise CatalogMismatchError(
                f"{self.location} holds vectors of model {stored_name!r} ({stored_dim}-d), not "
                f"{name!r} ({dim}-d): use that model, or a new catalog folder"
            )

    @property
    def model_name(self) -> str | None:
        return self.get_meta("model")

    def reread_model(self) -> str | None:
        """How many times the catalog was re-encoded with another model (None: never), read
        again, forgetting what this process knew of the vectors' length: another process may
        have re-encoded it (`lookalike.catalog.reembed`)."""
        self._dim = None
        self._generation = self.get_meta("model_generation")
        return self._generation

    # -- writes -----------------------------------------------------------------------------

    def add(self, items: Sequence[NewItem], vectors: NDArray[np.float32]) -> list[int]:
        """Insert items with their vectors in one transaction; returns their rowids. The
        derived columns (converted price, brand ratings) are computed here and inserted with
        the rows (`_derived`), as `_REFRESH` would set them: no second write of each row."""
        if len(items) != len(vectors):
            raise ValueError("one vector per item")
        if not items:
            return []
        now = _now()
        with self.transaction() as conn:
            rowids = self._new_rowids(conn, len(items))  # (checks the model generation too)
            rows = [_item_row(rowid, item, now) for rowid, item in zip(rowids, items, strict=True)]
            derived = self._derived(conn, [(row[_PRICE], row[_CURRENCY], row[_BRAND_KEY])
                                           for row in rows])
            sketches = _sketches(items, vectors)
            # executemany of a plain INSERT: one statement per table on PostgreSQL
            conn.executemany(
                "INSERT INTO items (rowid, id, title, category, department, kids, price,"
                " currency, brand, sizes, colour, url, sustainability, second_hand, source,"
                " extra, predicted, image_path, image_hash, created_at, updated_at, state, rating,"
                " reviews, brand_key, phash, duplicate_of, price_base, brand_overall,"
                " brand_people, brand_planet, brand_animals, sketch)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(*row, *extra, sketch)
                 for row, extra, sketch in zip(rows, derived, sketches, strict=True)],
            )
            conn.executemany(
                "INSERT INTO embeddings (item_rowid, vector) VALUES (?, ?)",
                [(rowid, np.asarray(vec, dtype=np.float32).tobytes())
                 for rowid, vec in zip(rowids, vectors, strict=True)],
            )
            if not self.dialect.sequences:
                conn.execute(_SET_HIGH_WATER, (str(rowids[-1]),))
        return rowids

    def _derived(
        self, conn: Connection, rows: Sequence[tuple[Any, Any, Any]]
    ) -> builtins.list[tuple[Any, ...]]:
        """(price_base, brand_overall, brand_people, brand_planet, brand_animals) of new items
        given as (price, currency, brand_key), exactly as `_REFRESH` computes them (the same
        float operations in the same order), inside the caller's transaction. Reads the rates
        only when a price is in another currency, the ratings only of the batch's brands."""
        base = self.base_currency
        foreign = {cur for price, cur, _ in rows
                   if price is not None and cur is not None and cur != base}
        rates: dict[str, float] = {}
        if foreign:
            wanted = json.dumps(sorted(foreign | {base}))
            rates = {str(r[0]): float(r[1]) for r in conn.execute(
                "SELECT currency, rate FROM rates WHERE currency IN "
                "(SELECT value FROM json_each(?))", (wanted,))}
        keys = sorted({key for _, _, key in rows if key is not None})
        ratings: dict[str, tuple[Any, ...]] = {}
        if keys:
            ratings = {str(r[0]): tuple(r[1:]) for r in conn.execute(
                f"SELECT brand_key, overall, {', '.join(ASPECTS)} FROM brand_ratings WHERE "
                "brand_key IN (SELECT value FROM json_each(?))", (json.dumps(keys),))}
        none = (None,) * (1 + len(ASPECTS))
        out = []
        for price, cur, key in rows:
            if price is None:
                price_base = None
            elif (base if cur is None else cur) == base:
                price_base = price
            elif base in rates and cur in rates:
                price_base = price * rates[base] / rates[cur]
            else:
                price_base = None
            out.append((price_base, *(none if key is None else ratings.get(key, none))))
        return out

    def _check_generation(self, value: Any) -> None:
        """CatalogMismatchError when the catalog was re-encoded with another model since this
        store last read its model (`reread_model`): the vectors being added are the old
        model's. `value`: the `model_generation` read in the writing transaction."""
        if (None if value is None else str(value)) != self._generation:
            raise CatalogMismatchError(
                f"{self.location} was re-encoded with model {self.get_meta('model')!r} "
                "meanwhile: these vectors are the previous model's; open the catalog again"
            )

    def _new_rowids(self, conn: Connection, n: int) -> builtins.list[int]:
        """`n` rowids no item ever had (see `_HIGH_WATER`), inside the caller's transaction,
        once the model generation is checked (`_check_generation`): on PostgreSQL one
        statement reads both."""
        if self.dialect.sequences:
            rows = conn.execute(
                "SELECT nextval(pg_get_serial_sequence('items', 'rowid')), "
                f"({_GENERATION}) FROM generate_series(1, ?)", (n,),
            ).fetchall()
            self._check_generation(rows[0][1])
            return [int(r[0]) for r in rows]
        row = conn.execute(_GENERATION).fetchone()
        self._check_generation(None if row is None else row[0])
        last = int(conn.execute(_HIGH_WATER).fetchone()[0])
        return list(range(last + 1, last + 1 + n))

    def update(self, item_id: str, change: ItemUpdate) -> Item:
        values = change.model_dump(exclude_unset=True)
        if not values:
            return self.get(item_id)
        if values.get("state", "") is None:  # a state is never unset: left as it is
            del values["state"]
        sets, params = [], []
        for key, value in values.items():
            if key in ("sizes", "extra"):
                value = json.dumps(value if value is not None else ([] if key == "sizes" else {}))
            elif key in ("kids", "second_hand") and value is not None:
                value = int(value)
            sets.append(f"{key} = ?")
            params.append(value)
        if "brand" in values:
            sets.append("brand_key = ?")
            params.append(None if values["brand"] is None else normalise_brand(values["brand"]))
        sets.append("updated_at = ?")
        params.append(_now())
        with self.transaction() as conn:
            row = conn.execute(
                f"UPDATE items SET {', '.join(sets)} WHERE id = ? RETURNING rowid",
                [*params, item_id],
            ).fetchone()
            if row is None:
                raise ItemNotFoundError(item_id)
            self._refresh(conn, [int(row[0])])
        return self.get(item_id)

    def set_predicted(self, rowid: int, tags: dict[str, Tag]) -> None:
        """Merge predicted tags into an item (given values are never overwritten)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT predicted FROM items WHERE rowid = ?", (rowid,)).fetchone()
            if row is None:
                raise ItemNotFoundError(str(rowid))
            merged = {**json.loads(row[0]), **{k: t.model_dump() for k, t in tags.items()}}
            conn.execute(
                "UPDATE items SET predicted = ? WHERE rowid = ?", (json.dumps(merged), rowid)
            )

    def delete(self, item_id: str) -> int:
        """Remove an item and its vector; returns its rowid."""
        with self.transaction() as conn:
            row = conn.execute("SELECT rowid FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise ItemNotFoundError(item_id)
            if not self.dialect.sequences:
                conn.execute(_SET_HIGH_WATER, (str(conn.execute(_HIGH_WATER).fetchone()[0]),))
            conn.execute("DELETE FROM embeddings WHERE item_rowid = ?", (row[0],))
            conn.execute("DELETE FROM items WHERE rowid = ?", (row[0],))
        return int(row[0])

    def replace_image(
        self, item_id: str, new: NewItem, vector: NDArray[np.float32]
    ) -> tuple[int, int]:
        """Give an item another photo (`new`'s image path, hash and predicted tags) and its
        vector, in one transaction; returns (old rowid, new rowid). The item moves to a new
        rowid, as a new vector must (rowids are never reused: an index may remember the old
        one); its fields, id, creation time and the rows that follow its rowid stay."""
        with self.transaction() as conn:
            row = conn.execute("SELECT rowid FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise ItemNotFoundError(item_id)
            old = int(row[0])
            (rowid,) = self._new_rowids(conn, 1)  # (`vector` is this store's model's)
            conn.execute("DELETE FROM embeddings WHERE item_rowid = ?", (old,))
            conn.execute(
                "UPDATE items SET rowid = ?, image_path = ?, image_hash = ?, predicted = ?, "
                "phash = ?, sketch = ?, updated_at = ? WHERE rowid = ?",
                (rowid, new.image_path, new.image_hash,
                 json.dumps({k: t.model_dump() for k, t in (new.predicted or {}).items()}),
                 None if new.phash is None else signed64(new.phash),
                 _sketches([new], np.asarray(vector, dtype=np.float32).reshape(1, -1))[0],
                 _now(), old),
            )
            conn.execute("INSERT INTO embeddings (item_rowid, vector) VALUES (?, ?)",
                         (rowid, np.asarray(vector, dtype=np.float32).reshape(-1).tobytes()))
            if not self.dialect.sequences:
                conn.execute(_SET_HIGH_WATER, (str(rowid),))
        return old, rowid

    # -- reads ------------------------------------------------------------------------------

    def where(self, filters: Filters) -> tuple[str, builtins.list[Any]]:
        """`filters` as a WHERE clause over `items` in this catalog's base currency."""
        return filters.to_sql(self.base_currency)

    def count(self, filters: Filters | None = None) -> int:
        """Items `filters` keep; all items (sold ones too) without filters."""
        where, params = ("1", []) if filters is None else self.where(filters)
        with self.connection() as conn:
            row = conn.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()
        return int(row[0])

    def get(self, item_id: str) -> Item:
        with self.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE id = ?",
                               (item_id,)).fetchone()
        if row is None:
            raise ItemNotFoundError(item_id)
        try:
            return _row_to_item(row, self.base_currency)
        except DamagedRowError as exc:
            raise CatalogCorruptError(self.location, str(exc)) from None

    def get_many(self, rowids: Sequence[int]) -> builtins.list[Item]:
        """Items by rowid, in the order asked (missing rowids are left out)."""
        if not rowids:
            return []
        found: dict[int, Item] = {}
        with self.connection() as conn:
            for start in range(0, len(rowids), 500):
                chunk = [int(r) for r in rowids[start : start + 500]]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM {_FROM} WHERE items.rowid IN ({marks})", chunk
                ).fetchall()
                found.update((item.rowid, item)
                             for item in _readable(rows, self.location, self.base_currency))
        return [found[r] for r in rowids if r in found]

    def list(
        self, filters: Filters | None = None, offset: int = 0, limit: int = 50,
        sort: str = "relevance",
    ) -> builtins.list[Item]:
        """Items `filters` keep (all items without filters) in `sort`'s order (relevance:
        catalog order), `limit` from `offset`."""
        where, params = ("1", []) if filters is None else self.where(filters)
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM {_FROM} WHERE {where} ORDER BY {order_by(sort)} "
                "LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return _readable(rows, self.location, self.base_currency)

    def sort_values(
        self, rowids: Sequence[int], sort: str
    ) -> builtins.list[tuple[float | None, ...]]:
        """Each item's values of `sort`'s keys (`lookalike.catalog.sorting`), in the order
        asked (None where an item has no value, or is gone)."""
        keys = SORTS[sort]
        if not keys:
            return [() for _ in rowids]
        found: dict[int, tuple[float | None, ...]] = {}
        columns = ", ".join(k.sql for k in keys)
        with self.connection() as conn:
            for start in range(0, len(rowids), 500):
                chunk = [int(r) for r in rowids[start : start + 500]]
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(
                    f"SELECT rowid, {columns} FROM items WHERE rowid IN ({marks})", chunk
                ):
                    found[int(row[0])] = tuple(row)[1:]
        missing = tuple(None for _ in keys)
        return [found.get(int(r), missing) for r in rowids]

    def rowid_of(self, item_id: str) -> int:
        with self.connection() as conn:
            row = conn.execute("SELECT rowid FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise ItemNotFoundError(item_id)
        return int(row[0])

    def filter_rowids(self, filters: Filters) -> NDArray[np.int64]:
        """Rowids of the items `filters` keeps, ascending."""
        where, params = self.where(filters)
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT rowid FROM items WHERE {where} ORDER BY rowid", params
            ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def known_keys(self) -> tuple[set[str], set[str]]:
        """(item ids, image hashes) already stored: ingest skips both."""
        with self.connection() as conn:
            rows = conn.execute("SELECT id, image_hash FROM items").fetchall()
        return {r[0] for r in rows}, {r[1] for r in rows}

    def phashes_after(self, rowid: int) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
        """(rowids, perceptual hashes) of the items above `rowid` that have a hash, ascending."""
        # a closed range: a table PostgreSQL has no statistics of yet (one filled faster than
        # autovacuum analyses it) guesses a third of its rows for `rowid > ?` and scans it
        # whole at every commit of an ingest; for a range it guesses few and reads the index
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT rowid, phash FROM items WHERE rowid > ? AND rowid <= ? "
                "AND phash IS NOT NULL ORDER BY rowid", (rowid, 2**63 - 1)).fetchall()
        rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        hashes = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        return rowids, hashes.view(np.uint64)

    def repost_keys_after(self, rowid: int) -> tuple[
            NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint8], NDArray[np.bool_]]:
        """(rowids, perceptual hashes, vector sketches, which have a sketch) of the items
        above `rowid` that have a hash, ascending: what the repost check holds. An item
        without a sketch (made before sketches were stored, not yet given one) has zeros."""
        with self.connection() as conn:  # a closed range, as in `phashes_after`
            rows = conn.execute(
                "SELECT rowid, phash, sketch FROM items WHERE rowid > ? AND rowid <= ? "
                "AND phash IS NOT NULL ORDER BY rowid", (rowid, 2**63 - 1)).fetchall()
        rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        hashes = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        blank = bytes(SKETCH_BYTES)
        has = np.fromiter((r[2] is not None and len(r[2]) == SKETCH_BYTES for r in rows),
                          dtype=np.bool_, count=len(rows))
        sketches = np.frombuffer(b"".join(
            bytes(r[2]) if ok else blank for r, ok in zip(rows, has.tolist(), strict=True)),
            dtype=np.uint8).reshape(len(rows), SKETCH_BYTES)
        return rowids, hashes.view(np.uint64), sketches, has

    def sketch_vectors(self, chunk: int = 1024) -> int:
        """Give every item that has a vector but no sketch its sketch, made from the stored
        vector (a catalog made before sketches were stored, or just re-encoded); returns how
        many. `chunk` items a transaction."""
        done = after = 0
        dim = self.dim or 0
        while True:
            with self.connection() as conn:
                rows = conn.execute(
                    "SELECT e.item_rowid, e.vector FROM items i JOIN embeddings e "
                    "ON e.item_rowid = i.rowid WHERE i.sketch IS NULL AND i.rowid > ? "
                    "ORDER BY i.rowid LIMIT ?", (after, chunk)).fetchall()
            if not rows:
                return done
            after = int(rows[-1][0])
            rowids, vectors = _as_arrays(rows, dim, self.location)  # damaged ones left out
            sketches = vector_sketches(vectors)
            with self.transaction() as conn:
                # only where still missing: every write of a vector writes its sketch in the
                # same transaction (a vector changed meanwhile brought its own)
                conn.executemany(
                    "UPDATE items SET sketch = ? WHERE rowid = ? AND sketch IS NULL",
                    [(s.tobytes(), int(r)) for r, s in zip(rowids, sketches, strict=True)])
            done += len(rowids)

    def unhashed(self, after: int, limit: int) -> builtins.list[tuple[int, str]]:
        """(rowid, image path) of up to `limit` items above rowid `after` without a perceptual
        hash (catalogs made before hashes were stored), ascending."""
        with self.connection() as conn:
            rows = conn.execute("SELECT rowid, image_path FROM items WHERE phash IS NULL "
                                "AND rowid > ? ORDER BY rowid LIMIT ?", (after, limit)).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def set_phashes(self, hashes: dict[int, int]) -> None:
        """Store perceptual hashes by rowid (unsigned 64-bit values)."""
        with self.transaction() as conn:
            conn.executemany("UPDATE items SET phash = ? WHERE rowid = ?",
                             [(signed64(h), r) for r, h in hashes.items()])

    def ids_of(self, rowids: Sequence[int]) -> dict[int, str]:
        """rowid → item id of those rowids still stored."""
        out: dict[int, str] = {}
        with self.connection() as conn:
            for start in range(0, len(rowids), 500):
                chunk = [int(r) for r in rowids[start:start + 500]]
                out.update((int(r[0]), str(r[1])) for r in conn.execute(
                    f"SELECT rowid, id FROM items WHERE rowid IN ({','.join('?' * len(chunk))})",
                    chunk))
        return out

    def attribute_values(self, name: str) -> dict[int, str]:
        """rowid → `name` ("category" or "colour") of every item: the given value, else the
        predicted tag, else "" (colours by canonical name: `Navy Blue` → `navy`)."""
        if name not in ("category", "colour"):
            raise ValueError(f"not a taggable attribute: {name!r}")
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT rowid, coalesce({name}, json_extract(predicted, '$.{name}.value'), '')"
                " FROM items"
            ).fetchall()
        if name == "colour":
            return {int(r[0]): canonical_colour(str(r[1])) if r[1] else "" for r in rows}
        return {int(r[0]): str(r[1]) for r in rows}

    def values(self, field: str, limit: int | None = None) -> builtins.list[tuple[str, int]]:
        """(value, number of items) of a list filter's field (`LIST_FIELDS`, or `currency`)
        or of any other attribute (`usage`, `pattern`...) across the catalog, as the filter
        sees it (given value, else predicted; an item without a currency in the base
        currency), most common first. Colours are merged by canonical name (`Navy Blue` and
        `navy` count as `navy`). Sold items count too."""
        if field == "size":
            source, expr = "items, json_each(items.sizes) s", "s.value"
        elif field == "currency":
            source, expr = "items", "coalesce(currency, ?)"
        elif field in VALUE_SQL:
            source, expr = "items", VALUE_SQL[field]
        else:
            source, expr = "items", attribute_sql(field)
        params: builtins.list[Any] = [self.base_currency] if field == "currency" else []
        merge = field == "colour"
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT v, count(*) AS n FROM (SELECT {expr} AS v FROM {source}) AS t "
                "WHERE v IS NOT NULL AND v != '' GROUP BY v ORDER BY n DESC, v"
                + ("" if limit is None or merge else " LIMIT ?"),
                (*params, *(() if limit is None or merge else (limit,))),
            ).fetchall()
        if not merge:
            return [(str(v), int(n)) for v, n in rows]
        counts: dict[str, int] = {}
        for v, n in rows:
            name = canonical_colour(str(v))
            counts[name] = counts.get(name, 0) + int(n)
        merged = sorted(counts.items(), key=lambda vn: (-vn[1], vn[0]))
        return merged if limit is None else merged[:limit]

    def sold_rowids(self, limit: int) -> builtins.list[int]:
        """Rowids of up to `limit` sold items (an index range read)."""
        with self.connection() as conn:
            rows = conn.execute("SELECT rowid FROM items WHERE state = 'sold' LIMIT ?",
                                (limit,)).fetchall()
        return [int(r[0]) for r in rows]

    def has_sold(self) -> bool:
        """Whether any item is sold (one index probe): unfiltered searches need no filter
        while none is."""
        with self.connection() as conn:
            row = conn.execute("SELECT 1 FROM items WHERE state = 'sold' LIMIT 1").fetchone()
        return row is not None

    def base_price_range(self) -> tuple[float | None, float | None]:
        """The lowest and highest price in the base currency (items not sold)."""
        with self.connection() as conn:
            lo, hi = conn.execute(
                "SELECT min(price_base), max(price_base) FROM items WHERE state != 'sold'"
            ).fetchone()
        return lo, hi

    def unconverted(self) -> builtins.list[tuple[str, int]]:
        """(currency, number of items) of priced items whose currency has no exchange rate
        to the base currency: price filters leave them out, price sorts put them last."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT currency, count(*) FROM items WHERE price IS NOT NULL AND "
                "price_base IS NULL GROUP BY currency ORDER BY currency"
            ).fetchall()
        return [(str(c), int(n)) for c, n in rows]

    # -- brand ratings and exchange rates ----------------------------------------------------

    def set_brand_ratings(
        self, ratings: Sequence[BrandRating], *, replace: bool = False
    ) -> int:
        """Store brand ratings (a brand already rated gets the new rating; `replace` drops
        every other brand's) and refresh the items of those brands; returns how many items
        of the catalog have a rated brand."""
        now = _now()
        with self.transaction() as conn:
            if replace:
                conn.execute("DELETE FROM brand_ratings")
            conn.executemany(
                "INSERT OR REPLACE INTO brand_ratings (brand_key, name, overall, people, planet,"
                " animals, source, url, rated_on, imported_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(r.key, r.brand, r.overall, r.people, r.planet, r.animals, r.source, r.url,
                  None if r.rated_on is None else r.rated_on.isoformat(), now) for r in ratings],
            )
            conn.execute(_REFRESH.replace("{where}", "brand_key IS NOT NULL"),
                         {"base": self.base_currency})
            row = conn.execute(
                "SELECT count(*) FROM items WHERE brand_overall IS NOT NULL"
            ).fetchone()
        return int(row[0])

    def brand_ratings(
        self, keys: Sequence[str] | None = None
    ) -> builtins.list[tuple[BrandRating, int]]:
        """Brand ratings (all, or those of these normalised brand names), by brand, with the
        number of items of that brand."""
        where, params = "1", "[]"
        if keys is not None:
            where, params = "b.brand_key IN (SELECT value FROM json_each(?))", json.dumps(
                builtins.list(keys))
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT b.*, (SELECT count(*) FROM items i WHERE i.brand_key = b.brand_key) AS n"
                f" FROM brand_ratings b WHERE {where} ORDER BY b.brand_key",
                () if keys is None else (params,),
            ).fetchall()
        return [(BrandRating(brand=r["name"], overall=r["overall"], people=r["people"],
                             planet=r["planet"], animals=r["animals"], source=r["source"],
                             url=r["url"], rated_on=r["rated_on"]), int(r["n"])) for r in rows]

    def brand_rating_count(self) -> int:
        with self.connection() as conn:
            row = conn.execute("SELECT count(*) FROM brand_ratings").fetchone()
        return int(row[0])

    def set_rates(self, rates: Sequence[Rate], base: str) -> None:
        """Replace the exchange rates (units of each currency per unit of `base`, which must
        be among them at 1) and convert every item's price again."""
        if not any(r.currency == base and r.rate == 1 for r in rates):
            raise ValueError(f"the rates must hold their base {base} at rate 1")
        now = _now()
        with self.transaction() as conn:
            conn.execute("DELETE FROM rates")
            conn.executemany(
                "INSERT INTO rates (currency, rate, rated_on, imported_at) VALUES (?,?,?,?)",
                [(r.currency, r.rate, r.date.isoformat(), now) for r in rates],
            )
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('rates_base', ?)",
                         (base,))
            self._refresh(conn)

    def rates(self) -> tuple[str | None, builtins.list[Rate]]:
        """(the base the rates are against, the rates); (None, []) before any import."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT currency, rate, rated_on FROM rates ORDER BY currency"
            ).fetchall()
        return self.get_meta("rates_base"), [
            Rate(currency=r[0], rate=r[1], date=r[2]) for r in rows
        ]

    def vectors(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """All (rowids ascending, vectors) — what the search index is built from."""
        dim = self.dim or 0
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT item_rowid, vector FROM embeddings ORDER BY item_rowid"
            ).fetchall()
        return _as_arrays(rows, dim, self.location)

    def vectors_version(self) -> int:
        """Changes to the stored vectors so far, by any connection or process."""
        return int(self.get_meta("vectors_version") or 0)

    def tags_version(self) -> int:
        """Changes to existing items' predicted tags so far, by any connection or process."""
        return int(self.get_meta("tags_version") or 0)

    def vector_rowids(self) -> NDArray[np.int64]:
        """Rowids of the items that have a vector, ascending."""
        with self.connection() as conn:
            rows = conn.execute("SELECT item_rowid FROM embeddings ORDER BY item_rowid").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors_of(
        self, rowids: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(rowids found, their vectors) for some rowids; ones deleted meanwhile are left out."""
        dim = self.dim or 0
        rows: list[Any] = []
        with self.connection() as conn:
            for start in range(0, len(rowids), 500):
                chunk = [int(r) for r in rowids[start:start + 500]]
                rows += conn.execute(
                    f"SELECT item_rowid, vector FROM embeddings WHERE item_rowid IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY item_rowid", chunk
                ).fetchall()
        return _as_arrays(rows, dim, self.location)

    # -- the change log a vector store follows (lookalike.index.vector_store.VectorSource) --

    def change_seq(self) -> int:
        """The newest change's number (0 when none): one row read."""
        with self.connection() as conn:
            return self.dialect.last_number(conn, "vector_changes")

    def changes(
        self, since: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(seq, item rowid, kind) of the changes after `since`, oldest first."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT seq, item_rowid, kind FROM vector_changes WHERE seq > ? ORDER BY seq",
                (since,),
            ).fetchall()
        table = np.asarray([tuple(r) for r in rows], dtype=np.int64).reshape(-1, 3)
        return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()

    def trim_changes(self, through: int) -> None:
        """Forget changes up to `through` (a vector store has them all)."""
        with self.connection() as conn:
            conn.execute("DELETE FROM vector_changes WHERE seq <= ?", (through,))

    def model_generation(self) -> str | None:
        """How many times the catalog was re-encoded with another model (None: never)."""
        return self.get_meta("model_generation")

    def vector_count(self) -> int:
        with self.connection() as conn:
            row = conn.execute("SELECT count(*) FROM embeddings").fetchone()
        return int(row[0])

    def scalars_of(self, rowids: NDArray[np.int64]) -> builtins.list[Scalars]:
        """Each rowid's filterable fields, in the order asked (Scalars() when unknown)."""
        found: dict[int, Scalars] = {}
        with self.connection() as conn:
            for start in range(0, len(rowids), 500):
                chunk = [int(r) for r in rowids[start : start + 500]]
                for row in conn.execute(
                    f"SELECT rowid, {_SCALARS} FROM items WHERE rowid IN "
                    f"({','.join('?' * len(chunk))})", chunk
                ):
                    found[int(row[0])] = _scalars(tuple(row)[1:])
        return [found.get(int(r), Scalars()) for r in rowids]

    def iter_vectors(
        self, batch: int
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32], builtins.list[Scalars]]]:
        """Every item with a vector, ascending rowid, `batch` at a time, with its fields."""
        dim = self.dim or 0
        after = -1
        while True:
            with self.connection() as conn:
                rows = conn.execute(
                    f"SELECT e.item_rowid, e.vector, {_SCALARS} FROM embeddings e "
                    "JOIN items ON items.rowid = e.item_rowid WHERE e.item_rowid > ? "
                    "ORDER BY e.item_rowid LIMIT ?", (after, batch),
                ).fetchall()
            if not rows:
                return
            ids, vectors = _as_arrays([(r[0], r[1]) for r in rows], dim, self.location)
            fields = {int(r[0]): _scalars(tuple(r)[2:]) for r in rows}
            if len(ids):  # (damaged vectors are left out, with a warning)
                yield ids, vectors, [fields[int(i)] for i in ids]
            after = int(rows[-1][0])

    def vector(self, rowid: int) -> NDArray[np.float32]:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT vector FROM embeddings WHERE item_rowid = ?", (rowid,)
            ).fetchone()
        if row is None:
            raise ItemNotFoundError(str(rowid))
        problem = vector_problem(row[0], self.dim or 0)
        if problem:
            raise CatalogCorruptError(
                self.location, f"the embedding of item rowid {rowid} is damaged: {problem}"
            )
        return np.frombuffer(row[0], dtype=np.float32).copy()


def _create_database(path: Path, base_currency: str) -> None:
    """A new, complete catalog file at `path` (at `SCHEMA_VERSION`, prices converted to
    `base_currency`): built in a temp file, then hard-linked into place (which fails if another
    process got there first: theirs is kept). A process killed here leaves at most a temp file,
    never an empty `path` that would later open as a catalog."""
    for stale in path.parent.glob(f"{path.name}.*.new"):  # left by killed processes
        pid = stale.name[len(path.name) + 1 : -len(".new")]
        if pid.isdigit() and not is_alive(int(pid)):
            for leftover in (stale, *stale.parent.glob(f"{stale.name}-*")):
                leftover.unlink(missing_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.new")
    try:
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA + _NEW_INDEXES)
            conn.execute("INSERT INTO meta (key, value) VALUES ('price_base_currency', ?)",
                         (base_currency,))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        finally:
            conn.close()  # checkpoints: the whole database is in `tmp`
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
