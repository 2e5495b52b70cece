"""Congruence of the vector-store backends (qdrant-client's style): the same items, filters and
queries on the embedded store (exact, and its inverted lists), on a real Milvus server (FLAT,
and HNSW over sealed, indexed segments) and on a real PostgreSQL with pgvector (no vector index,
and HNSW searched with hnsw.iterative_scan) give the top k of a brute-force reference over the
metadata store — exactly on exact paths, recall@10 ≥ 0.95 on approximate ones — including
filters keeping 1 % of the items, unknown values, writes made by another process (and a write
it never finished), and a restart (of the Milvus server: same data folder;
test_milvus_restart.py; of PostgreSQL: test_pgvector.py)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lookalike import Catalog, Filters
from lookalike.evaluation.synthetic import SyntheticCatalog
from lookalike.index import SearchResult
from lookalike.servers import MilvusServer, PostgresServer
from vector_worlds import DIM, fill, open_catalog, recall, reference, write_elsewhere

N = 4000
K = 10
BACKENDS = ["embedded", "embedded-ivf", "milvus-flat", "milvus-hnsw", "pgvector-flat",
            "pgvector-hnsw"]
EXACT_METHODS = {"exact", "exact-subset", "milvus-flat", "pgvector-flat",
                 "pgvector-exact-subset"}
FILTERS = [
    None,  # every item, sold ones too
    Filters(),  # the default: sold items left out
    Filters(include_sold=True),
    Filters(state=["reserved"]),  # ~20 %
    Filters(category=["dress"], state=["reserved"]),  # ~1 %
    Filters(category=["sneakers"], state=["sold"], second_hand=True),  # ~0.4 %
    Filters(brand=[" BRAND-000", "Brand 001"], state=["available", "sold"]),  # normalised names
    Filters(category=["dress", "jeans"]),  # ~10 %
    Filters(second_hand=True),  # ~40 %
    Filters(price_min=20, price_max=40),  # a price range, ~28 %
    Filters(size=["m", "40"]),  # offered in any of these sizes
    Filters(colour=["black", "RED"]),  # given or predicted colour; unknown colours never kept
    Filters(min_sustainability=2.5),  # half the items have no score: never kept
    Filters(category=["dress"], kids=True),  # ~0.8 %
    Filters(category=["sneakers"], colour=["black", "white"]),  # ~0.8 %
    Filters(category=["coat"], min_sustainability=4),  # ~0.5 %
    Filters(price_max=15, kids=False, second_hand=False),
    Filters(brand=["brand-000", "brand-001"], second_hand=True),
    Filters(category=["no-such-category"]),  # keeps nothing
]


def settings_of(backend: str, milvus: MilvusServer | None,
                postgres: PostgresServer | None = None) -> dict[str, object]:
    if backend == "embedded":
        return {}
    if backend == "embedded-ivf":  # inverted lists from 1000 items, exact below 20 kept
        return {"exact_max_items": 1000, "filter_exact_max": 20, "ivf_probe": 24}
    if backend.startswith("pgvector"):  # a table on the session's PostgreSQL server
        assert postgres is not None  # HNSW with iterative scans from 20 kept items, else exact
        return {"vector_store": postgres.url + ("?index=flat" if backend.endswith("flat")
                                                else "?exact_max=20&filtered_ef=40")}
    assert milvus is not None
    return {"vector_store": milvus.uri + ("?index=flat" if backend == "milvus-flat" else "")}


@dataclass
class World:
    backend: str
    catalog: Catalog
    settings: dict[str, object]

    def close(self) -> None:
        index = self.catalog.index
        if self.backend.startswith(("milvus", "pgvector")):
            index.drop()  # type: ignore[attr-defined]
        self.catalog.close()


def open_world(backend: str, folder: Path, request: pytest.FixtureRequest, n: int,
               states: bool = False) -> World:
    milvus = request.getfixturevalue("milvus_server") if backend.startswith("milvus") else None
    pg = request.getfixturevalue("pgvector_server") if backend.startswith("pgvector") else None
    settings = settings_of(backend, milvus, pg)
    catalog = open_catalog(folder, **settings)
    fill(catalog, n)
    if states:
        set_states(catalog)
    if backend == "milvus-hnsw":
        catalog.index.seal()  # type: ignore[attr-defined]  # searched through HNSW, not brute force
    return World(backend, catalog, settings)


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    w = open_world(request.param, tmp_path_factory.mktemp(request.param), request, N,
                   states=True)
    yield w
    w.close()


def set_states(catalog: Catalog) -> None:
    """A fifth of the items sold and a fifth reserved, written straight to the metadata store in
    one statement (as a bulk import would), then picked up by the vector store at refresh."""
    with catalog.store.connection() as conn:
        conn.execute("UPDATE items SET state = CASE rowid % 5 WHEN 0 THEN 'sold' "
                     "ELSE 'reserved' END WHERE rowid % 5 IN (0, 1)")
    catalog.refresh()
    states = [s.state for s in catalog.store.scalars_of(catalog.index.ids())]
    assert states.count("sold") == states.count("reserved") == len(states) // 5


def assert_congruent(w: World, queries: np.ndarray, filters: Filters | None,
                     got: SearchResult, exclude: tuple[int, ...] = ()) -> str:
    """`got` agrees with the reference: the exact top k on an exact path, recall@k ≥ 0.95
    otherwise, never an item the filter does not keep, padding where fewer qualify."""
    want_s, want_i = reference(w.catalog, queries, K, filters, exclude)
    width = want_i.shape[1]
    assert (got.ids[:, width:] == -1).all() and np.isneginf(got.scores[:, width:]).all()
    if got.plan.method in EXACT_METHODS:
        np.testing.assert_array_equal(got.ids[:, :width], want_i, err_msg=str(filters))
        np.testing.assert_allclose(got.scores[:, :width], want_s, atol=1e-5)
    else:
        assert recall(want_i, got.ids[:, :width]) >= 0.95, (w.backend, filters)
        if filters is not None:
            kept = set(w.catalog.store.filter_rowids(filters).tolist())
            assert set(got.ids[got.ids >= 0].tolist()) <= kept, filters
        assert not set(got.ids.ravel().tolist()) & set(exclude)
    return got.plan.method


def test_same_top_k_for_the_same_items_filters_and_queries(world: World) -> None:
    queries = SyntheticCatalog(DIM).queries(30)
    methods = set()
    for filters in FILTERS:
        methods.add(assert_congruent(world, queries, filters,
                                     world.catalog.index.search(queries, K, filters)))
    approximate = {"embedded-ivf": "ivf", "milvus-hnsw": "milvus-hnsw",
                   "pgvector-hnsw": "pgvector-hnsw"}.get(world.backend)
    if approximate is not None:
        assert approximate in methods  # the approximate path really ran
    assert len(world.catalog) == N == len(world.catalog.index.ids())


def test_filters_the_store_does_not_hold_reach_it_as_allowed_ids(world: World) -> None:
    """Currency is not a field of `Scalars`: the catalog resolves it in the metadata store and
    the backend searches the ids it keeps (with its own fields for the rest)."""
    queries = SyntheticCatalog(DIM).queries(10)
    for filters in (Filters(currency=["EUR"], category=["dress"], state=["reserved"]),
                    Filters(currency=["EUR"])):
        got = world.catalog.search_vectors(queries, K, filters)
        _, want_i = reference(world.catalog, queries, K, filters)
        assert world.catalog.last_plan is not None
        for row, truth in zip(got, want_i.tolist(), strict=True):
            ids = [i for i, _ in row]
            if world.catalog.last_plan.method in EXACT_METHODS:
                assert ids == truth, filters
            else:
                assert recall(np.asarray([truth]), np.asarray([ids])) >= 0.9, filters


def test_more_like_this_leaves_the_item_out(world: World) -> None:
    ids = world.catalog.index.ids()
    for rowid in ids[[5, 500, 3000]].tolist():
        vector = world.catalog.index.vectors(np.asarray([rowid]))
        for filters in (None, Filters(second_hand=True)):
            got = world.catalog.index.search(vector, K, filters, exclude=np.asarray([rowid]))
            assert_congruent(world, vector, filters, got, exclude=(rowid,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_writes_by_another_process_are_seen_after_sync(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    w = open_world(backend, tmp_path / "cat", request, 1500)
    try:
        cat = w.catalog
        child = multiprocessing.get_context("spawn").Process(
            target=write_elsewhere, args=(str(tmp_path / "cat"), w.settings, 5))
        child.start()
        child.join(120)
        assert child.exitcode == 0
        assert cat.refresh() and not cat.refresh()
        assert len(cat) == len(cat.index.ids()) == 1500 + 35 - 10
        added, unfinished = (SyntheticCatalog(DIM, seed=5).items(a, b) for a, b in
                             ((0, 30), (30, 35)))  # as the other process made them
        probes = np.concatenate([added[1][:2], unfinished[1][[1, 4]]])
        found = cat.search_vectors(probes, 1)
        assert [cat.store.get_many([h[0][0]])[0].id for h in found] == [
            added[0][0].id, added[0][1].id, unfinished[0][1].id, unfinished[0][4].id]
        everything = cat.index.search(SyntheticCatalog(DIM).queries(40), 40)
        assert not set(everything.ids.ravel().tolist()) & set(range(1, 11))  # syn-0-0..9
        queries = SyntheticCatalog(DIM).queries(20)
        for filters in (None, Filters(category=["unique-kind"]), Filters(price_max=0.6),
                        Filters(category=["dress"], kids=True), Filters(second_hand=True)):
            assert_congruent(w, queries, filters, cat.index.search(queries, K, filters))
        only = cat.search_vectors(queries[:1], 5, Filters(category=["unique-kind"]))[0]
        assert [cat.store.get_many([r])[0].id for r, _ in only] == ["syn-0-20"]
    finally:
        w.close()
