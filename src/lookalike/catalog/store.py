"""The catalog's source of truth: one SQLite file (WAL) with items and their embeddings.

Writes happen in short transactions, so a killed process loses at most the batch it was
writing, and nothing already committed. Other modules (users, swipes) add their own tables
to the same file through `CatalogStore.connection`.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.catalog.filters import Filters
from lookalike.catalog.schema import Item, ItemFields, ItemUpdate, Tag
from lookalike.errors import CatalogMismatchError, ItemNotFoundError
from lookalike.index.vector_store import Scalars

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
# The change log a vector store follows (lookalike.index.vector_store): every change to a
# vector (kind 0), a removal (1), a change to an item's filterable fields (2). AUTOINCREMENT:
# sequence numbers only grow, even once old entries are trimmed.
_CHANGE_LOG = """
CREATE TABLE IF NOT EXISTS vector_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_rowid INTEGER NOT NULL,
    kind INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS log_vector_added AFTER INSERT ON embeddings
BEGIN INSERT INTO vector_changes (item_rowid, kind) VALUES (NEW.item_rowid, 0); END;
CREATE TRIGGER IF NOT EXISTS log_vector_changed AFTER UPDATE OF vector ON embeddings
BEGIN INSERT INTO vector_changes (item_rowid, kind) VALUES (NEW.item_rowid, 0); END;
CREATE TRIGGER IF NOT EXISTS log_vector_removed AFTER DELETE ON embeddings
BEGIN INSERT INTO vector_changes (item_rowid, kind) VALUES (OLD.item_rowid, 1); END;
"""
_FILTERED = ("category", "brand", "colour", "sizes", "price", "kids", "second_hand",
             "sustainability", "predicted")
_CHANGE_LOG += (
    f"CREATE TRIGGER IF NOT EXISTS log_fields_changed AFTER UPDATE OF {', '.join(_FILTERED)} "
    "ON items WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _FILTERED) +
    " BEGIN INSERT INTO vector_changes (item_rowid, kind) VALUES (NEW.rowid, 2); END;\n"
)
SCHEMA = _TABLES + "".join(
    f"CREATE TRIGGER IF NOT EXISTS embeddings_{name} AFTER {event} ON embeddings "
    f"BEGIN {_BUMP_VERSION} END;\n"
    for name, event in (("added", "INSERT"), ("removed", "DELETE"), ("changed", "UPDATE OF vector"))
) + _CHANGE_LOG
# the filterable fields as `Filters.to_sql` reads them: given, else predicted
_SCALARS = (
    "coalesce(category, json_extract(predicted, '$.category.value')), brand, "
    "coalesce(colour, json_extract(predicted, '$.colour.value')), sizes, price, kids, "
    "second_hand, sustainability"
)

_COLUMNS = (
    "rowid, id, title, category, department, kids, price, currency, brand, sizes, colour, url, "
    "sustainability, second_hand, source, extra, predicted, image_path, image_hash, "
    "created_at, updated_at"
)


def _as_arrays(
    rows: Sequence[tuple[int, bytes]] | Sequence[sqlite3.Row], dim: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """(item_rowid, vector blob) rows → (rowids, matrix)."""
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    if not rows:
        return ids, np.zeros((0, dim), dtype=np.float32)
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
    return ids, matrix.reshape(len(rows), -1).copy()


def _scalars(row: Sequence[Any]) -> Scalars:
    """Scalars from the `_SCALARS` columns of a row."""
    category, brand, colour, sizes, price, kids, second_hand, sustainability = row

    def low(value: Any) -> str | None:
        return None if value is None else str(value).lower()

    return Scalars(
        category=low(category), brand=low(brand), colour=low(colour),
        sizes=tuple(str(v).lower() for v in json.loads(sizes or "[]")),
        price=price, kids=_bool_or_none(kids), second_hand=_bool_or_none(second_hand),
        sustainability=sustainability,
    )


def scalars_of_item(fields: ItemFields, predicted: dict[str, Tag] | None = None) -> Scalars:
    """An item's filterable fields, from its metadata and predicted tags."""
    predicted = predicted or {}

    def given_or_predicted(name: str) -> str | None:
        given = getattr(fields, name)
        tag = predicted.get(name)
        value = given if given is not None else (tag.value if tag is not None else None)
        return None if value is None else str(value).lower()

    return Scalars(
        category=given_or_predicted("category"),
        brand=None if fields.brand is None else fields.brand.lower(),
        colour=given_or_predicted("colour"),
        sizes=tuple(v.lower() for v in fields.sizes), price=fields.price, kids=fields.kids,
        second_hand=fields.second_hand, sustainability=fields.sustainability,
    )


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


def _row_to_item(row: sqlite3.Row) -> Item:
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


