"""Re-encode a catalog with another model, in place, keeping every account, swipe and like.

    report = reembed(catalog, "efficientnet-lite0-int8", progress=print)

Every item's photo (its `image_path`, checked against the hash it was ingested with) is encoded
with the new model into a staging table (`reembed_vectors`), in transactions of `commit_items`,
so a run that is killed resumes where it stopped (the staged vectors of the same model are
kept; another model starts over). Nothing a search sees changes until the end: then one
transaction replaces every vector (and its sketch, `lookalike.catalog.sketch`), records the new
model and width, drops the attribute probes (trained on the old vectors) and rebuilds each
user's preference vector from their swipes in the new model's space (the update rule of
`lookalike.recommend.feed`). Users, sessions, swipes, likes and shown items are kept by item
id and stay as they are.

Items added meanwhile (another process, with the old model) are encoded before the switch; an
item whose photo is missing, unreadable or not the ingested one stops the switch (the report
names them; fix or delete them and run again: what was encoded is kept). Serving processes
follow the switch at their next request (`Catalog.refresh`); an ingest still writing the old
model's vectors is refused (`CatalogMismatchError`) and must be run again.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from lookalike.catalog.database import Connection
from lookalike.catalog.engines import engine_for
from lookalike.catalog.imagefiles import image_file
from lookalike.catalog.ingest import EncodeEngine, encode_stored
from lookalike.catalog.sketch import vector_sketches
from lookalike.encoders import Encoder
from lookalike.encoders import create as create_encoder
from lookalike.errors import ImageLoadError, LookalikeError

if TYPE_CHECKING:
    from lookalike.catalog.catalog import Catalog

__all__ = ["ReembedProgress", "ReembedReport", "reembed"]

STAGING = """
CREATE TABLE IF NOT EXISTS reembed_vectors (
    item_rowid INTEGER PRIMARY KEY REFERENCES items(rowid) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    sketch BLOB
);
"""
#: Photos handed to the encode engine at once (a Ray run has a fixed cost per call).
WINDOW = 4096
#: Rounds of "encode what is left, then switch" before giving up on a catalog that gains
#: items faster than they are encoded.
MAX_ROUNDS = 10
_READ = 1024  # items read from the database at once
_USERS = 500  # users whose preferences are rebuilt at once


@dataclass(frozen=True)
class ReembedProgress:
    done: int
    total: int
    failed: int
    rate: float  # items encoded per second in this run


@dataclass
class ReembedReport:
    """What `reembed` did. `switched`: the catalog now holds the new model's vectors."""

    model: str
    dim: int
    previous_model: str | None
    previous_dim: int | None
    items: int = 0
    encoded: int = 0  # in this run
    resumed: int = 0  # encoded by an earlier, interrupted run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item id, reason)
    preferences: int = 0  # users whose preference vector was rebuilt
    switched: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model, "dim": self.dim, "previous_model": self.previous_model,
            "previous_dim": self.previous_dim, "items": self.items, "encoded": self.encoded,
            "resumed": self.resumed, "failed": [{"id": i, "reason": r} for i, r in self.failed],
            "preferences": self.preferences, "switched": self.switched,
            "seconds": round(self.seconds, 3),
        }


