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

from lookalike import Filters, Settings
from lookalike.evaluation.synthetic import SyntheticCatalog
from lookalike.index.columns import FieldColumns, Vocabulary
from lookalike.index.embedded import RECLUSTER_GROWTH, EmbeddedStore
from lookalike.index.segments import (
    SPLIT_AT,
    TWO_LEVEL_FROM,
    Batch,
    CentreGroups,
    Manifest,
    View,
    auto_lists,
    build_base,
    build_base_from,
    lists_for,
    open_view,
    sources_of_view,
)
from lookalike.index.vector_store import Scalars
from vector_worlds import open_catalog, recall, reference

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


@pytest.mark.parametrize("case", ["fresh", "two-level", "reuse", "reuse-split", "one-list"])
def test_compaction_build_writes_what_a_build_from_scratch_writes(
    world: tuple[EmbeddedStore, View, Batch], tmp_path: Path, case: str
) -> None:
    store, view, extra = world
    settings = store.settings
    centroids = None
    if case == "fresh":  # 20 lists: k-means trains on a sample of 1,280 of the rows
        settings = settings.model_copy(update={"ivf_lists": 20})
    elif case == "two-level":  # 17 groups, each split by a k-means of its own rows
        settings = settings.model_copy(update={"ivf_lists": 300})
    elif case == "reuse":  # few lists wanted: none has outgrown the mean list size
        settings = settings.model_copy(update={"ivf_lists": 10})
        centroids = view.centroids
    elif case == "reuse-split":  # the catalog grew since its clustering: big lists split
        centroids = view.centroids
    else:
        settings = settings.model_copy(update={"exact_max_items": 10 * N})
    scratch, copied = tmp_path / "scratch", tmp_path / "copied"
    scratch.mkdir()
    copied.mkdir()
    want = build_base(scratch, 7, DIM, _batches(view, extra, 700), settings, centroids)
    got = build_base_from(copied, 7, DIM, sources_of_view(store.folder, view, extra), settings,
                          centroids)
    assert got[1] == want[1]
    if case == "reuse-split":
        assert got[1] > view.manifest.lists
    else:
        assert got[1] == {"fresh": 20, "two-level": 300, "reuse": view.manifest.lists,
                          "one-list": 1}[case]
    assert got[0] == want[0]  # every file's rows and CRC-32
    files = _files(copied)
    assert files.keys() == _files(scratch).keys() and len(files) > 15
    for name, data in _files(scratch).items():
        assert files[name] == data, name
    assert got[0]["ids"].rows == view.live + len(extra.ids)
    if case == "reuse":
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
    settings = store.settings.model_copy(update={"exact_max_items": 300, "ivf_lists": 10})
    states, lists, _ = build_base_from(tmp_path, 7, DIM,
                                       sources_of_view(store.folder, trimmed, None), settings,
                                       view.centroids)
    kept = np.sort(np.asarray(view.base.ids)[alive[: view.n_base]])
    ids = np.fromfile(tmp_path / "g7.base.sorted_ids", dtype=np.int64)
    np.testing.assert_array_equal(ids, kept)
    offsets = np.fromfile(tmp_path / "g7.base.lists", dtype=np.int64)
    assert lists == view.manifest.lists and offsets[-1] == states["ids"].rows == len(kept)


def _lists_of(folder: Path, prefix: str = "g7.base") -> tuple[dict[int, int], np.ndarray]:
    """Each id's list in a built base segment, and the lists' centres."""
    ids = np.fromfile(folder / f"{prefix}.ids", dtype=np.int64)
    offsets = np.fromfile(folder / f"{prefix}.lists", dtype=np.int64)
    centres = np.fromfile(folder / f"{prefix}.centroids", dtype=np.float32).reshape(-1, DIM)
    lists = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return dict(zip(ids.tolist(), lists.tolist(), strict=True)), centres


