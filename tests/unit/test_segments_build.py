"""A compaction's build (`build_base_from`: the rows copied from the mapped files of the current
generation, their stored int8 codes and lists reused, written once in list order) writes the
very files the build from scratch does (`build_base`: the same rows in the same order written to
temporary files as they come, quantised again, assigned to their nearest centres, then copied
list by list): every file byte for byte, for a fresh clustering (k-means on a sample), reused
centres and one list. Real catalog files in tmp_path, synthetic vectors and fields."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lookalike.evaluation.synthetic import SyntheticCatalog
from lookalike.index.columns import FieldColumns
from lookalike.index.embedded import EmbeddedStore
from lookalike.index.segments import (
    Batch,
    View,
    build_base,
    build_base_from,
    sources_of_view,
)
from lookalike.index.vector_store import Scalars
from vector_worlds import open_catalog

DIM = 48
N = 3000


def _batches(view: View, extra: Batch, batch: int) -> Iterator[Batch]:
    """The live rows of `view` (base, then tail) and then `extra`'s, as a rebuild reads them."""
    for rows, first in ((view.base, 0), (view.tail, view.n_base)):
        live = np.arange(len(rows), dtype=np.int64)
        if view.alive is not None:
            live = live[view.alive[first : first + len(rows)]]
        for a in range(0, len(live), batch):
            at = live[a : a + batch]
            yield Batch(np.asarray(rows.ids[at]), np.asarray(rows.vectors[at]),
                        rows.columns.take(at))
    yield extra


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmbeddedStore, View, Batch]:
    """An inverted-list catalog with a tail and dead rows, and new rows to fold in."""
    folder = tmp_path_factory.mktemp("segments")
    cat = open_catalog(folder, DIM, exact_max_items=1000, filter_exact_max=50)
    synthetic = SyntheticCatalog(DIM, 4)
    for a in range(0, N, 1000):
        cat.add_items(*synthetic.items(a, a + 1000))
    cat.add_items(*synthetic.items(N, N + 250))  # a tail
    for i in range(0, N, 17):
        cat.delete_item(f"syn-4-{i}")
    store = cat.index
    assert isinstance(store, EmbeddedStore)
    view = store._view
    assert view is not None and view.manifest.lists > 1 and len(view.tail) and view.dead
    vectors = SyntheticCatalog(DIM, 9).vectors(300, 1)[0].astype(np.float32)
    vocab = view.manifest.vocab.copy()
    scalars = [Scalars(category=f"new-{i % 5}", sizes=("s", "m", "xl")[: i % 4],
                       price=float(i)) for i in range(len(vectors))]
    extra = Batch(np.arange(10**6, 10**6 + len(vectors), dtype=np.int64), vectors,
                  FieldColumns.encode(scalars, vocab))
    return store, view, extra


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("g7.base.*"))}


@pytest.mark.parametrize("case", ["fresh", "reuse", "one-list"])
def test_compaction_build_writes_what_a_build_from_scratch_writes(
    world: tuple[EmbeddedStore, View, Batch], tmp_path: Path, case: str
) -> None:
    store, view, extra = world
    settings = store.settings
    centroids = None
    if case == "fresh":  # 20 lists: k-means trains on a sample of 1,280 of the rows
        settings = settings.model_copy(update={"ivf_lists": 20})
    elif case == "reuse":
        centroids = view.centroids
    else:
        settings = settings.model_copy(update={"exact_max_items": 10 * N})
    scratch, copied = tmp_path / "scratch", tmp_path / "copied"
    scratch.mkdir()
    copied.mkdir()
    want = build_base(scratch, 7, DIM, _batches(view, extra, 700), settings, centroids)
    got = build_base_from(copied, 7, DIM, sources_of_view(store.folder, view, extra), settings,
                          centroids)
    expected_lists = {"fresh": 20, "reuse": view.manifest.lists, "one-list": 1}[case]
    assert got[1] == want[1] == expected_lists
    assert got[0] == want[0]  # every file's rows and CRC-32
    files = _files(copied)
    assert files.keys() == _files(scratch).keys() and len(files) > 15
    for name, data in _files(scratch).items():
        assert files[name] == data, name
    assert got[0]["ids"].rows == view.live + len(extra.ids)
    if centroids is not None:
        assert got[2] is centroids
    assert not [p for p in copied.iterdir() if p.is_dir()], "the build folder is removed"


def test_a_compaction_with_dead_rows_only_keeps_the_live_ones(
    world: tuple[EmbeddedStore, View, Batch], tmp_path: Path
) -> None:
    store, view, _ = world
    alive = np.ones(view.slots, dtype=np.bool_) if view.alive is None else view.alive.copy()
    alive[: view.n_base : 2] = False  # every other base row, and the whole tail
    alive[view.n_base :] = False
    trimmed = replace(view, alive=alive, dead=int(view.slots - alive.sum()))
    settings = store.settings.model_copy(update={"exact_max_items": 300})
    states, lists, _ = build_base_from(tmp_path, 7, DIM,
                                       sources_of_view(store.folder, trimmed, None), settings,
                                       view.centroids)
    kept = np.sort(np.asarray(view.base.ids)[alive[: view.n_base]])
    ids = np.fromfile(tmp_path / "g7.base.sorted_ids", dtype=np.int64)
    np.testing.assert_array_equal(ids, kept)
    offsets = np.fromfile(tmp_path / "g7.base.lists", dtype=np.int64)
    assert lists == view.manifest.lists and offsets[-1] == states["ids"].rows == len(kept)
