"""The vectors' sketches (`lookalike.catalog.sketch`) and the repost check's screen with them
(`DuplicateFinder.worth_reading`): the sketch distance of pairs at a known cosine follows the
binomial the thresholds assume, a repost at the edge of the rule is still read and found, and
unrelated candidates are left unread."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from lookalike.catalog.duplicates import DuplicateFinder, Match, RepostCheck
from lookalike.catalog.sketch import (
    MISS,
    SKETCH_BITS,
    max_distance,
    sketch_distances,
    vector_sketches,
)


def pairs_at(
    cos: float, n: int, dim: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n random pairs of unit vectors at exactly this cosine."""
    x = rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    u = rng.standard_normal((n, dim))
    u -= np.sum(u * x, axis=1, keepdims=True) * x
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    y = cos * x + math.sqrt(1 - cos * cos) * u
    return x.astype(np.float32), y.astype(np.float32)


def test_thresholds_are_the_binomial_tail() -> None:
    for cos in (0.88, 0.912, 0.944, 0.976, 0.992, 0.5, 0.0):
        p = math.acos(cos) / math.pi
        t = int(max_distance(np.array([cos]))[0])
        assert binom.sf(t, SKETCH_BITS, p) <= MISS  # at most MISS beyond it...
        assert binom.sf(t - 1, SKETCH_BITS, p * 0.999) > MISS  # ...and not much looser
    assert max_distance(np.array([-0.1]))[0] == SKETCH_BITS  # nothing screened


@pytest.mark.parametrize("cos", [0.88, 0.944, 0.992])
def test_sketch_distances_follow_the_binomial(cos: float) -> None:
    """20,000 random pairs at the rule's edge cosines (at 0, 8 and 14 bits of hash distance):
    the distances' mean and spread are the binomial's, the share beyond mean + 2 sigma is its
    tail (so the 1e-9 tail the screen uses is the same law's), and none lies beyond the
    screen's limit."""
    rng = np.random.default_rng(int(cos * 1000))
    n = 20_000
    x, y = pairs_at(cos, n, 384, rng)
    d = sketch_distances(vector_sketches(x), vector_sketches(y))
    p = math.acos(cos) / math.pi
    mean, sd = SKETCH_BITS * p, math.sqrt(SKETCH_BITS * p * (1 - p))
    assert abs(d.mean() - mean) < 5 * sd / math.sqrt(n)
    assert abs(d.std() - sd) < 0.05 * sd
    cut = int(mean + 2 * sd)
    expected = binom.sf(cut, SKETCH_BITS, p)
    assert abs((d > cut).mean() - expected) < 5 * math.sqrt(expected * (1 - expected) / n)
    assert int(d.max()) <= int(max_distance(np.array([cos]))[0])


def test_sketches_are_fixed_and_stored_width_independent() -> None:
    rng = np.random.default_rng(1)
    v = rng.standard_normal((3, 2624)).astype(np.float32)
    a = vector_sketches(v)
    assert a.shape == (3, 32) and a.dtype == np.uint8
    assert np.array_equal(a, vector_sketches(v * 3))  # the direction only
    assert np.array_equal(a[1], vector_sketches(v[1:2])[0])
    assert vector_sketches(np.zeros((0, 8), np.float32)).shape == (0, 32)


def held_finder(vectors: np.ndarray, hashes: list[int], sketched: bool) -> DuplicateFinder:
    finder = DuplicateFinder(max_bits=16, min_cos=0.88, cos_per_bit=0.008, max_candidates=400)
    rowids = np.arange(1, len(vectors) + 1, dtype=np.int64) * 2
    finder.hold(
        rowids, np.asarray(hashes, dtype=np.uint64), vector_sketches(vectors) if sketched else None
    )
    return finder


def flipped(base: int, bits: int, rng: np.random.Generator) -> int:
    mask = 0
    for b in rng.choice(64, size=bits, replace=False).tolist():
        mask |= 1 << int(b)
    return base ^ mask


def test_a_repost_at_the_edge_of_the_rule_is_read_and_found() -> None:
    """For every hash distance the rule allows a match at, 40 reposts each with a cosine just
    above the one needed: every one is read and found, through `RepostCheck.batch` (the read
    hook counts the vectors read) and `find`."""
    rng = np.random.default_rng(5)
    dim = 512
    finder_probe = DuplicateFinder()
    for bits in range(0, 15):
        needed = finder_probe.needed_cos(bits)
        originals, reposts = pairs_at(min(needed + 2e-4, 1.0), 40, dim, rng)
        base = int(rng.integers(0, 2**63))
        hashes = [flipped(base, 0, rng) for _ in range(40)]
        finder = held_finder(originals, hashes, sketched=True)
        reader = Reader(originals)
        read = reader.read
        for i in range(40):
            finder._pending.clear()
            query = (flipped(hashes[i], bits, rng), 0)
            keys, cand_bits = finder.candidates(query)
            mask = finder.worth_reading(
                keys, cand_bits, reposts[i], vector_sketches(reposts[i : i + 1])[0]
            )
            own = keys == 2 * (i + 1)
            assert own.any() and mask[own].all(), (bits, i)
        found: list[Match] = []
        check = RepostCheck("reject", finder, reader)
        # each repost alone (a batch of one: the others' candidates do not help)
        for i in range(40):
            read.clear()
            check.batch(
                _Names(),
                [f"new-{i}"],
                [(flipped(hashes[i], bits, rng), 0)],
                reposts[i : i + 1],
                Found(found),
            )
            assert 2 * (i + 1) in read
        assert [m.original_id for m in found] == [f"item-{i}" for i in range(40)], bits


