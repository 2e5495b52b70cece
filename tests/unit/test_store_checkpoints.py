"""An SQLite catalog's write-ahead log is checkpointed by the store's own thread (its own
connection), not inside the writer's commits; closing the store stops that thread first, so
the store's connection, closing last, still folds the log into the file and removes it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from lookalike.catalog.schema import ItemIn
from lookalike.catalog.store import WAL_BACKSTOP_PAGES, CatalogStore, NewItem


def _items(n: int, first: int = 0) -> list[NewItem]:
    out = []
    for k in range(first, first + n):
        item = ItemIn.model_validate({"id": f"item-{k}", "image": f"{k}.jpg"})
        out.append(NewItem(f"item-{k}", item, item.image, f"{k:064x}"))
    return out


def _thread(store: CatalogStore) -> threading.Thread | None:
    """The store's own checkpoint thread (other stores' may come and go meanwhile)."""
    assert store._checkpoints is not None
    return store._checkpoints._thread


def test_the_log_is_checkpointed_in_the_background_and_removed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    store = CatalogStore(path)
    thread = None
    try:
        store.bind_model("fake", 256)
        with store.connection() as conn:
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_BACKSTOP_PAGES
        size = path.stat().st_size
        rng = np.random.default_rng(0)
        for batch in range(5):
            store.add(_items(64, 64 * batch), rng.standard_normal((64, 256), dtype=np.float32))
        thread = _thread(store)
        assert thread is not None and thread.is_alive()
        # the pages reach the database file itself (only a checkpoint writes there) while the
        # log stays far below the size at which a commit would checkpoint
        deadline = time.monotonic() + 10
        while path.stat().st_size < size + 64 * 5 * 1024 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= size + 64 * 5 * 1024
        assert store.count() == 320
    finally:
        store.close()
    assert thread is not None and not thread.is_alive()
    assert not path.with_name(path.name + "-wal").exists()
    reopened = CatalogStore(path)
    try:
        assert reopened.count() == 320
    finally:
        reopened.close()


def test_an_idle_checkpointer_ends_and_the_next_commit_starts_another(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    store = CatalogStore(path)
    threads = []
    try:
        assert store._checkpoints is not None
        store._checkpoints.idle = 0.2
        store.bind_model("fake", 8)
        store.add(_items(4), np.ones((4, 8), dtype=np.float32))
        first = _thread(store)
        assert first is not None
        threads.append(first)
        deadline = time.monotonic() + 10
        while _thread(store) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _thread(store) is None  # idle: it ended
        first.join(5)
        assert not first.is_alive()
        size = path.stat().st_size
        store.add(_items(64, 4), np.ones((64, 8), dtype=np.float32))
        second = _thread(store)  # started by the commit itself
        assert second is not None and second is not first
        threads.append(second)
        while path.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > size  # checkpointed by the new thread
    finally:
        store.close()
    assert not any(t.is_alive() for t in threads)
    assert not path.with_name(path.name + "-wal").exists()
