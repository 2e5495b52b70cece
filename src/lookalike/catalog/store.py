"""The catalog's source of truth: one SQLite file (WAL) with items and their embeddings.

Writes happen in short transactions, so a killed process loses at most the batch it was
writing, and nothing already committed. Other modules (users, swipes) add their own tables
to the same file through `CatalogStore.connection`.

Damage never passes silently and never takes the whole catalog down: a file that is empty, not
SQLite, truncated or malformed raises `CatalogCorruptError` naming it (at open, or at the first
read that meets a damaged page); a row that cannot be read (an embedding blob of the wrong
length or with non-finite values, a field that does not parse) is left out with a warning, and
`lookalike check` lists it. A new catalog file is created complete (in a temp file, then linked
into place), so a process killed while creating one leaves no empty file behind.
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

from lookalike.catalog.filters import VALUE_SQL, Filters, attribute_sql
from lookalike.catalog.schema import Item, ItemFields, ItemUpdate, Tag
from lookalike.colour_names import canonical_colour
from lookalike.errors import CatalogCorruptError, CatalogMismatchError, ItemNotFoundError

log = logging.getLogger(__name__)

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
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_category ON items(category);
CREATE INDEX IF NOT EXISTS items_price ON items(price);
CREATE TABLE IF NOT EXISTS embeddings (
    item_rowid INTEGER PRIMARY KEY REFERENCES items(rowid) ON DELETE CASCADE,
    vector BLOB NOT NULL
);
"""
# Bumped by every change to the vectors, whoever makes it (another server process, a CLI ingest
# into a served catalog): one cheap read tells a process its index is out of step. An upsert, so
# opening a catalog writes nothing (a missing row reads as 0).
_BUMP_VERSION = (
    "INSERT INTO meta (key, value) VALUES ('vectors_version', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;"
)
# Bumped by every change to an existing item's predicted tags (a re-tag, in any process), so
# what is derived from the tags (the colour palettes a query compares) can be kept in memory.
_BUMP_TAGS = (
    "INSERT INTO meta (key, value) VALUES ('tags_version', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;"
)
SCHEMA = _TABLES + "".join(
    f"CREATE TRIGGER IF NOT EXISTS embeddings_{name} AFTER {event} ON embeddings "
    f"BEGIN {_BUMP_VERSION} END;\n"
    for name, event in (("added", "INSERT"), ("removed", "DELETE"), ("changed", "UPDATE OF vector"))
) + (
    "CREATE TRIGGER IF NOT EXISTS items_tags_changed AFTER UPDATE OF predicted ON items "
    f"BEGIN {_BUMP_TAGS} END;\n"
)

# Rowids are never reused: a new item gets one above every rowid the catalog ever gave out
# (SQLite alone would hand the last one deleted to the next item). An index that remembers a
# removed rowid (HNSW keeps removed nodes) or a file saved before a delete thus never meets
# that rowid again as another item's.
_HIGH_WATER = (
    "SELECT max(coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'rowid_high'), 0),"
    " coalesce((SELECT max(rowid) FROM items), 0))"
)
_SET_HIGH_WATER = (
    "INSERT INTO meta (key, value) VALUES ('rowid_high', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

_COLUMNS = (
    "rowid, id, title, category, department, kids, price, currency, brand, sizes, colour, url, "
    "sustainability, second_hand, source, extra, predicted, image_path, image_hash, "
    "created_at, updated_at"
)


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
    rows: Sequence[tuple[int, bytes]] | Sequence[sqlite3.Row], dim: int, where: Path
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


def _bool_or_none(value: Any) -> bool | None:
    return None if value is None else bool(value)


class DamagedRowError(ValueError):
    """An item row whose fields do not parse (bad JSON, bad timestamp...)."""


def _row_to_item(row: sqlite3.Row) -> Item:
    try:
        return _parse_item(row)
    except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError and pydantic's are too
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DamagedRowError(f"item {row['id']!r} (rowid {row['rowid']}): {reason}") from None


def _parse_item(row: sqlite3.Row) -> Item:
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
    )


def _readable(rows: Sequence[sqlite3.Row], where: Path) -> list[Item]:
    """Items of `rows`, the damaged ones left out with a warning."""
    items = []
    for row in rows:
        try:
            items.append(_row_to_item(row))
        except DamagedRowError as exc:
            log.warning("%s: left out %s; run `lookalike check`", where, exc)
    return items