def reembed(
    catalog: Catalog,
    model: str | Encoder,
    *,
    progress: Callable[[ReembedProgress], None] | None = None,
    engine: EncodeEngine | None = None,
) -> ReembedReport:
    """Re-encode every item of `catalog` with `model` (a name or an encoder) and switch the
    catalog to it atomically; see the module notes. The photos are decoded and encoded by
    `engine`, by default the one the settings name (`Settings.engine`: this machine, or a Ray
    cluster). Returns what was done; `switched` is False when some photos could not be
    encoded (`failed`)."""
    started = time.perf_counter()
    settings, store = catalog.settings, catalog.store
    encoder = create_encoder(model, settings) if isinstance(model, str) else model
    catalog.refresh()
    report = ReembedReport(encoder.name, encoder.dim, store.model_name, store.dim)
    if report.previous_model == encoder.name and report.previous_dim == encoder.dim:
        raise LookalikeError(
            f"{store.location}: its vectors are already those of {encoder.name!r}"
        )
    with store.transaction() as conn:
        conn.execute(STAGING)  # one statement: executescript would end the transaction
        if "sketch" not in store.dialect.columns(conn, "reembed_vectors"):  # staged by older code
            conn.execute("ALTER TABLE reembed_vectors ADD COLUMN sketch BLOB")
        staged_for = _meta(conn, "reembed_model")
        if staged_for != f"{encoder.name}:{encoder.dim}":  # another model's leftovers
            conn.execute("DELETE FROM reembed_vectors")
            _set_meta(conn, "reembed_model", f"{encoder.name}:{encoder.dim}")
        report.resumed = _count(conn, "SELECT count(*) FROM reembed_vectors")
    failed: dict[int, tuple[str, str]] = {}
    engine = engine or engine_for(settings)
    for _ in range(MAX_ROUNDS):
        _encode_missing(catalog, encoder, engine, report, failed, started, progress)
        if failed:
            break
        if _switch(catalog, encoder, report):
            break
    else:
        raise LookalikeError(
            f"{store.location}: items kept arriving faster than they were encoded; run "
            "`lookalike reembed` again when the catalog is quieter (the work done is kept)"
        )
    report.failed = sorted(failed.values())
    report.items = store.count()
    if report.switched:
        catalog.reload()  # (the store's width too: read before the sketches are made)
        store.sketch_vectors()
    report.seconds = time.perf_counter() - started
    return report


def _meta(conn: Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value),
    )