class Reader:
    """The read hook: vectors by rowid (rowid 2 x (i + 1) is row i), the rowids asked for."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.read: list[int] = []

    def __call__(self, rowids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.read.extend(rowids.tolist())
        return rowids, self.vectors[rowids // 2 - 1]


class Found:
    def __init__(self, into: list[Match]) -> None:
        self.into = into

    def __call__(self, pos: int, match: Match) -> None:
        self.into.append(match)


class _Names:
    """The one store method `_best` needs of a store: the ids of rowids (item-<rowid/2 - 1>)."""

    def ids_of(self, rowids: list[int]) -> dict[int, str]:
        return {int(r): f"item-{int(r) // 2 - 1}" for r in rowids}


def test_unrelated_candidates_are_not_read() -> None:
    """300 stored items all within 12 bits of the photos' hashes (each a candidate that could
    match), their vectors unrelated to the photos' (random, and at cosine 0.3): none is read
    with sketches; without them (an item made before sketches) every one is."""
    rng = np.random.default_rng(9)
    dim = 512
    n = 300
    base = int(rng.integers(0, 2**63))
    hashes = [flipped(base, int(k), rng) for k in rng.integers(0, 7, size=n)]
    stored = rng.standard_normal((n, dim)).astype(np.float32)
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    half, photos_half = pairs_at(0.3, 20, dim, rng)
    stored[:20] = half
    photos = np.concatenate([rng.standard_normal((20, dim)).astype(np.float32), photos_half])
    photos /= np.linalg.norm(photos, axis=1, keepdims=True)
    for sketched in (True, False):
        finder = held_finder(stored, hashes, sketched)
        reader = Reader(stored)
        read = reader.read
        check = RepostCheck("reject", finder, reader)
        queries = [(flipped(base, int(k), rng), 0) for k in rng.integers(0, 7, size=40)]
        candidates = sum(len(k) for k, _ in finder.stored_candidates(queries))
        assert candidates > 40 * 100  # every photo has many candidates
        keep = check.batch(
            _Names(), [f"p{i}" for i in range(40)], queries, photos, lambda pos, match: None
        )
        assert keep == list(range(40))
        if sketched:
            assert read == [] and finder.screened > 40 * 100
        else:
            assert len(read) == n and finder.screened == 0  # every candidate read once


def test_the_screen_of_a_batch_is_the_screen_of_each_photo() -> None:
    """`worth_reading_many` (one batch at once) gives, photo by photo, what `worth_reading`
    gives each photo alone: stored, pending (negative) and unknown keys, photos with no
    candidate, vectors longer and shorter than unit, some held items without a sketch."""
    rng = np.random.default_rng(11)
    dim = 128
    held = rng.standard_normal((300, dim)).astype(np.float32)
    held /= np.linalg.norm(held, axis=1, keepdims=True)
    finder = held_finder(held, [int(h) for h in rng.integers(0, 2**63, 300)], sketched=True)
    finder._sketched[:300:7] = False
    photos = (held[rng.integers(0, 300, 24)] + 0.3 * rng.standard_normal((24, dim))).astype(
        np.float32
    )
    photos *= rng.uniform(0.5, 1.5, (24, 1)).astype(np.float32)
    candidates = []
    for i in range(24):
        n = 0 if i % 5 == 0 else int(rng.integers(1, 40))
        keys = rng.choice(np.concatenate([np.arange(1, 301) * 2, -np.arange(1, 5), [1, 999]]), n)
        candidates.append((keys.astype(np.int64), rng.integers(0, 17, n).astype(np.int64)))
    sketches = vector_sketches(photos)
    one = DuplicateFinder(**{k: getattr(finder, k) for k in ("max_bits", "min_cos", "cos_per_bit")})
    for name in ("_rowids", "_sketches", "_sketched", "_size"):
        setattr(one, name, getattr(finder, name))
    singly = [
        one.worth_reading(k, b, photos[i], sketches[i]) for i, (k, b) in enumerate(candidates)
    ]
    together = finder.worth_reading_many(candidates, photos, sketches)
    assert len(together) == len(singly)
    for a, b in zip(together, singly, strict=True):
        assert a.dtype == np.bool_ and np.array_equal(a, b)
    assert finder.screened == one.screened > 0
    unscreened = finder.worth_reading_many(candidates, photos)
    for (k, b), mask, photo in zip(candidates, unscreened, photos, strict=True):
        assert np.array_equal(mask, (k > 0) & finder.could_match(b, photo))
