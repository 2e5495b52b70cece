"""The congruence suite's restart (`test_congruence.py`): the same answers after the catalog is
opened again (embedded store) and after the Milvus server is stopped and started again on the
same data folder (on new ports, since the packaged server picks free ones).

The session's own server is the one restarted, in a module of its own: no other module's
catalogs are open on it meanwhile, and later tests read its new address from the fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_congruence import K, World, assert_congruent

from lookalike import Filters
from lookalike.evaluation.synthetic import SyntheticCatalog
from lookalike.servers import MilvusServer
from vector_worlds import DIM, fill, open_catalog


def test_the_same_answers_after_a_restart(tmp_path: Path, milvus_server: MilvusServer) -> None:
    server = milvus_server
    queries = SyntheticCatalog(DIM).queries(20)
    worlds: dict[str, World] = {}
    before = {}
    try:
        for backend in ("embedded", "milvus-hnsw"):
            settings = {"vector_store": server.uri} if backend.startswith("milvus") else {}
            cat = open_catalog(tmp_path / backend, **settings)
            fill(cat, 1200)
            cat.delete_item("syn-0-3")
            worlds[backend] = World(backend, cat, settings)
            before[backend] = cat.index.search(queries, K, Filters(second_hand=True))
            cat.close()
        server.stop()
        server.start()
        for backend, w in worlds.items():
            settings = {"vector_store": server.uri} if backend.startswith("milvus") else {}
            w.catalog = open_catalog(tmp_path / backend, **settings)
            after = w.catalog.index.search(queries, K, Filters(second_hand=True))
            np.testing.assert_array_equal(after.ids, before[backend].ids)
            assert_congruent(w, queries, Filters(second_hand=True), after)
            fill(w.catalog, 1250, start=1200)  # and it takes writes again
            w.catalog.delete_item("syn-0-4")
            assert len(w.catalog) == 1250 - 2
            assert_congruent(w, queries, None, w.catalog.index.search(queries, K))
        for w in worlds.values():
            w.close()
    finally:
        if server.pid is None:  # a failed restart: the session's other tests still need it
            server.start()
