"""The vectors' sketches in the metadata database (SQLite and PostgreSQL): written with every
vector, taken in by the repost finder with the hashes, and made once for a catalog from before
them (whose items are never screened out meanwhile)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from databases import store_for
from lookalike.catalog import CatalogStore, ItemIn, NewItem
from lookalike.catalog.duplicates import DuplicateFinder
from lookalike.catalog.sketch import vector_sketches

DIM = 256
N = 60
BASE = 0x0F1E_2D3C_4B5A_6978


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def at_cosine(v: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    u = rng.standard_normal(DIM)
    u -= (u @ v) * v
    u /= np.linalg.norm(u)
    return (cos * v + math.sqrt(1 - cos * cos) * u).astype(np.float32)


def flip(h: int, bits: int) -> int:
    return h ^ ((1 << bits) - 1)  # the lowest `bits` bits


def catalog_store(folder: Path, database_url: str | None, vectors: np.ndarray) -> CatalogStore:
    """N items, all with the hash BASE, with these vectors."""
    store = store_for(folder, database_url)
    store.bind_model("fake", DIM)
    store.add(
        [
            NewItem(f"item-{i}", ItemIn(image=f"{i}.jpg"), f"/x/{i}.jpg", f"h{i}", phash=BASE)
            for i in range(len(vectors))
        ],
        vectors,
    )
    return store


def counting(store: CatalogStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rowids whose vectors the store is asked for."""
    read: list[int] = []
    real = store.vectors_of
    monkeypatch.setattr(
        store, "vectors_of", lambda rowids: (read.extend(rowids.tolist()), real(rowids))[1]
    )
    return read


def assert_finds_edge_reposts_and_screens_others(
    store: CatalogStore, vectors: np.ndarray, read: list[int], screened: bool
) -> None:
    """Reposts of items 0-9 at the rule's edge (0-14 bits, cosine just above the needed) are
    found; a random photo's 60 candidates are not read when `screened`, all read if not."""
    rng = np.random.default_rng(4)
    finder = DuplicateFinder(max_candidates=100)
    finder.sync(store)
    for i, bits in enumerate(range(0, 15, 3)):
        vector = at_cosine(vectors[i], finder.needed_cos(bits) + 2e-4, rng)
        match = finder.find((flip(BASE, bits), 0), vector, store)
        assert match is not None and match.original_id == f"item-{i}", (i, bits)
        assert store.rowid_of(f"item-{i}") in read
    read.clear()
    stranger = unit_rows(rng, 1)[0]
    assert finder.find((flip(BASE, 2), 0), stranger, store) is None
    if screened:
        assert read == [] and finder.screened >= N
    else:
        assert len(read) == N


def test_sketches_are_written_with_the_vectors_and_screen_reads(
    tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    vectors = unit_rows(rng, N)
    store = catalog_store(tmp_path / "cat", database_url, vectors)
    try:
        rowids, hashes, sketches, has = store.repost_keys_after(0)
        assert len(rowids) == N and has.all() and (hashes == np.uint64(BASE)).all()
        assert np.array_equal(sketches, vector_sketches(vectors))
        read = counting(store, monkeypatch)
        assert_finds_edge_reposts_and_screens_others(store, vectors, read, screened=True)
        # a new photo for an item: its new vector's sketch
        other = unit_rows(rng, 1)
        store.replace_image(
            "item-5", NewItem("item-5", ItemIn(image="n.jpg"), "/x/n.jpg", "hn", phash=BASE), other
        )
        rowid = store.rowid_of("item-5")
        _, _, sketches, has = store.repost_keys_after(rowid - 1)
        assert has[0] and np.array_equal(sketches[0], vector_sketches(other)[0])
        assert store.sketch_vectors() == 0  # none missing
    finally:
        store.close()


def test_an_older_catalog_gets_sketches_and_still_finds_reposts(
    tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(2)
    vectors = unit_rows(rng, N)
    folder = tmp_path / "cat"
    store = catalog_store(folder, database_url, vectors)
    with store.transaction() as conn:  # as a catalog made before the sketches
        conn.execute("DROP INDEX items_unsketched")
        conn.execute("ALTER TABLE items DROP COLUMN sketch")
        store.dialect.set_schema_version(conn, 2)
    store.close()
    store = store_for(folder, database_url)  # migrated: the column, no sketches yet
    try:
        rowids, _, _, has = store.repost_keys_after(0)
        assert len(rowids) == N and not has.any()
        read = counting(store, monkeypatch)
        # meanwhile nothing is screened out: reposts found, every candidate read
        assert_finds_edge_reposts_and_screens_others(store, vectors, read, screened=False)
        assert store.sketch_vectors(chunk=16) == N
        rowids, _, sketches, has = store.repost_keys_after(0)
        assert has.all() and np.array_equal(sketches, vector_sketches(vectors))
        read.clear()
        assert_finds_edge_reposts_and_screens_others(store, vectors, read, screened=True)
        assert store.sketch_vectors() == 0
    finally:
        store.close()
