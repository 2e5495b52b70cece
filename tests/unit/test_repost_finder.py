"""Perceptual hashes and the repost finder (`lookalike.catalog.duplicates`), on photos of the
bundled sample (real photos: generated rectangles say nothing about a hash's robustness)."""

from __future__ import annotations

import io
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.attributes import default_taggers
from lookalike.catalog import Catalog, CatalogStore, ItemIn, NewItem, duplicates
from lookalike.catalog.duplicates import DuplicateFinder, RepostCheck, hamming, perceptual_hashes
from lookalike.config import Settings
from lookalike.demo import sample_images

PHOTOS = sorted(sample_images().glob("*.jpg"))[:12]


def photo(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def resaved(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    """As the finder compares: a stored plain hash against both hashes of a new photo."""
    return min(hamming(a[0], b[0]), hamming(a[0], b[1]))


def reposts(img: Image.Image) -> dict[str, Image.Image]:
    w, h = img.size
    return {
        "half size": img.resize((w // 2, h // 2), Image.Resampling.BICUBIC),
        "jpeg q30": resaved(img, 30),
        "mirrored": img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "70 %, mirrored, q50": resaved(
            img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((w * 7 // 10, h * 7 // 10)), 50
        ),
    }


def test_hash_survives_resize_recompression_and_mirroring() -> None:
    for path in PHOTOS:
        img = photo(path)
        original = perceptual_hashes(img)
        for name, copy in reposts(img).items():
            assert distance(original, perceptual_hashes(copy)) <= 4, (path.name, name)


def test_mirrored_hash_is_the_hash_of_the_mirrored_photo() -> None:
    for path in PHOTOS[:4]:
        img = photo(path)
        plain, mirror = perceptual_hashes(img)
        flipped = perceptual_hashes(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        assert hamming(mirror, flipped[0]) <= 2 and hamming(plain, flipped[1]) <= 2
        assert hamming(plain, mirror) > 8  # and a photo is not its own mirror image


def test_distinct_photos_are_far_apart() -> None:
    hashes = [perceptual_hashes(photo(p)) for p in PHOTOS]
    apart = [distance(hashes[i], hashes[j])
             for i in range(len(hashes)) for j in range(len(hashes)) if i != j]
    assert min(apart) > 4  # farther than any repost above
    assert float(np.median(apart)) >= 20


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def store_with(tmp_path: Path, hashes: list[int], vectors: np.ndarray) -> CatalogStore:
    store = CatalogStore(tmp_path / "catalog.sqlite")
    store.bind_model("fake", vectors.shape[1])
    items = [NewItem(f"item-{i}", ItemIn(image=f"{i}.jpg"), f"/x/{i}.jpg", f"h{i}", phash=h)
             for i, h in enumerate(hashes)]
    store.add(items, vectors)
    return store


def test_finder_needs_both_a_near_hash_and_a_near_embedding(tmp_path: Path) -> None:
    base = 0xF0F0_1234_ABCD_8001
    far = base ^ 0xFFFF_FFFF_0000_0000  # 32 bits away
    vectors = np.stack([unit([1, 0, 0]), unit([0, 1, 0]), unit([0, 0, 1])])
    store = store_with(tmp_path, [base, far, base ^ 0b111], vectors)
    finder = DuplicateFinder(max_bits=16, min_cos=0.88, cos_per_bit=0.008)
    finder.sync(store)
    assert len(finder) == 3
    # item-0: same hash, same vector
    match = finder.find((base, 0), unit([1, 0.01, 0]), store)
    assert match is not None and match.original_id == "item-0" and match.bits == 0
    # the mirrored hash is compared too
    match = finder.find((0, base ^ 1), unit([1, 0, 0]), store)
    assert match is not None and match.original_id == "item-0" and match.bits == 1
    # item-1 has the same vector direction but a hash 32 bits away: no repost
    assert finder.find((base, base), unit([0, 1, 0]), store) is None
    # a near hash with another garment's embedding: no repost
    assert finder.find((base, base), unit([1, 1, 1]), store) is None
    # item-2: 3 bits away needs cosine 0.88 + 3 x 0.008 = 0.904
    assert finder.find((base, 0), unit([0, 0.5, 1]), store) is None  # cos 0.894
    assert finder.find((base, 0), unit([0, 0.4, 1]), store) is not None  # 0.928


def test_finder_sees_pending_items_and_forgets_deleted_ones(tmp_path: Path) -> None:
    store = store_with(tmp_path, [1234], np.stack([unit([1, 0])]))
    finder = DuplicateFinder()
    finder.sync(store)
    finder.add("new-one", 0xABCDEF, unit([0, 1]))
    match = finder.find((0xABCDEF ^ 1, 0), unit([0.05, 1]), store)
    assert match is not None and match.original_id == "new-one"
    store.delete("item-0")
    assert finder.find((1234, 1234), unit([1, 0]), store) is None


def test_committed_items_move_from_memory_to_the_store(tmp_path: Path) -> None:
    store = store_with(tmp_path, [1234], np.stack([unit([1, 0])]))
    finder = DuplicateFinder(max_bits=4)
    finder.sync(store)
    finder.add("later", 0xABCDEF, unit([0, 1]))
    store.add([NewItem("later", ItemIn(image="l.jpg"), "/x/l.jpg", "hl", phash=0xABCDEF)],
              np.stack([unit([0, 1])]))
    finder.committed(store)
    assert len(finder) == 2 and not finder._pending
    keys, _ = finder.candidates((0xABCDEF, 0))
    assert keys.tolist() == [store.rowid_of("later")]
    match = finder.find((0xABCDEF, 0), unit([0, 1]), store)
    assert match is not None and match.original_id == "later"


def test_held_hashes_grow_past_the_first_buffer() -> None:
    finder = DuplicateFinder(max_bits=0)
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**64, 5000, dtype=np.uint64)
    for start in range(0, 5000, 700):
        finder.hold(np.arange(start + 1, min(start + 700, 5000) + 1, dtype=np.int64),
                    hashes[start:start + 700])
    assert len(finder) == 5000
    for i in (0, 1023, 1024, 4999):
        keys, bits = finder.candidates((int(hashes[i]), int(hashes[i])))
        assert keys.tolist() == [i + 1] and bits.tolist() == [0]


def test_finder_checks_a_bounded_number_of_candidates(tmp_path: Path) -> None:
    n = 200
    rng = np.random.default_rng(0)
    vectors = np.stack([unit(list(rng.standard_normal(8))) for _ in range(n)])
    hashes = [0x1111_2222_3333_4444 ^ (1 << (i % 64)) for i in range(n)]  # all 1 bit away
    store = store_with(tmp_path, hashes, vectors)
    finder = DuplicateFinder(max_candidates=16)
    finder.sync(store)
    keys, bits = finder.candidates((0x1111_2222_3333_4444, 0))
    assert len(keys) == 16 and set(bits.tolist()) == {1}


def test_an_older_catalog_gets_the_columns_and_its_photos_hashed(tmp_path: Path) -> None:
    folder = tmp_path / "cat"
    images = tmp_path / "images"
    images.mkdir()
    for p in PHOTOS[:3]:
        (images / p.name).write_bytes(p.read_bytes())
    settings = Settings(catalog_dir=folder, model="fake", duplicates="keep")
    with Catalog.open(settings, taggers=default_taggers) as cat:
        assert cat.ingest(images).added == 3
    db = sqlite3.connect(folder / "catalog.sqlite")  # as a catalog made before the columns
    db.execute("DROP INDEX items_unhashed")
    db.execute("ALTER TABLE items DROP COLUMN phash")
    db.execute("ALTER TABLE items DROP COLUMN duplicate_of")
    db.execute("PRAGMA user_version = 1")  # the shop columns' version, before the repost ones
    db.commit()
    db.close()
    with Catalog.open(settings.model_copy(update={"duplicates": "reject"}),
                      taggers=default_taggers) as cat:
        assert len(cat.items()) == 3 and all(i.duplicate_of is None for i in cat.items())
        assert len(cat.store.unhashed(0, 10)) == 3
        with cat.store.connection() as conn:
            assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                                "'items_unhashed'").fetchone()[0] == 1
        assert cat.hash_photos() == (3, 0)
        rowids, hashes = cat.store.phashes_after(0)
        assert len(rowids) == 3
        first = perceptual_hashes(cat.load_photo(Path(cat.items()[0].image_path)))[0]
        assert int(hashes[0]) == first


@pytest.mark.parametrize("value", [2**63, 2**64 - 1, 0, 12345])
def test_hashes_above_2_63_round_trip_through_sqlite(tmp_path: Path, value: int) -> None:
    store = store_with(tmp_path, [value], np.stack([unit([1, 0])]))
    assert int(store.phashes_after(0)[1][0]) == value


def linear_candidates(
    held: np.ndarray, rowids: np.ndarray, pair: tuple[int, int], max_bits: int, limit: int
) -> list[tuple[int, int]]:
    """The plain scan the batched lookup replaced: every held hash, closest first (ties in
    the order held), at most `limit`."""
    found = [(min(hamming(int(h), pair[0]), hamming(int(h), pair[1])), i)
             for i, h in enumerate(held.tolist())]
    near = sorted((bits, i) for bits, i in found if bits <= max_bits)[:limit]
    return [(int(rowids[i]), bits) for bits, i in near]


@pytest.mark.parametrize(("max_bits", "limit"), [(16, 16), (16, 3), (5, 16), (0, 16)])
def test_batched_candidates_are_the_linear_scans(max_bits: int, limit: int) -> None:
    """Random hashes, clustered ones (many within the radius, many ties: the cut at
    `max_candidates` matters) and the sample's real photos with their reposts: the batched
    lookup finds exactly what a scan of every held hash finds, in the same order."""
    rng = np.random.default_rng(7)
    random_hashes = rng.integers(0, 2**63, size=300, dtype=np.uint64) * np.uint64(2)
    bases = rng.integers(0, 2**63, size=4, dtype=np.uint64)
    flips = [np.bitwise_or.reduce(np.uint64(1) << rng.choice(64, size=k, replace=False)
                                  .astype(np.uint64))
             for k in rng.integers(0, 12, size=200)]
    clustered = np.array([bases[i % 4] ^ f for i, f in enumerate(flips)], dtype=np.uint64)
    real = [perceptual_hashes(photo(p)) for p in PHOTOS]
    real += [perceptual_hashes(copy) for p in PHOTOS[:4] for copy in reposts(photo(p)).values()]
    held = np.concatenate([random_hashes, clustered,
                           np.array([h for h, _ in real], dtype=np.uint64)])
    finder = DuplicateFinder(max_bits=max_bits, max_candidates=limit)
    rowids = np.arange(1, len(held) + 1, dtype=np.int64) * 3
    finder.hold(rowids[:100], held[:100])  # held in two steps
    finder.hold(rowids[100:], held[100:])
    queries = ([(int(h), int(h) ^ 0xFF) for h in clustered[:40]]
               + [(int(a), int(b)) for a, b in rng.integers(0, 2**63, size=(20, 2),
                                                             dtype=np.uint64)]
               + real)
    batched = finder.stored_candidates(queries)
    assert len(batched) == len(queries)
    total = 0
    for pair, (keys, bits) in zip(queries, batched, strict=True):
        expected = linear_candidates(held, rowids, pair, max_bits, limit)
        assert list(zip(keys.tolist(), bits.tolist(), strict=True)) == expected
        assert finder.candidates(pair)[0].tolist() == [k for k, _ in expected]
        total += len(expected)
    assert total > (len(queries) if max_bits == 16 else 40)  # there are near hashes to find


def test_candidates_no_unit_vector_can_match_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate whose hash distance needs a cosine above 1 cannot be a repost: its stored
    vector is not read, and the answer is the one reading it would give."""
    base = 0x0123_4567_89AB_CDEF
    v = unit([1, 2, 3])
    # 9 bits away needs 0.5 + 9 x 0.05 = 0.95; 11 bits away needs 1.05 (unreachable)
    store = store_with(tmp_path, [base ^ 0x1FF, base ^ 0x7FF], np.stack([v, v]))
    read: list[list[int]] = []
    real_read = store.vectors_of
    monkeypatch.setattr(store, "vectors_of",
                        lambda rowids: (read.append(rowids.tolist()), real_read(rowids))[1])
    finder = DuplicateFinder(max_bits=16, min_cos=0.5, cos_per_bit=0.05)
    finder.sync(store)
    match = finder.find((base, 0), v, store)
    assert match is not None and match.original_id == "item-0" and match.bits == 9
    assert read == [[store.rowid_of("item-0")]]
    read.clear()
    assert finder.find((base ^ 0x7FF, 0), v, store) is not None  # 0 bits from item-1: read
    read.clear()
    far = base ^ 0x1FF ^ 0x7FF_0000_0000  # 11 bits from item-0, 13 from item-1
    assert finder.candidates((far, 0))[1].tolist() == [11, 13]
    assert finder.find((far, 0), v, store) is None and read == []
    checked: list[int] = []
    check = RepostCheck("flag", finder)
    check.batch(store, ["a", "b"], [(base, 0), (base ^ 0x7FF ^ 0x3_0000, 0)], np.stack([v, v]),
                lambda pos, match: checked.append(pos))
    assert checked == [0, 1]  # a: item-0 (9 bits), b: item-1 (2 bits), nothing else read
    assert read[-1] == sorted([store.rowid_of("item-0"), store.rowid_of("item-1")])


def test_skipping_unreachable_candidates_changes_no_answer(tmp_path: Path) -> None:
    """Random near hashes and vectors: the finder's answers equal a brute force that reads
    every candidate's vector and applies the rule."""
    rng = np.random.default_rng(3)
    base = int(rng.integers(0, 2**63))
    n = 300
    hashes = [base ^ int(np.bitwise_or.reduce(
        np.uint64(1) << rng.choice(64, size=k, replace=False).astype(np.uint64)))
        for k in rng.integers(1, 17, size=n)]
    anchor = unit(list(rng.standard_normal(16)))
    vectors = np.stack([unit(list(anchor + rng.standard_normal(16) * s))
                        for s in rng.uniform(0.0, 0.3, size=n)])
    store = store_with(tmp_path, hashes, vectors)
    finder = DuplicateFinder(max_bits=16, min_cos=0.88, cos_per_bit=0.008, max_candidates=400)
    finder.sync(store)
    rowid = {store.rowid_of(f"item-{i}"): i for i in range(n)}
    found = 0
    for q in range(40):
        pair = (hashes[q] ^ (1 << int(rng.integers(64))), 0)
        vector = unit(list(anchor + rng.standard_normal(16) * 0.05))
        keys, bits = finder.candidates(pair)
        best = None
        for key, b in zip(keys.tolist(), bits.tolist(), strict=True):
            cosine = float(vectors[rowid[key]] @ vector)
            if cosine >= finder.needed_cos(b) and (best is None or cosine > best[1]):
                best = (f"item-{rowid[key]}", cosine)
        match = finder.find(pair, vector, store)
        assert (match and (match.original_id, match.cosine)) == (best or None)
        found += best is not None
    assert 0 < found < 40


def test_candidates_on_many_clustered_hashes_are_the_brute_forces() -> None:
    """Real perceptual hashes are clustered (photos on one backdrop): 5,000 hashes around 40
    centres, up to 20 bits from theirs, many of them within the radius of a query (the cut at
    `max_candidates` and the ties matter), against a numpy brute force."""
    rng = np.random.default_rng(11)
    centres = rng.integers(0, 2**63, size=40, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    n = 5000
    masks = np.zeros(n, dtype=np.uint64)
    for i, k in enumerate(rng.integers(0, 21, size=n)):
        for bit in rng.choice(64, size=k, replace=False).tolist():
            masks[i] |= np.uint64(1) << np.uint64(bit)
    held = centres[rng.integers(0, 40, size=n)] ^ masks
    rowids = np.cumsum(rng.integers(1, 4, size=n)).astype(np.int64)
    finder = DuplicateFinder(max_bits=16, max_candidates=16)
    finder.hold(rowids, held)
    queries = [(int(held[i] ^ np.uint64(1 << 3)), int(centres[i % 40])) for i in range(60)]
    batched = finder.stored_candidates(queries)
    for (plain, mirrored), (keys, bits) in zip(queries, batched, strict=True):
        d = np.minimum(np.bitwise_count(held ^ np.uint64(plain)),
                       np.bitwise_count(held ^ np.uint64(mirrored))).astype(np.int64)
        order = np.lexsort((np.arange(n), d))
        order = order[d[order] <= 16][:16]
        assert keys.tolist() == rowids[order].tolist()
        assert bits.tolist() == d[order].tolist()
        assert len(keys) == 16


def clustered_hashes(rng: np.random.Generator, n: int, centres: int, up_to: int) -> np.ndarray:
    """`n` hashes around `centres` random ones, each with 0..`up_to` random bits flipped."""
    bases = rng.integers(0, 2**63, size=centres, dtype=np.uint64) * np.uint64(2)
    flips = rng.random((n, 64)).argsort(axis=1) < rng.integers(0, up_to + 1, size=n)[:, None]
    masks = (flips.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(axis=1,
                                                                          dtype=np.uint64)
    return np.asarray(bases[rng.integers(0, centres, size=n)] ^ masks, dtype=np.uint64)


def test_lists_are_made_again_as_the_held_hashes_grow() -> None:
    """Past `exact_up_to` the hashes go into lists, made again (more of them) each time the
    held hashes have grown 4 times; a hash held before, at or after a regrouping is found at
    0 bits under its own rowid."""
    rng = np.random.default_rng(5)
    held = clustered_hashes(rng, 20_000, 200, 12)
    rowids = np.arange(1, 20_001, dtype=np.int64) * 2
    finder = DuplicateFinder(max_bits=16, exact_up_to=1_000)
    made: dict[int, int] = {}  # held when made -> lists
    for start in range(0, 20_000, 500):
        finder.hold(rowids[start:start + 500], held[start:start + 500])
        finder.settle()  # (lists are made in the background)
        if finder._lists is not None:
            made[finder._lists.made_at] = finder._lists.lists.nlist
    assert list(made) == [1_500, 6_000]  # past 1,000, then at 4 x 1,500
    assert made[1_500] < made[6_000] and finder._lists is not None
    assert finder._lists.lists.ntotal == len(finder) == 20_000
    probe = rng.choice(20_000, 300, replace=False)
    found = finder.stored_candidates([(int(held[i]), int(held[i]) ^ 0xFFFF) for i in probe])
    for i, (keys, bits) in zip(probe, found, strict=True):
        assert rowids[i] in keys.tolist() and bits[0] == 0


def test_lists_find_what_the_exact_scan_finds_on_clustered_hashes() -> None:
    """60,000 clustered hashes (past the default `EXACT_UP_TO`: in lists) against the exact
    scan of the same hashes: reposts up to 8 bits from a held hash are found as the scan finds
    them, and most of the scan's candidates are found."""
    rng = np.random.default_rng(8)
    n = 60_000
    held = clustered_hashes(rng, n, 3_000, 8)
    rowids = np.arange(1, n + 1, dtype=np.int64)
    grouped, exact = DuplicateFinder(), DuplicateFinder(exact_up_to=n)
    for f in (grouped, exact):
        f.hold(rowids, held)
        f.settle()
    assert grouped._lists is not None and exact._lists is None
    planted = rng.choice(n, 400, replace=False)
    moved = rng.random((400, 64)).argsort(axis=1) < rng.integers(0, 9, size=400)[:, None]
    masks = (moved.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(axis=1,
                                                                           dtype=np.uint64)
    pairs = [(int(h), int(h) ^ 0xFFFF_0000) for h in held[planted] ^ masks]
    by_lists, by_scan = grouped.stored_candidates(pairs), exact.stored_candidates(pairs)
    hits = {"lists": 0, "scan": 0}
    kept = []
    for i, (keys, bits), (exact_keys, _) in zip(planted, by_lists, by_scan, strict=True):
        hits["lists"] += rowids[i] in keys.tolist()
        hits["scan"] += rowids[i] in exact_keys.tolist()
        assert np.all(np.diff(bits) >= 0) and np.all(bits <= 16)  # closest first, in range
        # what the lists find is there, at the distance the scan measures
        d = np.minimum(np.bitwise_count(held[keys - 1] ^ np.uint64(pairs[len(kept)][0])),
                       np.bitwise_count(held[keys - 1] ^ np.uint64(pairs[len(kept)][1])))
        assert d.tolist() == bits.tolist()
        kept.append(len(set(keys.tolist()) & set(exact_keys.tolist())) / max(1, len(exact_keys)))
    assert hits["scan"] >= 390
    assert hits["lists"] >= hits["scan"] - 8  # >= 98 % of what the exact scan finds (4 lists: 93 %)
    assert float(np.mean(kept)) >= 0.9


def test_pending_and_deleted_items_with_the_hashes_in_lists(tmp_path: Path) -> None:
    """The finder's behaviour does not depend on the lookup: pending items are found, deleted
    ones drop out, committed ones move to the lists."""
    rng = np.random.default_rng(2)
    hashes = [int(h) for h in clustered_hashes(rng, 400, 20, 10)]
    vectors = np.stack([unit(list(rng.standard_normal(8))) for _ in hashes])
    store = store_with(tmp_path, hashes, vectors)
    finder = DuplicateFinder(exact_up_to=100)
    finder.sync(store)
    assert finder._lists is not None and len(finder) == 400
    match = finder.find((hashes[7] ^ 0b11, 0), vectors[7], store)
    assert match is not None and match.original_id == "item-7" and match.bits == 2
    store.delete("item-7")
    match = finder.find((hashes[7] ^ 0b11, 0), vectors[7], store)
    assert match is None or match.original_id != "item-7"
    finder.add("new-one", 0xABCD_EF01_2345, unit([1] * 8))
    match = finder.find((0xABCD_EF01_2345 ^ 1, 0), unit([1] * 8), store)
    assert match is not None and match.original_id == "new-one"
    store.add([NewItem("new-one", ItemIn(image="n.jpg"), "/x/n.jpg", "hn",
                       phash=0xABCD_EF01_2345)], np.stack([unit([1] * 8)]))
    finder.committed(store)
    assert len(finder) == 401 and not finder._pending
    match = finder.find((0xABCD_EF01_2345 ^ 1, 0), unit([1] * 8), store)
    assert match is not None and match.original_id == "new-one"


class HeldBuild:
    """`_make_lists` held back until `go` is set: lists being made in the background."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.go = threading.Event()
        self.started = 0
        self.running = threading.Event()
        real = duplicates._make_lists

        def held(codes: np.ndarray) -> duplicates._HashLists:
            self.started += 1
            self.running.set()
            assert self.go.wait(30)
            return real(codes)

        monkeypatch.setattr(duplicates, "_make_lists", held)


def found_at_zero(finder: DuplicateFinder, held: np.ndarray, rowids: np.ndarray,
                  at: np.ndarray) -> bool:
    """Whether each hash at positions `at` is found at 0 bits under its rowid."""
    got = finder.stored_candidates([(int(held[i]), int(held[i]) ^ 0xFFFF) for i in at])
    return all(rowids[i] in keys.tolist() and bits[0] == 0
               for i, (keys, bits) in zip(at, got, strict=True))


def test_hashes_held_while_the_first_lists_are_made_are_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past `exact_up_to` the lists are made in the background; until they are ready every
    hash, those held meanwhile too, is found by the exact scan, and once they are, the ones
    held meanwhile are in them."""
    build = HeldBuild(monkeypatch)
    rng = np.random.default_rng(21)
    held = clustered_hashes(rng, 1_800, 30, 12)
    rowids = np.arange(1, 1_801, dtype=np.int64) * 3
    finder = DuplicateFinder(max_bits=16, exact_up_to=1_000)
    finder.hold(rowids[:1_500], held[:1_500])
    assert build.running.wait(10)
    assert finder._build is not None and finder._lists is None and build.started == 1
    finder.hold(rowids[1_500:], held[1_500:])  # held while the lists are being made
    everything = np.arange(1_800)
    assert found_at_zero(finder, held, rowids, everything)
    # a repost (3 bits off) of a photo held during the build, and one of a photo before it
    for i in (1_700, 12):
        keys, _ = finder.candidates((int(held[i]) ^ 0b111, int(held[i])))
        assert rowids[i] in keys.tolist()
    build.go.set()
    finder.settle()
    assert finder._build is None and finder._lists is not None
    assert finder._lists.made_at == 1_500 and finder._lists.lists.ntotal == 1_800
    assert finder._index.ntotal == 0 and len(finder) == 1_800
    assert found_at_zero(finder, held, rowids, everything)


def test_hashes_held_while_lists_are_made_again_are_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While lists are made again (4 x the hashes the current ones were made of) the current
    lists still answer for the hashes they hold and the exact scan for those held since the
    build began; the new lists, once taken, hold every hash once."""
    build = HeldBuild(monkeypatch)
    build.go.set()
    rng = np.random.default_rng(22)
    held = clustered_hashes(rng, 7_000, 80, 12)
    rowids = np.arange(1, 7_001, dtype=np.int64)
    finder = DuplicateFinder(max_bits=16, exact_up_to=1_000)
    finder.hold(rowids[:1_500], held[:1_500])
    finder.settle()
    assert finder._lists is not None and finder._lists.made_at == 1_500
    build.go.clear()
    build.running.clear()
    for start in range(1_500, 6_000, 500):  # into the lists; at 6,000 a new build begins
        finder.hold(rowids[start:start + 500], held[start:start + 500])
    assert build.running.wait(10)
    assert finder._build is not None and build.started == 2
    first = finder._lists
    assert first.lists.ntotal == 6_000 and finder._listed == 6_000
    finder.hold(rowids[6_000:], held[6_000:])  # held meanwhile: scanned exactly
    assert finder._lists is first and finder._index.ntotal == 1_000
    assert found_at_zero(finder, held, rowids, rng.choice(6_000, 300, replace=False))
    assert found_at_zero(finder, held, rowids, np.arange(6_000, 7_000))
    build.go.set()
    finder.hold(rowids[:0], held[:0])  # (nothing new: the finished build is taken)
    finder.settle()
    assert finder._lists is not first and finder._lists is not None
    assert finder._lists.made_at == 6_000 and finder._lists.lists.ntotal == 7_000
    assert finder._index.ntotal == 0
    assert found_at_zero(finder, held, rowids, rng.choice(7_000, 300, replace=False))


def test_a_slow_build_is_waited_for_past_twice_exact_up_to(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact scan does not grow without bound while lists are made: past twice
    `exact_up_to` hashes outside the lists, the writer waits for them."""
    build = HeldBuild(monkeypatch)
    rng = np.random.default_rng(23)
    held = clustered_hashes(rng, 2_200, 30, 12)
    rowids = np.arange(1, 2_201, dtype=np.int64)
    finder = DuplicateFinder(max_bits=16, exact_up_to=1_000)
    finder.hold(rowids[:1_500], held[:1_500])
    assert finder._build is not None
    timer = threading.Timer(0.3, build.go.set)
    timer.start()
    finder.hold(rowids[1_500:], held[1_500:])  # 2,200 outside lists: waits
    timer.join()
    assert finder._build is None and finder._lists is not None
    assert finder._lists.lists.ntotal == 2_200 and finder._index.ntotal == 0


def test_a_failed_build_is_raised_to_the_writer_and_forgets_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An error making the lists is raised where hashes are held; the exact scan still holds
    every hash, and the next hold tries again."""
    def broken(codes: np.ndarray) -> duplicates._HashLists:
        raise MemoryError("no room for lists")

    monkeypatch.setattr(duplicates, "_make_lists", broken)
    rng = np.random.default_rng(24)
    held = clustered_hashes(rng, 1_600, 30, 12)
    rowids = np.arange(1, 1_601, dtype=np.int64)
    finder = DuplicateFinder(max_bits=16, exact_up_to=1_000)
    finder.hold(rowids[:1_500], held[:1_500])
    with pytest.raises(MemoryError):
        finder.settle()
    assert finder._lists is None and found_at_zero(finder, held, rowids, np.arange(1_500))
    monkeypatch.undo()
    finder.hold(rowids[1_500:], held[1_500:])
    finder.settle()
    assert finder._lists is not None and finder._lists.lists.ntotal == 1_600
    assert found_at_zero(finder, held, rowids, np.arange(1_600))


def test_lists_made_on_the_callers_thread_when_asked() -> None:
    """`background=False`: the lists are ready as soon as the hashes past `exact_up_to` are
    held."""
    rng = np.random.default_rng(25)
    held = clustered_hashes(rng, 1_500, 30, 12)
    finder = DuplicateFinder(max_bits=16, exact_up_to=1_000, background=False)
    finder.hold(np.arange(1, 1_501, dtype=np.int64), held)
    assert finder._build is None and finder._lists is not None
    assert finder._lists.lists.ntotal == 1_500 and finder._index.ntotal == 0