def _count(conn: Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


_PENDING = (
    "SELECT e.item_rowid, i.id, i.image_path, i.image_hash FROM embeddings e "
    "JOIN items i ON i.rowid = e.item_rowid WHERE e.item_rowid > ? AND NOT EXISTS "
    "(SELECT 1 FROM reembed_vectors r WHERE r.item_rowid = e.item_rowid) "
    "ORDER BY e.item_rowid LIMIT ?"
)


def _pending(catalog: Catalog, skip: dict[int, tuple[str, str]]) -> Iterator[tuple[int, str, str,
                                                                                   str]]:
    """(rowid, id, image path, image hash) of every item with a vector not yet staged."""
    after = -1
    while True:
        with catalog.store.connection() as conn:
            rows = conn.execute(_PENDING, (after, _READ)).fetchall()
        if not rows:
            return
        for r in rows:
            if int(r[0]) not in skip:
                yield int(r[0]), str(r[1]), str(r[2]), str(r[3])
        after = int(rows[-1][0])


def _encode_missing(
    catalog: Catalog, encoder: Encoder, engine: EncodeEngine, report: ReembedReport,
    failed: dict[int, tuple[str, str]], started: float,
    progress: Callable[[ReembedProgress], None] | None,
) -> None:
    """Encode every item not yet staged into the staging table, `commit_every` at a time:
    `WINDOW` photos at a time handed to `engine` (`lookalike.catalog.ingest.encode_stored`:
    a photo gone, unreadable or not the bytes ingested is a failure, never an error)."""
    settings, store = catalog.settings, catalog.store
    folder = Path(settings.catalog_dir)
    with store.connection() as conn:
        staged = _count(conn, "SELECT count(*) FROM reembed_vectors")
        total = _count(conn, "SELECT count(*) FROM embeddings")
    encoded = 0
    waiting: list[tuple[int, NDArray[np.float32]]] = []

    def commit() -> None:
        if not waiting:
            return
        with store.transaction() as conn:
            alive = {int(r[0]) for r in conn.execute(
                "SELECT rowid FROM items WHERE rowid IN "
                f"({','.join('?' * len(waiting))})", [r for r, _ in waiting])}
            kept = [(r, v) for r, v in waiting if r in alive]
            sketches = vector_sketches(np.asarray([v for _, v in kept], dtype=np.float32)
                                       .reshape(len(kept), -1))
            rows = [(r, v.astype(np.float32).tobytes(), s.tobytes())
                    for (r, v), s in zip(kept, sketches, strict=True)]
            if rows:
                conn.executemany(
                    "INSERT INTO reembed_vectors (item_rowid, vector, sketch) VALUES (?, ?, ?) "
                    "ON CONFLICT (item_rowid) DO UPDATE SET vector = excluded.vector, "
                    "sketch = excluded.sketch", rows,
                )
        waiting.clear()

    pending = _pending(catalog, failed)
    while window := list(itertools.islice(pending, WINDOW)):
        names: dict[int, str] = {}
        photos: list[tuple[int, str, str]] = []
        for rowid, item_id, path, digest in window:
            names[rowid] = item_id
            try:  # relative paths live in the catalog folder; nothing outside it is read
                photos.append((rowid, str(image_file(folder, path)), digest))
            except ImageLoadError as exc:
                failed[rowid] = (item_id, exc.reason)
        for batch in encode_stored(engine, encoder, photos, catalog.limits):
            for rowid, reason in batch.failures:
                failed[rowid] = (names[rowid], reason)
            waiting.extend(zip(batch.rowids, batch.vectors, strict=True))
            encoded += len(batch.rowids)
            report.encoded += len(batch.rowids)
            if len(waiting) >= settings.commit_every:
                commit()
            if progress is not None:
                elapsed = max(time.perf_counter() - started, 1e-9)
                done = staged + encoded + len(failed)
                progress(ReembedProgress(done, max(total, done), len(failed),
                                         report.encoded / elapsed))
    commit()


def _switch(catalog: Catalog, encoder: Encoder, report: ReembedReport) -> bool:
    """In one transaction: the staged vectors replace the old ones, the model and width are
    recorded, probes dropped, preferences rebuilt. False (nothing changed) when items without
    a staged vector arrived meanwhile."""
    store = catalog.store
    with store.transaction() as conn:
        if _count(conn, "SELECT count(*) FROM embeddings e WHERE NOT EXISTS (SELECT 1 FROM "
                  "reembed_vectors r WHERE r.item_rowid = e.item_rowid)"):
            return False
        conn.execute(
            "UPDATE embeddings SET vector = r.vector FROM reembed_vectors r "
            "WHERE r.item_rowid = embeddings.item_rowid"
        )
        # the vectors' sketches (the repost check's screen) with them; one staged by older
        # code has none and is made after the switch (`CatalogStore.sketch_vectors`)
        conn.execute("UPDATE items SET sketch = r.sketch FROM reembed_vectors r "
                     "WHERE r.item_rowid = items.rowid")
        _set_meta(conn, "model", encoder.name)
        _set_meta(conn, "dim", str(encoder.dim))
        generation = int(_meta(conn, "model_generation") or 0) + 1
        _set_meta(conn, "model_generation", str(generation))
        if store.dialect.columns(conn, "attribute_probes"):
            conn.execute("DELETE FROM attribute_probes")
        if store.dialect.columns(conn, "preferences"):
            report.preferences = _rebuild_preferences(conn, catalog)
        conn.execute("DELETE FROM reembed_vectors")
        conn.execute("DELETE FROM meta WHERE key = 'reembed_model'")
    report.switched = True
    return True


def _rebuild_preferences(conn: Connection, catalog: Catalog) -> int:
    """Each user's preference vector replayed from their swipes, oldest first, over the new
    vectors (a user with no like left keeps none), `_USERS` users at a time. Inside the
    switch's transaction."""
    from lookalike.recommend.feed import update_preference

    alpha, beta = catalog.settings.swipe_alpha, catalog.settings.swipe_beta
    at = datetime.now(UTC).isoformat()
    conn.execute("DELETE FROM preferences")
    rebuilt, after = 0, -1
    while True:
        users = [int(r[0]) for r in conn.execute(
            "SELECT DISTINCT user_id FROM swipes WHERE user_id > ? ORDER BY user_id LIMIT ?",
            (after, _USERS))]
        if not users:
            return rebuilt
        after = users[-1]
        swipes = conn.execute(
            "SELECT s.user_id, s.liked, e.vector FROM swipes s JOIN items i ON i.id = s.item_id "
            "JOIN embeddings e ON e.item_rowid = i.rowid WHERE s.user_id BETWEEN ? AND ? "
            "ORDER BY s.user_id, s.seq", (users[0], users[-1]),
        ).fetchall()
        preferences: dict[int, NDArray[np.float32]] = {}
        for user_id, liked, blob in swipes:
            old = preferences.get(int(user_id))
            if old is None and not liked:
                continue  # the vector starts at the first like (as in Feed.swipe)
            x = np.frombuffer(blob, dtype=np.float32)
            preferences[int(user_id)] = update_preference(old, x, bool(liked), alpha, beta)
        if preferences:
            conn.executemany(
                "INSERT INTO preferences (user_id, vector, updated_at) VALUES (?, ?, ?)",
                [(u, v.astype(np.float32).tobytes(), at) for u, v in preferences.items()],
            )
        rebuilt += len(preferences)