class CatalogStore:
    """Items and embeddings in one SQLite file. Thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The shared connection, locked for the caller (reads, or writes in autocommit)."""
        with self._lock:
            yield self._conn

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.connection() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.connection() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def bind_model(self, name: str, dim: int) -> None:
        """Record the encoder this catalog's vectors come from; refuse a different one."""
        stored_name, stored_dim = self.get_meta("model"), self.get_meta("dim")
        if stored_name is None:
            if self.count():
                raise CatalogMismatchError(f"{self.path}: items exist but no model is recorded")
            self.set_meta("model", name)
            self.set_meta("dim", str(dim))
            return
        if stored_name != name or int(stored_dim or 0) != dim:
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
            for item, vec in zip(items, vectors, strict=True):
                f = item.fields
                cur = conn.execute(
                    "INSERT INTO items (id, title, category, department, kids, price, currency,"
                    " brand, sizes, colour, url, sustainability, second_hand, source, extra,"
                    " predicted, image_path, image_hash, created_at, updated_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        item.id, f.title, f.category, f.department,
                        None if f.kids is None else int(f.kids),
                        f.price, f.currency, f.brand, json.dumps(f.sizes), f.colour, f.url,
                        f.sustainability,
                        None if f.second_hand is None else int(f.second_hand),
                        f.source, json.dumps(f.extra),
                        json.dumps({k: t.model_dump() for k, t in (item.predicted or {}).items()}),
                        item.image_path, item.image_hash, now, now,
                    ),
                )
                rowid = int(cur.lastrowid or 0)
                conn.execute(
                    "INSERT INTO embeddings (item_rowid, vector) VALUES (?, ?)",
                    (rowid, np.asarray(vec, dtype=np.float32).tobytes()),
                )
                rowids.append(rowid)
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
        return _row_to_item(row)

    def get_many(self, rowids: Sequence[int]) -> list[Item]:
        """Items by rowid, in the order asked (missing rowids are left out)."""
        if not rowids:
            return []
        found: dict[int, Item] = {}
        with self.connection() as conn:
            for start in range(0, len(rowids), 500):
                chunk = [int(r) for r in rowids[start : start + 500]]
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(
                    f"SELECT {_COLUMNS} FROM items WHERE rowid IN ({marks})", chunk
                ):
                    found[row["rowid"]] = _row_to_item(row)
        return [found[r] for r in rowids if r in found]

    def list(self, filters: Filters | None = None, offset: int = 0, limit: int = 50) -> list[Item]:
        where, params = (filters or Filters()).to_sql()
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM items WHERE {where} ORDER BY rowid LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_row_to_item(r) for r in rows]

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
        predicted tag, else ""."""
        if name not in ("category", "colour"):
            raise ValueError(f"not a taggable attribute: {name!r}")
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT rowid, coalesce({name}, json_extract(predicted, '$.{name}.value'), '')"
                " FROM items"
            ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def vectors(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """All (rowids ascending, vectors) — what the search index is built from."""
        dim = int(self.get_meta("dim") or 0)
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT item_rowid, vector FROM embeddings ORDER BY item_rowid"
            ).fetchall()
        return _as_arrays(rows, dim)

    def vectors_version(self) -> int:
        """Changes to the stored vectors so far, by any connection or process."""
        return int(self.get_meta("vectors_version") or 0)

    def vector_rowids(self) -> NDArray[np.int64]:
        """Rowids of the items that have a vector, ascending."""
        with self.connection() as conn:
            rows = conn.execute("SELECT item_rowid FROM embeddings ORDER BY item_rowid").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors_of(
        self, rowids: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(rowids found, their vectors) for some rowids; ones deleted meanwhile are left out."""
        dim = int(self.get_meta("dim") or 0)
        rows: list[tuple[int, bytes]] = []
        with self.connection() as conn:
            for start in range(0, len(rowids), 500):
                chunk = [int(r) for r in rowids[start:start + 500]]
                rows += conn.execute(
                    f"SELECT item_rowid, vector FROM embeddings WHERE item_rowid IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY item_rowid", chunk
                ).fetchall()
        return _as_arrays(rows, dim)

    # -- the change log a vector store follows (lookalike.index.vector_store.VectorSource) --

    def change_seq(self) -> int:
        """The newest change's number (0 when none): one row read."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'vector_changes'"
            ).fetchone()
        return 0 if row is None else int(row[0])

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
        dim = int(self.get_meta("dim") or 0)
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
            ids, vectors = _as_arrays([(r[0], r[1]) for r in rows], dim)
            yield ids, vectors, [_scalars(tuple(r)[2:]) for r in rows]
            after = int(ids[-1])

    def vector(self, rowid: int) -> NDArray[np.float32]:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT vector FROM embeddings WHERE item_rowid = ?", (rowid,)
            ).fetchone()
        if row is None:
            raise ItemNotFoundError(str(rowid))
        return np.frombuffer(row[0], dtype=np.float32).copy()
