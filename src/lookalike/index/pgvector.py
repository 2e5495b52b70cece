"""The pgvector backend of the vector-store contract (`lookalike.index.vector_store`).

    LOOKALIKE_VECTOR_STORE=pgvector[?index=hnsw&ef=100&filtered_ef=400&exact_max=20000
                                    &category_index_min=2000]
    LOOKALIKE_VECTOR_STORE=postgresql://USER:PASSWORD@HOST:PORT/DATABASE[?schema=public&...]

Needs the `postgres` extra (psycopg) and the pgvector extension (0.8+, for
``hnsw.iterative_scan``) on the server: ``CREATE EXTENSION vector`` once per database, by a
superuser (pgvector is not a trusted extension); this store creates it when its user may.
``scripts/install-pgvector.sh`` builds it for Debian's PostgreSQL 15.

**Where.** ``pgvector``: the catalog's own PostgreSQL database (`Settings.database_url`, needed)
and schema, table ``pgvector_items``. ``postgresql://…``: any PostgreSQL server (the catalog's
metadata may stay in SQLite), in SCHEMA (default ``public``, created when missing), one table
per catalog named like a Milvus collection (`lookalike.index.naming.collection_name`: the
catalog folder's name and a hash of its path, or of its metadata database and schema). The
table's comment records the catalog and the vector width: a table made for another catalog or
of another width is a clear error, never overwritten.

**Table.** ``id`` bigint primary key (the metadata store's rowid), ``vector`` vector(dim)
(float32, unit length: inner product is cosine; stored in the row, not TOASTed, so the
planner's cost of a whole-table scan is right), and every filterable field of `Scalars` as a
column, stored as `lookalike.index.milvus` stores them for Milvus (strings as their BLAKE2b
digest, so NUL characters and collations play no part; ``sizes`` a text[] of digests; unknown
numbers and flags NULL: no comparison keeps them; the state "available" when unknown), kept
in the row (STORAGE MAIN: a row with a 512-d vector is past the 2 kB TOAST threshold, and
PostgreSQL would otherwise move even a 32-byte field out of line, so that a filter read the
TOAST index and table for every field of every row: 30x the pages of a scan, measured). A
filter is one SQL WHERE clause with bound parameters (`filter_clause`), evaluated by PostgreSQL
before ranking. B-tree indexes on the text fields and price and a GIN index on sizes let the
planner serve a selective filter exactly (bitmap scan, every kept item scored).

**Index**: ``index=hnsw`` (default: HNSW, vector_ip_ops, m=16, ef_construction=64, pgvector's
defaults) or ``index=flat`` (no vector index: every kept item scored, exact).

*Searches that filter nothing but sold items* walk the graph with breadth ``hnsw.ef_search`` =
max(ef, k) and ``hnsw.iterative_scan = relaxed_order`` (when the sold items leave fewer than k
of the candidates, pgvector walks on, up to ``hnsw.max_scan_tuples``); the kept rows are
ordered again exactly.

*A filter the planner expects to keep at most* ``exact_max`` *rows* (default 20,000; the
planner's row estimate, from one EXPLAIN without running the search) is served exactly
("pgvector-exact-subset": every kept row scored, found through the field indexes).

*Other filtered searches* first look at the max(filtered_ef, k) nearest items the graph gives,
without iterative scans, and keep those the filter keeps. When k or more are kept, those are
the answer: the true top k of the kept items then all lie among the filtered_ef nearest items
(the k-th kept one is nearer than every item outside them), so recall is that of the unfiltered
graph walk. When fewer are kept, the kept items lie elsewhere in the vector space; a filter on
categories then walks each kept category's own graph (below), and any other filter scores
every kept row instead (exact). A filtered graph walk is no way to reach them: items of one
category sit together, and from a query elsewhere pgvector's iterative scan returns the first
kept items it meets, not the nearest — measured at 100k x 512 (synthetic, 20 categories),
iterative scans found 0.60 of the true top 10 under a filter keeping 5 categories (25 %), 0.73
under 10 categories, and raising ``hnsw.max_scan_tuples`` to 100,000, ``work_mem`` or
``hnsw.scan_mem_multiplier`` did not help (the walk's order is the limit, not its length).
*Categories of their own index.* Every category of at least ``category_index_min`` items
(default 2,000) has an HNSW index of its own (a partial index, ``WHERE category = ...``; made
at opening, and after writes once that many items were written since the last look). When the
probe fails, each category of the filter gives its max(ef, k) nearest items through its own
graph, wherever the query is, and those the filter keeps: when k or more are kept, they are
that category's top k (as for the probe); the kept rows of the other categories (small ones,
or too few kept among the nearest) are all scored. So a category filter costs one graph walk
per kept category for queries outside it (measured at 100k x 512 under a filter keeping 10 of
20 categories: 22 ms of PostgreSQL CPU per query on average, recall@10 0.977, against 36 ms
scoring every kept row), at the price of a second HNSW graph over the categorised items (index
size and build time about doubled).

**Writes and other processes.** As for Milvus, the metadata store is the source of truth and
its change log says what to write: `upsert`, `set_fields` and `remove` apply every change logged
since the table's *marker* (its row in ``lookalike_pgvector_markers``), reading each changed
item from the metadata store — in one PostgreSQL transaction that also moves the marker, under
a transaction-scoped advisory lock named after the table, so writers anywhere apply changes
one at a time and a crash leaves either all or none of a batch. Searches read committed rows:
another process's writes are seen as soon as they commit. A writer that crashed after
committing to the metadata store but before writing here leaves the marker behind the change
log: the next `sync()` anywhere (when no writer holds the lock) applies the rest.

**Repair.** At open, a missing table is created and filled from the metadata store (rows
copied in binary, then the index built); one whose marker is ahead of the change log (a
database restored or made anew), whose row count differs from the metadata store's after
catching up, or made for the model the catalog had before re-encoding, is made again and filled
in one transaction (searches wait for it; a failed fill leaves the old table).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import re
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from lookalike.config import Settings
from lookalike.index.base import Ids, Matrix
from lookalike.index.naming import collection_name, text_code
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

__all__ = ["FORMAT", "PgvectorStore", "PgvectorUrl", "copy_rows", "filter_clause"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: 2: the filter fields are kept in the row (STORAGE MAIN), never read from TOAST
FORMAT = 2
MARKERS = "lookalike_pgvector_markers"
OWN_TABLE = "pgvector_items"  # in the catalog's own schema (``pgvector``)
#: HNSW search breadth (hnsw.ef_search, at least k); pgvector's default is 40
DEFAULT_EF = 100
#: the nearest items a filtered search looks at before it scores every kept row (see above)
DEFAULT_FILTERED_EF = 400
#: filtered searches the planner expects to keep at most this many rows are exact
DEFAULT_EXACT_MAX = 20_000
#: categories of at least this many items get an HNSW index of their own (a partial index)
DEFAULT_CATEGORY_INDEX_MIN = 2_000
MAX_EF = 1000  # pgvector's limit on hnsw.ef_search
_HNSW = "m = 16, ef_construction = 64"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_CODE = re.compile(r"^[0-9a-f]{32}$")  # a stored text field's digest (`text_code`)
_COPY_ROWS = 20_000  # rows per COPY when filling
_BUILD_MEMORY = "512MB"  # maintenance_work_mem while building the HNSW index (a graph in memory)
_COLUMNS = ("id", "vector", "category", "brand", "colour", "sizes", "price", "sustainability",
            "kids", "second_hand", "state")


# -- the URL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgvectorUrl:
    """Where the vectors go: `conninfo` (a libpq URL without lookalike's options) and `schema`
    and `table`, or the catalog's own database (`own`)."""

    conninfo: str
    schema: str
    table: str
    own: bool
    index: str = "hnsw"
    ef: int = DEFAULT_EF
    filtered_ef: int = DEFAULT_FILTERED_EF
    exact_max: int = DEFAULT_EXACT_MAX
    category_index_min: int = DEFAULT_CATEGORY_INDEX_MIN

    @classmethod
    def parse(cls, url: str, folder: Path, database_url: str | None) -> PgvectorUrl:
        from lookalike.catalog.database import postgres_target, redact

        text = url.strip()
        safe = redact(text) if "://" in text else text

        def bad(why: str) -> VectorStoreError:
            return VectorStoreError(f"vector store {safe!r}: {why}")

        parts = urlsplit(text)
        own = parts.scheme == "pgvector" or text.startswith("pgvector?") or text == "pgvector"
        if not own and parts.scheme not in ("postgresql", "postgres"):
            raise bad("expected pgvector[?OPTIONS] or postgresql://USER@HOST:PORT/DATABASE")
        query = parse_qsl(parts.query if "?" in text else "", keep_blank_values=True)
        names = ("index", "ef", "filtered_ef", "exact_max", "category_index_min", "schema")
        options = {k: v for k, v in query if k in names}
        rest = [(k, v) for k, v in query if k not in names]
        if own and rest:
            raise bad(f"unknown option {rest[0][0]!r}; known: category_index_min, ef, "
                      "exact_max, filtered_ef, index")
        index = options.get("index", "hnsw").lower()
        if index not in ("hnsw", "flat"):
            raise bad(f"index={index!r}: expected 'hnsw' or 'flat'")
        def whole(name: str, default: int, low: int, high: int) -> int:
            try:
                value = int(options.get(name, default))
            except ValueError:
                raise bad(f"{name}={options[name]!r} is not a whole number") from None
            if not low <= value <= high:
                raise bad(f"{name}={value} is outside {low}..{high}")
            return value

        ef = whole("ef", DEFAULT_EF, 1, MAX_EF)
        filtered_ef = whole("filtered_ef", DEFAULT_FILTERED_EF, 1, MAX_EF)
        extra = {"exact_max": whole("exact_max", DEFAULT_EXACT_MAX, 0, 10**9),
                 "category_index_min": whole("category_index_min",
                                             DEFAULT_CATEGORY_INDEX_MIN, 1, 10**9)}
        if own:
            if "schema" in options:
                raise bad("schema= is for postgresql://; pgvector uses the catalog's schema")
            if not database_url:
                raise bad("'pgvector' keeps vectors in the catalog's PostgreSQL database: set "
                          "LOOKALIKE_DATABASE_URL too, or give postgresql://USER@HOST:PORT/DB")
            target = postgres_target(database_url, folder)
            return cls(target.url, target.schema, OWN_TABLE, True, index, ef, filtered_ef,
                       **extra)
        schema = options.get("schema", "public")
        if not _NAME.match(schema) or schema.startswith("pg_"):
            raise bad(f"schema {schema!r}: lower-case letters, digits and _, not pg_")
        conninfo = urlunsplit(parts._replace(query=urlencode(rest)))
        return cls(conninfo, schema, collection_name(folder, "", database_url), False, index, ef,
                   filtered_ef, **extra)

    def __str__(self) -> str:
        from lookalike.catalog.database import redact

        return f"{redact(self.conninfo)} {self.schema}.{self.table}"


# -- fields, filters, rows ---------------------------------------------------------------------


def filter_clause(
    filters: Filters | None, allowed: Ids | None = None, exclude: Ids | None = None
) -> tuple[str, list[Any]] | None:
    """(SQL condition, parameters) keeping exactly the items `Scalars.matches(filters)` keeps
    (and `allowed`, not `exclude`d): "TRUE" keeps everything, None nothing."""
    parts: list[str] = []
    params: list[Any] = []

    def add(sql: str, *values: Any) -> None:
        parts.append(sql)
        params.extend(values)

    def codes(values: Sequence[str]) -> list[str]:
        return sorted({text_code(v) for v in values})

    if filters is not None:
        f = filters
        texts = {"category": [w.lower() for w in f.category], "brand": wanted_brands(f),
                 "colour": wanted_colours(f)}
        for name, values in texts.items():
            if values:
                add(f"{name} = ANY(%s)", codes(values))
        if f.size:
            add("sizes && %s::text[]", codes([s.lower() for s in f.size]))
        if f.price_min is not None:
            add("price >= %s", float(f.price_min))
        if f.price_max is not None:
            add("price <= %s", float(f.price_max))
        for name in ("kids", "second_hand"):
            value: bool | None = getattr(f, name)
            if value is not None:
                add(f"{name} = %s", bool(value))
        if f.min_sustainability is not None:
            add("sustainability >= %s", float(f.min_sustainability))
        states = wanted_states(f)
        if states is None:  # by default sold items are left out
            add("state <> %s", text_code("sold"))
        elif states:
            add("state = ANY(%s)", codes(states))
    if allowed is not None:
        allowed = np.unique(as_ids(allowed))
        if len(allowed) == 0:
            return None
        add("id = ANY(%s::bigint[])", allowed.tolist())
    if exclude is not None and len(exclude):
        add("NOT (id = ANY(%s::bigint[]))", np.unique(as_ids(exclude)).tolist())
    return (" AND ".join(f"({p})" for p in parts) or "TRUE"), params


_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_NULL = struct.pack(">i", -1)
_TEXT_OID = 25


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    code = text_code(value).encode()
    return struct.pack(">i", len(code)) + code


def _float(value: float | None) -> bytes:
    if value is None or math.isnan(value):
        return _NULL
    return b"\x00\x00\x00\x08" + struct.pack(">d", value)


def _bool(value: bool | None) -> bytes:
    return _NULL if value is None else b"\x00\x00\x00\x01" + (b"\x01" if value else b"\x00")


def _sizes(values: Sequence[str]) -> bytes:
    codes = sorted({text_code(v) for v in values})
    body = struct.pack(">iii", 1 if codes else 0, 0, _TEXT_OID)
    if codes:
        body += struct.pack(">ii", len(codes), 1)
        body += b"".join(struct.pack(">i", len(c)) + c.encode() for c in codes)
    return struct.pack(">i", len(body)) + body


def copy_rows(ids: Ids, vectors: Matrix, fields: Sequence[Scalars]) -> bytes:
    """Items in PostgreSQL's binary COPY format, columns in table order (`vector` as pgvector's
    binary form: dimensions, 0, big-endian float32s)."""
    ids = as_ids(ids)
    n, dim = len(ids), int(vectors.shape[1]) if len(ids) else 0
    big = np.ascontiguousarray(vectors, dtype=">f4").reshape(n, dim)
    head = struct.pack(">ihh", 4 + 4 * dim, dim, 0)
    out = [_SIGNATURE]
    for i, (rowid, s) in enumerate(zip(ids.tolist(), fields, strict=True)):
        out += [
            struct.pack(">hiq", len(_COLUMNS), 8, rowid), head, big[i].tobytes(),
            _text(s.category), _text(s.brand), _text(s.colour), _sizes(s.sizes),
            _float(s.price), _float(s.sustainability), _bool(s.kids), _bool(s.second_hand),
            _text(s.state or "available"),  # unknown counts as available
        ]
    out.append(b"\xff\xff")
    return b"".join(out)


def _vector_text(row: Any) -> str:
    return "[" + ",".join(repr(float(x)) for x in np.asarray(row, dtype=np.float32)) + "]"


# -- the store ---------------------------------------------------------------------------------


class PgvectorStore:
    """A `VectorStore` in a PostgreSQL table with pgvector; see the module doc. Thread-safe
    (one connection, used by one thread at a time)."""

    def __init__(
        self, url: PgvectorUrl, folder: Path, dim: int, source: VectorSource, settings: Settings
    ) -> None:
        self.url = url
        self.folder = Path(folder)
        self._dim = dim
        self.source = source
        self.settings = settings
        self.owner = _owner(folder, settings.database_url)
        self._conn: Any = None
        self._lock = threading.RLock()
        self._seen = -1  # change log position this process has caught up with
        self._count: int | None = None
        self._ids: Ids | None = None
        self._trim: int | None = None  # change log position to trim once committed
        self._indexed: frozenset[str] = frozenset()  # categories (codes) with an HNSW index
        self._unchecked = 0  # items written since the categories' sizes were looked at
        digest = hashlib.sha256(f"{url.schema}.{url.table}".encode()).digest()[:8]
        self._key = int.from_bytes(digest, "big", signed=True)  # the writers' advisory lock
        self._table = f'"{url.schema}"."{url.table}"'
        self._markers = f'"{url.schema}"."{MARKERS}"'

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str, folder: Path, dim: int, source: VectorSource, settings: Settings
    ) -> PgvectorStore:
        """Connect, create or check the catalog's table, and bring it in step with the
        metadata store."""
        parsed = PgvectorUrl.parse(url, Path(folder), settings.database_url)
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise VectorStoreError(
                f"vector store {parsed}: the pgvector backend needs psycopg "
                "(pip install 'lookalike[postgres]')"
            ) from None
        store = cls(parsed, folder, dim, source, settings)
        try:
            store._connect()
            store._prepare()
            store._ensure_index()
        except BaseException:
            store.close()
            raise
        return store

    def _connect(self) -> None:
        import psycopg

        try:
            self._conn = psycopg.connect(self.url.conninfo, autocommit=True, connect_timeout=30)
        except psycopg.Error as exc:
            raise VectorStoreError(
                f"vector store {self.url}: PostgreSQL is unreachable or refused the "
                f"connection: {str(exc).strip()}"
            ) from None
        conn = self._conn
        ext = conn.execute(
            "SELECT n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n "
            "ON n.oid = e.extnamespace WHERE e.extname = 'vector'").fetchone()
        if ext is None:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                raise VectorStoreError(
                    f"vector store {self.url}: the pgvector extension is not enabled in this "
                    f"database and could not be ({str(exc).strip()}). Install it on the server "
                    "(Debian: scripts/install-pgvector.sh) and run CREATE EXTENSION vector as a "
                    "superuser"
                ) from None
            ext = conn.execute(
                "SELECT n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n "
                "ON n.oid = e.extnamespace WHERE e.extname = 'vector'").fetchone()
        version = tuple(int(p) for p in re.findall(r"\d+", ext[1])[:2])
        if version < (0, 8):
            raise VectorStoreError(
                f"vector store {self.url}: pgvector {ext[1]} is too old; 0.8 or newer is "
                "needed (hnsw.iterative_scan keeps filtered searches complete)"
            )
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.url.schema}"')
        # the table's schema first, then the extension's (for the vector type and operators)
        conn.execute(f'SET search_path TO "{self.url.schema}", "{ext[0]}"')

    @contextlib.contextmanager
    def _transaction(self, wait: bool = True) -> Iterator[Any]:
        """A transaction holding the writers' advisory lock; yields None when `wait` is off and
        another writer holds it."""
        with self._lock, self._conn.transaction():
            if wait:
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._key,))
            elif not self._conn.execute("SELECT pg_try_advisory_xact_lock(%s)",
                                        (self._key,)).fetchone()[0]:
                yield None
                return
            yield self._conn

    def _prepare(self) -> None:
        self._trim = None
        with self._transaction() as conn:
            self._prepare_in(conn)
        if self._trim is not None:  # (once committed)
            self.source.trim_changes(self._trim)

    def _prepare_in(self, conn: Any) -> None:
        """(In a locked transaction.) Create, check or repair the table; catch up."""
        conn.execute(f"CREATE TABLE IF NOT EXISTS {self._markers} "
                     "(name text PRIMARY KEY, applied bigint NOT NULL)")
        exists = conn.execute("SELECT to_regclass(%s)", (self._table,)).fetchone()[0]
        if exists is None:
            self._rebuild(conn, reason=None)
            return
        if outdated := self._check(conn):
            self._rebuild(conn, reason=outdated)
            return
        seq = self.source.change_seq()
        if self._marker(conn) > seq:
            self._rebuild(conn, reason="it is ahead of the catalog's database (restored "
                          "or new)")
            return
        self._apply(conn)
        want = self.source.vector_count()
        count = conn.execute(f"SELECT count(*) FROM {self._table}").fetchone()[0]
        if count != want and self.source.change_seq() == self._seen:
            self._rebuild(conn, reason=f"it holds {count} items, the catalog's database "
                          f"{want}")

    def _check(self, conn: Any) -> str | None:
        """The table is this catalog's and of its width, else a clear error; why it must be
        filled again (made for a model the catalog had before re-encoding), else None."""
        comment = conn.execute("SELECT obj_description(%s::regclass, 'pg_class')",
                               (self._table,)).fetchone()[0]
        try:
            about = json.loads(comment or "{}")
        except ValueError:
            about = {}
        where = f"table {self.url.schema}.{self.url.table} ({self.url})"
        fix = f'drop it (DROP TABLE {self._table}) or choose another schema='
        if not isinstance(about, dict) or "lookalike" not in about:
            raise VectorStoreError(f"{where} was not made by lookalike; {fix}")
        if about.get("owner") != self.owner:
            raise VectorStoreError(
                f"{where} belongs to the catalog {about.get('owner')!r}, not {self.owner!r}; {fix}"
            )
        made = about.get("lookalike")
        if not isinstance(made, int) or made > FORMAT:
            raise VectorStoreError(
                f"{where} is of format {made!r}, this lookalike's {FORMAT}; {fix}")
        if about.get("dim") != self._dim:
            if about.get("generation") != self.source.model_generation():
                return f"it holds {about.get('dim')}-d vectors of the catalog's previous model"
            raise VectorStoreError(
                f"{where} holds {about.get('dim')}-d vectors but this catalog's model gives "
                f"{self._dim}-d (the catalog was made again with another model?); {fix}"
            )
        if made < 2:
            return "its filter fields are stored out of line (format 1), which slows filters"
        return None

    def _create(self, conn: Any) -> None:
        about = json.dumps({"lookalike": FORMAT, "owner": self.owner, "dim": self._dim,
                            "generation": self.source.model_generation()})
        conn.execute(f"DROP TABLE IF EXISTS {self._table}")
        conn.execute(
            f"CREATE TABLE {self._table} (id bigint PRIMARY KEY, vector vector({self._dim}) "
            "NOT NULL, category text, brand text, colour text, sizes text[] NOT NULL, "
            "price double precision, sustainability double precision, kids boolean, "
            "second_hand boolean, state text NOT NULL)")
        # in the row, never TOASTed: a TOASTed 512-d vector makes a whole-table scan cost ten
        # times what the planner thinks, and it then prefers that scan to the HNSW index
        conn.execute(f"ALTER TABLE {self._table} ALTER COLUMN vector SET STORAGE PLAIN")
        # a row with a 512-d vector is past PostgreSQL's TOAST threshold (2 kB), so by default
        # every text field would be moved out of line, however short: each filter would then
        # read 4-5 more pages (TOAST index and table) per field and row — 10x the pages of a
        # scan at 100k items. MAIN keeps them in the row unless it could not fit in a page.
        conn.execute(f"ALTER TABLE {self._table} " + ", ".join(
            f"ALTER COLUMN {c} SET STORAGE MAIN"
            for c in ("category", "brand", "colour", "sizes", "state")))
        conn.execute(f"COMMENT ON TABLE {self._table} IS {_literal(about)}")
        for column in ("category", "brand", "colour", "price"):
            conn.execute(f"CREATE INDEX ON {self._table} ({column})")
        conn.execute(f"CREATE INDEX ON {self._table} USING gin (sizes)")

    def _rebuild(self, conn: Any, reason: str | None) -> None:
        """(In a locked transaction.) A new table filled from every vector of the metadata
        store; the HNSW index is built afterwards (`_ensure_index`), faster than row by row."""
        if reason is not None:
            log.warning("pgvector table %s is out of step with %s (%s); filling it again",
                        self.url, self.folder, reason)
        seq = self.source.change_seq()  # before reading: nothing written meanwhile is missed
        self._create(conn)
        batch = max(256, min(_COPY_ROWS, (16 << 20) // (4 * self._dim + 200)))
        for ids, vectors, scalars in self.source.iter_vectors(batch):
            self._copy(conn, self._table, ids, vectors, scalars)
        # not CLUSTERed by category, though a category's exact scan would then read a third
        # of the pages (10.6 instead of 19.6 ms of CPU, 10,000 of 100,000 rows of 512-d): the
        # HNSW graph, built in the table's order, found 0.964 of the true top 10 instead of
        # 0.987 when built over rows in category order (300 queries)
        conn.execute(f"ANALYZE {self._table}")  # the planner's statistics, at once
        self._set_marker(conn, seq)
        self._trim = seq  # the change log is trimmed once the transaction commits
        self._seen = seq
        self._forget()

    def _ensure_index(self) -> None:
        """The HNSW index, when `index=hnsw` and missing (built with a bounded memory budget)."""
        if self.url.index != "hnsw":
            return
        name = f"{self.url.table[:50]}_hnsw"
        with self._lock:
            if not self._conn.execute("SELECT to_regclass(%s)",
                                      (f'"{self.url.schema}"."{name}"',)).fetchone()[0]:
                with self._conn.transaction():
                    self._conn.execute(f"SET LOCAL maintenance_work_mem = '{_BUILD_MEMORY}'")
                    self._conn.execute(
                        f'CREATE INDEX IF NOT EXISTS "{name}" ON {self._table} '
                        f"USING hnsw (vector vector_ip_ops) WITH ({_HNSW})")
            self._ensure_category_indexes()

    def _category_sql(self, code: str, where: str, breadth: int) -> str:
        """The `breadth` nearest items of the category `code` (through its own index), those
        `where` keeps, best first; parameters: the query vector, `where`'s, k."""
        assert _CODE.match(code), code
        return (f"WITH near AS MATERIALIZED (SELECT id, vector <#> %s::vector AS d, "
                f"{', '.join(_COLUMNS[2:])} FROM {self._table} WHERE category = '{code}' "
                f"ORDER BY d LIMIT {int(breadth)}) "
                f"SELECT id, d FROM near WHERE {where} ORDER BY d, id LIMIT %s")

    def _category_index(self, code: str) -> str:
        tag = hashlib.sha256(f"{self.url.schema}.{self.url.table}".encode()).hexdigest()[:10]
        return f"lookalike_{tag}_c_{code}"

    def _ensure_category_indexes(self) -> None:
        """(Locked.) An HNSW index of its own (partial: ``WHERE category = ...``) for every
        category of at least `category_index_min` items that has none yet: a query far from a
        category reaches that category's nearest items through it (see `_search`)."""
        import psycopg

        sizes: dict[str, int] = dict(self._conn.execute(
            f"SELECT category, count(*) FROM {self._table} WHERE category IS NOT NULL "
            "GROUP BY category").fetchall())
        have = {r[0] for r in self._conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            (self.url.schema, self.url.table)).fetchall()}
        prefix = self._category_index("")
        self._unchecked = 0
        for name in sorted(n for n in have if n.startswith(prefix)):
            # a category that shrank to under half the threshold (or a threshold raised)
            if sizes.get(name[len(prefix):], 0) < self.url.category_index_min / 2:
                self._conn.execute(f'DROP INDEX IF EXISTS "{self.url.schema}"."{name}"')
                have.discard(name)
        for code, size in sorted(sizes.items()):
            name = self._category_index(code)
            if size < self.url.category_index_min or name in have or not _CODE.match(code):
                continue
            try:
                with self._conn.transaction():
                    self._conn.execute(f"SET LOCAL maintenance_work_mem = '{_BUILD_MEMORY}'")
                    self._conn.execute(
                        f'CREATE INDEX IF NOT EXISTS "{name}" ON {self._table} USING hnsw '
                        f"(vector vector_ip_ops) WITH ({_HNSW}) WHERE category = '{code}'")
            except psycopg.errors.UniqueViolation:  # another process made it meanwhile
                pass
            have.add(name)
        self._indexed = frozenset(n[len(prefix):] for n in have if n.startswith(prefix))

    def _copy(self, conn: Any, table: str, ids: Ids, vectors: Matrix,
              fields: Sequence[Scalars]) -> None:
        with conn.cursor().copy(
            f"COPY {table} ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(copy_rows(ids, vectors, fields))

    # -- markers -------------------------------------------------------------------------

    def _marker(self, conn: Any) -> int:
        row = conn.execute(f"SELECT applied FROM {self._markers} WHERE name = %s",
                           (self.url.table,)).fetchone()
        return int(row[0]) if row else 0

    def _set_marker(self, conn: Any, applied: int) -> None:
        conn.execute(
            f"INSERT INTO {self._markers} (name, applied) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET applied = excluded.applied",
            (self.url.table, applied))

    def _forget(self) -> None:
        self._count = None
        self._ids = None

    # -- writes --------------------------------------------------------------------------

    def _apply(self, conn: Any) -> bool:
        """(In a locked transaction.) Write every change logged after the marker, and move it;
        True if there were any. The change log is trimmed once the transaction commits."""
        marker = self._marker(conn)
        seq = self.source.change_seq()
        if marker >= seq:
            self._seen = max(self._seen, seq)
            return False
        seqs, ids, _ = self.source.changes(marker)
        applied = int(seqs[-1]) if len(seqs) else seq
        changed = np.unique(ids)
        self._unchecked += len(changed)
        batch = max(256, min(_COPY_ROWS, (16 << 20) // (4 * self._dim + 200)))
        stage = False
        for a in range(0, len(changed), batch):
            chunk = changed[a : a + batch]
            found, vectors = self.source.vectors_of(chunk)
            gone = np.setdiff1d(chunk, found)
            if len(gone):
                conn.execute(f"DELETE FROM {self._table} WHERE id = ANY(%s::bigint[])",
                             (gone.tolist(),))
            if len(found):
                if not stage:
                    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS pgvector_stage "
                                 f"(LIKE {self._table}) ON COMMIT DELETE ROWS")
                    stage = True
                self._copy(conn, "pgvector_stage", found, vectors, self.source.scalars_of(found))
                update = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
                conn.execute(
                    f"INSERT INTO {self._table} SELECT * FROM pgvector_stage "
                    f"ON CONFLICT (id) DO UPDATE SET {update}")
                conn.execute("DELETE FROM pgvector_stage")
        self._set_marker(conn, applied)
        self._seen = max(self._seen, applied)
        self._forget()
        self._trim = applied
        return True

    def _write(self, n_ids: int, n_fields: int | None = None) -> None:
        if n_fields is not None and n_fields != n_ids:
            raise ValueError(f"{n_ids} ids but {n_fields} field records")
        self._trim = None

        def apply() -> None:
            with self._transaction() as conn:
                self._apply(conn)

        self._reconnecting(apply)
        if self._trim is not None:
            self.source.trim_changes(self._trim)
        if self.url.index == "hnsw" and self._unchecked >= self.url.category_index_min:
            with self._lock:  # a category may have grown past the threshold
                self._reconnecting(self._ensure_category_indexes)

    def upsert(
        self, ids: Ids, vectors: Matrix, fields: Sequence[Scalars], *, compact: bool = True
    ) -> None:
        """Write the items (and every other change logged since the marker) as the metadata
        store holds them: it has committed them already, and is read again under the lock so
        that a later change by another process is never overwritten with an older one."""
        ids = as_ids(ids)
        np.asarray(vectors, dtype=np.float32).reshape(len(ids), self._dim)
        self._write(len(ids), len(fields))

    def set_fields(self, ids: Ids, fields: Sequence[Scalars]) -> None:
        self._write(len(as_ids(ids)), len(fields))

    def remove(self, ids: Ids) -> None:
        self._write(len(as_ids(ids)))

    def sync(self) -> bool:
        """One read of the change log's position; when it moved, the marker, and a repair of
        writes left unfinished when no writer holds the lock."""
        seq = self.source.change_seq()
        if seq <= self._seen:
            return False
        self._forget()
        with self._lock:
            if self._reconnecting(lambda: self._marker(self._conn)) >= seq:
                self._seen = seq
                return True
            self._trim = None
            with self._transaction(wait=False) as conn:
                if conn is not None:  # nobody is writing: what is missing a crashed writer left
                    self._apply(conn)
            if self._trim is not None:
                self.source.trim_changes(self._trim)
        return True

    def drop(self) -> None:
        """Delete the table and its marker (the catalog's database is untouched)."""
        with self._transaction() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {self._table}")
            conn.execute(f"DELETE FROM {self._markers} WHERE name = %s", (self.url.table,))
        self._forget()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    # -- reads ---------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        if self._count is None:
            self._count = self._reconnecting(lambda: int(
                self._conn.execute(f"SELECT count(*) FROM {self._table}").fetchone()[0]))
        return self._count

    def ids(self) -> Ids:
        if self._ids is None:
            rows = self._reconnecting(lambda: self._conn.execute(
                f"SELECT id FROM {self._table} ORDER BY id").fetchall())
            self._ids = as_ids([r[0] for r in rows])
        return self._ids

    def vectors(self, ids: Ids) -> Matrix:
        """The rows of those `ids` that are stored, in the order asked — read from the
        metadata store, which holds the very vectors the table was given (and is local)."""
        return source_vectors(self.source, ids, self._dim)

    def search(
        self,
        queries: Matrix,
        k: int,
        filters: Filters | None = None,
        allowed: Ids | None = None,
        exclude: Ids | None = None,
    ) -> SearchResult:
        """Pre-filtered by PostgreSQL, ranked by inner product (ties: the smaller id first)."""
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self._dim)
        m, k = len(queries), max(0, int(k))
        scores = np.full((m, k), -np.inf, dtype=np.float32)
        ids = np.full((m, k), -1, dtype=np.int64)
        clause = filter_clause(filters, allowed, exclude)
        method = f"pgvector-{self.url.index}"
        filtered = clause is None or clause[0] != "TRUE"
        count = self._count if self._count is not None and not filtered else -1
        if clause is None or m == 0 or k == 0:
            return SearchResult(scores, ids, SearchPlan(method, 0 if clause is None else count))
        # the default (sold items left out) keeps most items: the unfiltered breadth serves it
        selective = allowed is not None or (filters is not None and bool(
            filters.model_dump(exclude_defaults=True, exclude={"include_sold"})))
        ef = min(MAX_EF, max(self.url.filtered_ef if selective else self.url.ef, k))
        categories = (sorted({text_code(c.lower()) for c in filters.category})
                      if filters is not None and filters.category else [])
        with self._lock:
            return self._reconnecting(lambda: self._search(
                queries, k, clause, ef, selective, scores, ids, count, categories))

    def _reconnecting(self, run: Callable[[], _T]) -> _T:
        """`run()`, again on a new connection if the server dropped this one (a restart)."""
        import psycopg

        with self._lock:
            try:
                return run()
            except psycopg.OperationalError:
                if not (self._conn.closed or self._conn.broken):
                    raise
            log.warning("pgvector: connection to %s lost; connecting again", self.url)
            self.close()
            self._connect()
            return run()

    def _search(self, queries: Matrix, k: int, clause: tuple[str, list[Any]], ef: int,
                selective: bool, scores: Matrix, ids: Ids, count: int,
                categories: list[str]) -> SearchResult:
        """Exact when the index is flat or the planner expects at most `exact_max` kept rows;
        else HNSW: unfiltered (but for sold items) with iterative scans, filtered as a probe
        of the `ef` nearest items that falls back to the filter's categories' own indexes
        (`_by_category`) or to scoring every kept row (see the module doc)."""
        where, params = clause
        method = f"pgvector-{self.url.index}"
        exact = self.url.index != "hnsw"
        if not exact and selective:
            kept = self._estimate(where, params)
            if kept <= self.url.exact_max:
                exact, method, count = True, "pgvector-exact-subset", kept
        # OFFSET 0: a subquery kept apart, so no vector index orders it: every kept row scored
        every = (f"SELECT id, d FROM (SELECT id, vector <#> %s::vector AS d FROM {self._table} "
                 f"WHERE {where} OFFSET 0) kept ORDER BY d, id LIMIT %s")
        nearest = (f"WITH hits AS MATERIALIZED (SELECT id, vector <#> %s::vector AS d "
                   f"FROM {self._table} WHERE {where} ORDER BY d LIMIT %s) "
                   "SELECT id, d FROM hits ORDER BY d, id")
        # the probe: the ef nearest items (no filter: always the graph walk, never a plan the
        # planner picks for the filter), then those the filter keeps
        fields = ", ".join(_COLUMNS[2:])
        probe = (f"WITH near AS MATERIALIZED (SELECT id, vector <#> %s::vector AS d, {fields} "
                 f"FROM {self._table} ORDER BY d LIMIT {int(ef)}) "
                 f"SELECT id, d FROM near WHERE {where} ORDER BY d, id LIMIT %s")
        fell_back = by_category = 0
        indexed = bool(categories) and bool(self._indexed)
        with self._conn.transaction():
            # short queries: compiling one (its cost is inflated by enable_sort = off in
            # `_by_category`) took 0.3-1 s, the query itself milliseconds
            self._conn.execute("SET LOCAL jit = off")
            if not exact:
                self._conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
                # a filtered probe looks at the ef nearest items only, no further
                scan = "off" if selective else "relaxed_order"
                self._conn.execute(f"SET LOCAL hnsw.iterative_scan = {scan}")
            for j, query in enumerate(queries):
                vector = _vector_text(query)
                sql = every if exact else probe if selective else nearest
                rows = self._conn.execute(sql, (vector, *params, k)).fetchall()
                if not exact and selective and len(rows) < k:
                    # fewer than k kept items among the ef nearest: the kept items are
                    # elsewhere in the vector space, where the graph walk finds them poorly
                    if indexed:
                        rows = self._by_category(vector, categories, where, params, k, ef)
                        by_category += 1
                    else:
                        rows = self._conn.execute(every, (vector, *params, k)).fetchall()
                        fell_back += 1
                if rows:
                    got = np.asarray(rows, dtype=np.float64)
                    ids[j, : len(rows)] = got[:, 0].astype(np.int64)
                    scores[j, : len(rows)] = -got[:, 1]
        if fell_back == len(queries):
            method = "pgvector-exact-subset"
        elif by_category == len(queries):
            method = "pgvector-hnsw-category"
        return SearchResult(scores, ids, SearchPlan(method, count))

    def _by_category(self, vector: str, codes: list[str], where: str, params: list[Any],
                     k: int, ef: int) -> list[Any]:
        """(In the search's transaction.) The top k of the kept items, category by category:
        for each category of the filter with an index of its own, the max(`ef` option, k)
        nearest items of that category (a walk of its own graph, from wherever the query is)
        and those the filter keeps — when k or more are kept they are that category's top k,
        as in the probe; the other categories' kept rows (small ones, or too few kept among
        the nearest) are all scored. The best k of these."""
        breadth = min(MAX_EF, max(self.url.ef, k))
        self._conn.execute(f"SET LOCAL hnsw.ef_search = {breadth}")
        # no sorting of the category's rows: the walk of its own graph, whatever the
        # planner's statistics say (they lag behind writes until the next ANALYZE)
        self._conn.execute("SET LOCAL enable_sort = off")
        found: list[Any] = []
        scan: list[str] = []
        for code in codes:
            if code not in self._indexed or not _CODE.match(code):
                scan.append(code)
                continue
            got = self._conn.execute(self._category_sql(code, where, breadth),
                                     (vector, *params, k)).fetchall()
            if len(got) < k:
                scan.append(code)
            else:
                found += got
        self._conn.execute("RESET enable_sort")
        if scan:
            found += self._conn.execute(
                f"SELECT id, d FROM (SELECT id, vector <#> %s::vector AS d FROM {self._table} "
                f"WHERE ({where}) AND category = ANY(%s) OFFSET 0) kept ORDER BY d, id LIMIT %s",
                (vector, *params, scan, k)).fetchall()
        self._conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
        return sorted(found, key=lambda r: (r[1], r[0]))[:k]

    def _estimate(self, where: str, params: list[Any]) -> int:
        """How many rows the planner expects `where` to keep (one EXPLAIN, nothing run)."""
        plan = self._conn.execute(f"EXPLAIN (FORMAT JSON) SELECT id FROM {self._table} "
                                  f"WHERE {where}", params).fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])

    def describe(self) -> dict[str, object]:
        return {"backend": "pgvector", "method": f"pgvector-{self.url.index}",
                "url": str(self.url), "items": len(self), "ef": self.url.ef,
                "filtered_ef": self.url.filtered_ef, "exact_max": self.url.exact_max,
                "category_index_min": self.url.category_index_min,
                "category_indexes": len(self._indexed)}


def _owner(folder: Path, database_url: str | None) -> str:
    from lookalike.index.naming import catalog_identity

    return catalog_identity(folder, database_url)[1]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