def test_a_compaction_splits_only_the_lists_grown_past_twice_the_mean(
    world: tuple[EmbeddedStore, View, Batch], tmp_path: Path
) -> None:
    """Keeping the centres, the lists holding more than SPLIT_AT times the mean list size are
    split by a k-means of their own rows: each of their rows goes to the nearest of its old
    list's parts; every other row keeps its list and that list its centre."""
    store, view, _ = world
    sources = sources_of_view(store.folder, view, None)
    before = dict(zip(np.concatenate([np.asarray(s.rows.ids[s.at]) for s in sources]).tolist(),
                      np.concatenate([s.lists for s in sources if s.lists is not None]).tolist(),
                      strict=True))
    states, lists, centres = build_base_from(tmp_path, 7, DIM, sources, store.settings,
                                             view.centroids)
    after, stored = _lists_of(tmp_path)
    assert centres is not None
    np.testing.assert_array_equal(stored, centres)
    sizes = np.bincount(list(before.values()), minlength=view.manifest.lists)
    mean = view.live / lists_for(view.live, store.settings)
    grown = set(np.flatnonzero(sizes > SPLIT_AT * mean).tolist())
    assert grown and len(grown) < view.manifest.lists / 2  # the fixture has both kinds
    parts: dict[int, set[int]] = {}
    for i, old in before.items():
        parts.setdefault(old, set()).add(after[i])
    for old, new in parts.items():
        if old in grown:
            assert len(new) >= 2, old
        else:
            assert len(new) == 1, old
            np.testing.assert_array_equal(centres[next(iter(new))], view.centroids[old])
    taken = [n for new in parts.values() for n in new]
    assert len(taken) == len(set(taken)) == lists  # no list shared by two old lists
    vectors = {int(i): v for s in sources for i, v in zip(s.rows.ids[s.at], s.rows.vectors[s.at],
                                                           strict=True)}
    for old in grown:
        own = sorted(parts[old])
        for i, was in before.items():
            if was == old:
                best = own[int(np.argmax(centres[own] @ vectors[i]))]
                assert after[i] == best
    assert np.bincount(list(after.values())).max() < sizes.max()
    assert states["ids"].rows == view.live
    # each row written with its own vector (the split lists' rows are a permutation of a run
    # of slots: once copied as a slice, vectors and ids parted)
    ids = np.fromfile(tmp_path / "g7.base.ids", dtype=np.int64)
    written = np.fromfile(tmp_path / "g7.base.vectors", dtype=np.float32).reshape(-1, DIM)
    np.testing.assert_array_equal(written, np.stack([vectors[i] for i in ids.tolist()]))


def test_rows_of_a_permuted_run_of_slots_come_in_the_order_asked(
    world: tuple[EmbeddedStore, View, Batch]
) -> None:
    _, view, _ = world
    slots = np.array([10, 12, 11, 13], dtype=np.int64)  # ends 10 and 13: four slots
    want = np.stack([np.asarray(view.base.vectors[i]) for i in slots.tolist()])
    np.testing.assert_array_equal(view.rows_at(slots), want)


def test_a_two_level_clustering_makes_the_lists_asked_for_near_each_row(tmp_path: Path) -> None:
    """From TWO_LEVEL_FROM lists: about sqrt(lists) groups, each split in proportion to its
    rows; every row in the nearest list of its GROUPS_TRIED nearest groups, nearly all in
    their nearest list of all (98 % when only the nearest group's lists were tried)."""
    vectors = SyntheticCatalog(DIM, 3).vectors(20_000, 5)[0]
    vocab = Vocabulary()
    batch = Batch(np.arange(len(vectors), dtype=np.int64), vectors,
                  FieldColumns.encode([Scalars()] * len(vectors), vocab))
    settings = Settings(catalog_dir=tmp_path, exact_max_items=1000, ivf_lists=400)
    assert settings.ivf_lists >= TWO_LEVEL_FROM
    _, lists, centres = build_base(tmp_path, 7, DIM, iter([batch]), settings, None)
    assert centres is not None and lists == len(centres) == 400
    after, _ = _lists_of(tmp_path)
    got = np.array([after[i] for i in range(len(vectors))])
    sizes = np.bincount(got, minlength=lists)
    assert sizes.min() >= 1 and sizes.max() < 8 * len(vectors) / lists
    scores = vectors @ centres.T
    assert (got == np.argmax(scores, axis=1)).mean() > 0.99  # 0.999 measured
    gap = np.max(scores, axis=1) - scores[np.arange(len(got)), got]
    assert np.percentile(gap, 99.5) < 0.01  # 0 measured (0.03 with the nearest group only)