class CatalogStore:
    """Items and embeddings in one SQLite file. Thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._dim: int | None = None
        if not self.path.exists():
            _create_database(self.path)
        damage = file_damage(self.path)
        if damage:
            raise CatalogCorruptError(str(self.path), damage)
        with self._guard():
            self._conn = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=30
            )
            try:
                self._conn.row_factory = sqlite3.Row
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute("PRAGMA foreign_keys=ON")
                self._conn.executescript(SCHEMA)
            except BaseException:
                self._conn.close()
                raise

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
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
                raise CatalogCorruptError(str(self.path), reason) from None
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        with self._lock, self._guard():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a damaged file may refuse even this
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
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
            self.path, raw, length // 4, length // 4,
        )
        return length // 4

    def bind_model(self, name: str, dim: int) -> None:
        """Record the encoder this catalog's vectors come from; refuse a different one."""
        stored_name, stored_dim = self.get_meta("model"), self.dim
        if stored_name is None:
            if self.count():
                raise CatalogMismatchError(f"{self.path}: items exist but no model is recorded")
            self.set_meta("model", name)
            self.set_meta("dim", str(dim))
            return
        if stored_dim is None:  # no vectors and no valid record of their length
            self.set_meta("dim", str(dim))
            stored_dim = dim
        if stored_name != name or stored_dim != dim:
            raise CatalogMismatchError(
                f"{self.path} holds vectors of model {stored_name!r} ({stored_dim}-d), not "
                f"{name!r} ({dim}-d): use that model, or a new catalog folder"
            )

    @property
    def model_name(self) -> str | None:
        return self.get_meta("model")

    # -- writes -----------------------------------------------------------------------------

    def add(self, items: Sequence[NewItem], vectors: NDArray[np.float32]) -> list[int]:
        """Insert items with their vectors in one transaction; returns their rowids."""
        if len(items) != len(vectors):
            raise ValueError("one vector per item")
        now = _now()
        rowids: list[int] = []
        with self.transaction() as conn:
            last = int(conn.execute(_HIGH_WATER).fetchone()[0])
            for item, vec in zip(items, vectors, strict=True):
                f = item.fields
                last += 1
                conn.execute(
                    "INSERT INTO items (rowid, id, title, category, department, kids, price,"
                    " currency, brand, sizes, colour, url, sustainability, second_hand, source,"
                    " extra, predicted, image_path, image_hash, created_at, updated_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        last, item.id, f.title, f.category, f.department,
                        None if f.kids is None else int(f.kids),
                        f.price, f.currency, f.brand, json.dumps(f.sizes), f.colour, f.url,
                        f.sustainability,
                        None if f.second_hand is None else int(f.second_hand),
                        f.source, json.dumps(f.extra),
                        json.dumps({k: t.model_dump() for k, t in (item.predicted or {}).items()}),
                        item.image_path, item.image_hash, now, now,
                    ),
                )
                conn.execute(
                    "INSERT INTO embeddings (item_rowid, vector) VALUES (?, ?)",
                    (last, np.asarray(vec, dtype=np.float32).tobytes()),
                )
                rowids.append(last)
            if rowids:
                conn.execute(_SET_HIGH_WATER, (str(last),))
        return rowids

    def update(self, item_id: str, change: ItemUpdate) -> Item:
        values = change.model_dump(exclude_unset=True)
        if not values:
            return self.get(item_id)
        sets, params = [], []
        for key, value in values.items():
            if key in ("sizes", "extra"):
                value = json.dumps(value if value is not None else ([] if key == "sizes" else {}))
            elif key in ("kids", "second_hand") and value is not None:
                value = int(value)
            sets.append(f"{key} = ?")
            params.append(value)
        sets.append("updated_at = ?")
        params.append(_now())
        with self.transaction() as conn:
            cur = conn.execute(
                f"UPDATE items SET {', '.join(sets)} WHERE id = ?", [*params, item_id]
            )
            if cur.rowcount == 0:
                raise ItemNotFoundError(item_id)
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
            conn.execute(_SET_HIGH_WATER, (str(conn.execute(_HIGH_WATER).fetchone()[0]),))
            conn.execute("DELETE FROM embeddings WHERE item_rowid = ?", (row[0],))
            conn.execute("DELETE FROM items WHERE rowid = ?", (row[0],))
        return int(row[0])

    # -- reads ------------------------------------------------------------------------------

    def count(self, filters: Filters | None = None) -> int:
        where, params = (filters or Filters()).to_sql()
        with self.connection() as conn:
            row = conn.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()
        return int(row[0])

    def get(self, item_id: str) -> Item:
        with self.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise ItemNotFoundError(item_id)
        try:
            return _row_to_item(row)
        except DamagedRowError as exc:
            raise CatalogCorruptError(str(self.path), str(exc)) from None

    def get_many(self, rowids: Sequence[int]) -> list[Item]:
        """Items by rowid, in the order asked (missing rowids are left out)."""
        if not rowids:
            return []
        found: dict[int, Item] = {}
        with self.connection() as conn:
            for start in range(0, len(rowids), 500):
                chunk = [int(r) for r in rowids[start : start + 500]]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM items WHERE rowid IN ({marks})", chunk
                ).fetchall()
                found.update((item.rowid, item) for item in _readable(rows, self.path))
        return [found[r] for r in rowids if r in found]

    def list(self, filters: Filters | None = None, offset: int = 0, limit: int = 50) -> list[Item]:
        where, params = (filters or Filters()).to_sql()
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM items WHERE {where} ORDER BY rowid LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return _readable(rows, self.path)

    def rowid_of(self, item_id: str) -> int:
        with self.connection() as conn:
            row = conn.execute("SELECT rowid FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise ItemNotFoundError(item_id)
        return int(row[0])

    def filter_rowids(self, filters: Filters) -> NDArray[np.int64]:
        """Rowids of the items `filters` keeps, ascending."""
        where, params = filters.to_sql()
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
        """(value, number of items) of a list filter's field (`LIST_FIELDS`) or of any other
        attribute (`usage`, `pattern`...) across the catalog, as the filter sees it (given
        value, else predicted), most common first. Colours are merged by canonical name
        (`Navy Blue` and `navy` count as `navy`)."""
        if field == "size":
            source, expr = "items, json_each(items.sizes) s", "s.value"
        elif field in VALUE_SQL:
            source, expr = "items", VALUE_SQL[field]
        else:
            source, expr = "items", attribute_sql(field)
        merge = field == "colour"
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {expr} AS v, count(*) AS n FROM {source} WHERE v IS NOT NULL AND v != '' "
                "GROUP BY v ORDER BY n DESC, v LIMIT ?",
                (-1 if limit is None or merge else limit,),
            ).fetchall()
        if not merge:
            return [(str(v), int(n)) for v, n in rows]
        counts: dict[str, int] = {}
        for v, n in rows:
            name = canonical_colour(str(v))
            counts[name] = counts.get(name, 0) + int(n)
        merged = sorted(counts.items(), key=lambda vn: (-vn[1], vn[0]))
        return merged if limit is None else merged[:limit]

    def vectors(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """All (rowids ascending, vectors) — what the search index is built from."""
        dim = self.dim or 0
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT item_rowid, vector FROM embeddings ORDER BY item_rowid"
            ).fetchall()
        return _as_arrays(rows, dim, self.path)

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
        rows: list[tuple[int, bytes]] = []
        with self.connection() as conn:
            for start in range(0, len(rowids), 500):
                chunk = [int(r) for r in rowids[start:start + 500]]
                rows += conn.execute(
                    f"SELECT item_rowid, vector FROM embeddings WHERE item_rowid IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY item_rowid", chunk
                ).fetchall()
        return _as_arrays(rows, dim, self.path)

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
                str(self.path), f"the embedding of item rowid {rowid} is damaged: {problem}"
            )
        return np.frombuffer(row[0], dtype=np.float32).copy()


def _create_database(path: Path) -> None:
    """A new, complete catalog file at `path`: built in a temp file, then hard-linked into place
    (which fails if another process got there first: theirs is kept). A process killed here
    leaves at most a temp file, never an empty `path` that would later open as a catalog."""
    for stale in path.parent.glob(f"{path.name}.*.new"):  # left by killed processes
        pid = stale.name[len(path.name) + 1 : -len(".new")]
        if pid.isdigit() and not _alive(int(pid)):
            for leftover in (stale, *stale.parent.glob(f"{stale.name}-*")):
                leftover.unlink(missing_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.new")
    try:
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