def test_a_growing_catalog_keeps_its_centres_and_splits_lists(tmp_path: Path) -> None:
    """Past twice the clustered size, compactions keep the centres (splitting the lists that
    outgrew the rest) and recall holds; past RECLUSTER_GROWTH times, the lists are clustered
    afresh."""
    cat = open_catalog(tmp_path, DIM, exact_max_items=1000, filter_exact_max=50)
    world = SyntheticCatalog(DIM, seed=4)
    cat.add_items(*world.items(0, 1200))
    store = cat.index
    assert isinstance(store, EmbeddedStore)
    first = store._get_view().manifest
    assert first.clustered == 1200 and first.lists == auto_lists(1200)
    for a in range(1200, 4 * 1200, 600):
        cat.add_items(*world.items(a, a + 600))
    store.compact()
    grown = store._get_view().manifest
    assert grown.clustered == 1200, "kept the centres past twice the clustered size"
    assert grown.lists > first.lists, "lists were split"
    queries = SyntheticCatalog(DIM).queries(30)
    for filters in (None, Filters(second_hand=True)):
        _, truth = reference(cat, queries, 10, filters)
        assert recall(truth, cat.index.search(queries, 10, filters).ids) >= 0.95
    end = RECLUSTER_GROWTH * 1200 + 600
    for a in range(4 * 1200, end, 2400):
        cat.add_items(*world.items(a, min(end, a + 2400)))
    store.compact()
    again = store._get_view().manifest
    assert again.clustered == end and again.lists == auto_lists(end)


def test_new_rows_go_to_a_nearest_list_through_groups_of_centres(tmp_path: Path) -> None:
    """From TWO_LEVEL_FROM lists a tail row is compared with groups of centres, then with the
    centres of its GROUPS_TRIED nearest groups: nearly every row lands in its nearest list of
    all, the others in one nearly as near; fewer lists: the nearest of all, exactly. The
    store's tail rows are given these lists."""
    vectors = SyntheticCatalog(DIM, 3).vectors(20_000, 5)[0]
    vocab = Vocabulary()
    batch = Batch(np.arange(len(vectors), dtype=np.int64), vectors,
                  FieldColumns.encode([Scalars()] * len(vectors), vocab))
    settings = Settings(catalog_dir=tmp_path, exact_max_items=1000, ivf_lists=400)
    states, lists, centres = build_base(tmp_path, 1, DIM, iter([batch]), settings, None)
    assert centres is not None and lists == 400 >= TWO_LEVEL_FROM
    view = open_view(tmp_path, Manifest(dim=DIM, generation=1, lists=lists, clustered=20_000,
                                        base=states, vocab=vocab), None)
    new = SyntheticCatalog(DIM, 3).vectors(5_000, 77)[0]
    got = view.lists_of(new)
    assert len(view._groups) == 1  # made once for the generation
    scores = new @ centres.T
    assert (got == np.argmax(scores, axis=1)).mean() > 0.99
    gap = np.max(scores, axis=1) - scores[np.arange(len(got)), got]
    assert np.percentile(gap, 99.5) < 0.01
    np.testing.assert_array_equal(view.lists_of(new[:100]), got[:100])  # (cached groups)
    few = CentreGroups.of(centres[:50])  # (any grouping) versus the flat scan below 256
    assert few.starts[-1] == 50 and sorted(few.lists.tolist()) == list(range(50))
    small = replace(view, manifest=replace(view.manifest, lists=50), centroids=centres[:50],
                    _groups=[])
    np.testing.assert_array_equal(small.lists_of(new), np.argmax(scores[:, :50], axis=1))
    assert not small._groups


def test_the_stores_tail_rows_get_their_lists_through_the_groups(tmp_path: Path) -> None:
    """An inverted-list catalog of TWO_LEVEL_FROM lists or more: the rows added to its tail are
    stored with the lists `View.lists_of` gives them."""
    cat = open_catalog(tmp_path, DIM, exact_max_items=1000, filter_exact_max=50,
                       ivf_lists=300)
    world = SyntheticCatalog(DIM, seed=6)
    cat.add_items(*world.items(0, 6000))
    store = cat.index
    assert isinstance(store, EmbeddedStore)
    assert store._get_view().manifest.lists == 300
    items, vectors = world.items(6000, 6400)
    cat.add_items(items, vectors)
    view = store._get_view()
    assert len(view.tail) == 400 and view._groups
    assert view.tail.list is not None
    np.testing.assert_array_equal(np.asarray(view.tail.list), view.lists_of(
        np.asarray(view.tail.vectors)))
    scores = np.asarray(view.tail.vectors) @ np.asarray(view.centroids).T
    assert (np.asarray(view.tail.list) == np.argmax(scores, axis=1)).mean() > 0.95
