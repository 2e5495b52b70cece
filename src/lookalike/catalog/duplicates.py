"""Reposts: the same photo saved again, resized, recompressed, cropped by a few percent or
mirrored, caught at ingest and on `POST /items` (byte-identical photos are caught earlier, by
their content hash).

Two signals, both required (`Settings.duplicate_hash_bits`, `duplicate_cos`,
`duplicate_cos_per_bit`):

* a 64-bit perceptual hash (DCT pHash) of the decoded photo: grey 32 x 32 (area filter), its
  2-D DCT, the 8 x 8 lowest frequencies, one bit per coefficient above their median (the DC
  term left out of the median). A mirrored photo's DCT is the same with every odd horizontal
  frequency negated, so its hash comes from the same transform (`perceptual_hashes`). Only the
  plain hash is stored; a new photo is compared by the nearer of its two hashes.
* the embedding's cosine, which tells a repost from a different garment photographed on the
  same backdrop (whose hash can be as close as a cropped repost's). The cosine needed rises
  with the hash distance: `duplicate_cos` + `duplicate_cos_per_bit` x bits.

Candidates: the stored hashes live in memory (8 bytes an item, in the order held and again in
a FAISS index) and at most `MAX_CANDIDATES` of the closest within `duplicate_hash_bits` of a
photo's plain or mirrored hash are confirmed by cosine against their stored vectors (read only
for the candidates near enough that a unit vector can reach the cosine they need).

Their number grows with the catalog (random hashes: 1.9 vectors read a photo on average over an
ingest up to 300,000 items, 10-16 a photo at a million; real photos' hashes cluster, which
gives more), and reading their vectors (10.5 KB each at 2,624 dims) was about half of an
ingest writer's time at a million. So the finder also
holds each stored item's vector sketch (`lookalike.catalog.sketch`: 256 sign bits of a fixed
Gaussian projection, 32 bytes; stored beside the hash, written with every vector) and reads a
candidate's vector only if the sketches' Hamming distance is within what a pair at exactly
the cosine it needs exceeds with probability at most 1e-9 (`sketch.MISS`; 79 of 256 bits at 0
hash bits, 34 at 14). Whatever is read is decided on the exact cosine as before. An item
without a sketch (a catalog from before them until `CatalogStore.sketch_vectors` runs, at the
next ingest; the sketches held before a re-embedding) is never screened out; items of the
running ingest not committed yet are compared on their vectors in memory.

* Up to `EXACT_UP_TO` (50,000) held hashes the lookup is exact: one Hamming range search of a
  batch's plain and mirrored hashes over all of them (FAISS `IndexBinaryFlat`, C++ XOR +
  popcount, on the writer's thread). Its cost is linear in the catalog: ~0.15 ms of CPU a
  photo at 100,000 clustered real-like hashes, ~0.4 ms at 300,000 and ~1.3 ms at a million,
  which alone would keep a writer far below ten times the encode rate at a million.
* Above, the hashes are grouped in lists (an inverted file, FAISS `IndexBinaryIVF`) by their
  nearest of about 2 x sqrt(n) k-means centres, computed over the hashes as +-1 vectors with
  real-valued centres (the binary centres of `IndexBinaryIVF`'s own training needed about four
  times as many lists probed for the same recall at a million hashes). A lookup compares a
  hash with the centres and takes the closest `max_candidates` of the hashes in its
  `PROBED_LISTS` (32) nearest lists; every hash found is measured against both of the photo's
  hashes. This is approximate: a repost whose original lies in a list not probed is missed
  (the lists are nearly always right for reposts a few bits away, less often at 9-12 bits). The
  lists are made again, twice as many, each time the held hashes have grown four-fold since
  they were made (k-means over 40 hashes a list, every hash reassigned).
  Measured by `bench/bench_duplicates.py` (clustered hashes made from the clothing-dataset's,
  held 10,000 at a time; planted reposts at the distances of real ones; busy 2-core VM, CPU
  per photo): 0.05 ms at 100,000, 0.08 ms at 300,000, 0.12-0.14 ms near a million, against
  0.13, 0.39 and 1.3 ms for the exact scan; ~30 us of CPU per hash held for assigning it and
  the regroupings (the one at 960,000 takes ~21 s of CPU). Of the planted originals the exact
  scan finds, the lists find 99.2-99.8 %.
* The lists are made in a background thread (`_Build`; FAISS on one thread) from a copy of
  the hashes held when it starts: the writer goes on meanwhile. Hashes held since are kept
  in the flat index (positions from `_listed` on) and scanned exactly beside the current
  lists (the first time: the flat index holds every hash), so every held hash is in exactly
  one of the two; the finished lists are taken on the writer's thread at its next `hold`
  (those hashes added to them, the flat index emptied). A build still running when the flat
  index passes 2 x `exact_up_to` hashes is waited for; its error is raised there.

A sublinear exact lookup was measured and set aside: a cropped repost lies up to ~16 bits
away, and at that radius no pigeonhole split prunes well on real photos' clustered hashes
(clothing-dataset, 5,756 photos: four 16-bit bands at radii 3/3/3/4 keep 23.5 % of the
catalog as candidates, two 32-bit halves at 7/8 keep 5.1 % but need ~15 million probes a
half; 0.47 % lie within 16 bits), and metric trees prune little at a radius of half the
median distance (28 bits).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import faiss
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lookalike.catalog.sketch import (
    SKETCH_BYTES,
    max_distance,
    one_faiss_thread,
    sketch_distances,
    vector_sketches,
)
from lookalike.catalog.store import CatalogStore
from lookalike.config import Settings
from lookalike.errors import ImageLoadError
from lookalike.images import ImageLimits, load_image

__all__ = [
    "EXACT_UP_TO",
    "MAX_CANDIDATES",
    "PROBED_LISTS",
    "DuplicateFinder",
    "DuplicateMode",
    "Match",
    "RepostCheck",
    "hamming",
    "hash_stored_photos",
    "perceptual_hashes",
    "repost_reason",
]

log = logging.getLogger(__name__)

#: What happens to a repost: refused (reported with its original), added with a flag naming
#: its original, or added as if new.
DuplicateMode = Literal["reject", "flag", "keep"]

#: Reads stored items' vectors: rowids → (the rowids found, ascending; their vectors).
VectorReader = Callable[[NDArray[np.int64]], tuple[NDArray[np.int64], NDArray[np.float32]]]

#: Closest hash candidates whose cosine is checked for one photo (bounds the work per photo).
MAX_CANDIDATES = 16
#: Up to this many held hashes the lookup scans every one (exact); above it, the hashes are
#: grouped in lists by nearest centre and a lookup scans the `PROBED_LISTS` lists nearest to it.
EXACT_UP_TO = 50_000
#: Lists scanned per hash (plain and mirrored each) once the hashes are grouped.
PROBED_LISTS = 32
#: The lists are made again, more of them, when the held hashes have grown this many times
#: since they were made (the cost of a lookup stays about the same as the catalog grows).
REGROUP_GROWTH = 4

_SIDE = 32  # the grey thumbnail the DCT runs on
_LOW = 8  # the lowest 8 x 8 frequencies make the 64 bits
# Mirroring a row negates its odd DCT frequencies: the mirrored photo's coefficients.
_MIRROR = np.where(np.arange(_LOW) % 2 == 1, -1.0, 1.0).astype(np.float32)[None, :]
#: Stored vectors are unit length (the encoder contract), so a cosine is at most the photo
#: vector's length: a candidate whose hash distance needs more (times 1 + this, for float32
#: rounding) cannot match, and its stored vector is not read. With the default settings that
#: is every candidate 16 bits away: ~68 % of a random hash's candidates.
_UNIT_SLACK = 1e-3
_WEIGHTS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def _bits(coefficients: NDArray[np.float32]) -> int:
    flat = coefficients.ravel()
    median = np.median(flat[1:])  # the DC term (overall brightness) is left out
    return int(np.bitwise_or.reduce(_WEIGHTS[flat > median], initial=np.uint64(0)))


def perceptual_hashes(img: Image.Image) -> tuple[int, int]:
    """(hash, hash of the mirrored photo) of an RGB image, unsigned 64-bit integers. Cheap on
    the small decoded image ingest already has (grey 32 x 32, one 32 x 32 DCT)."""
    grey = np.asarray(img.convert("L").resize((_SIDE, _SIDE), Image.Resampling.BOX),
                      dtype=np.float32)
    low = np.asarray(cv2.dct(grey)[:_LOW, :_LOW], dtype=np.float32)
    return _bits(low), _bits((low * _MIRROR).astype(np.float32))


def _signs(codes: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Hashes (8 bytes a row) as vectors of +-1: their squared distance is 4 x their Hamming
    distance, so a centre (a mean of such vectors) can lie between hashes."""
    return np.unpackbits(codes, axis=1).astype(np.float32) * 2.0 - 1.0


@dataclass
class _HashLists:
    """Held hashes grouped in lists by their nearest centre (k-means of the hashes as +-1
    vectors; the centres stay real-valued, which groups near hashes together far better than
    binary centres do), kept in a FAISS binary inverted file. A lookup compares a hash with
    every centre and scans the lists of the `probed` nearest: approximate."""

    centres: faiss.IndexFlatL2
    lists: faiss.IndexBinaryIVF
    binary_centres: faiss.IndexBinaryFlat  # the inverted file's own quantizer (unused)
    made_at: int  # hashes held when the lists were made

    @classmethod
    def make(cls, codes: NDArray[np.uint8]) -> _HashLists:
        """Lists for these hashes (8 bytes a row, positions 0..n-1): about 2 x sqrt(n) of
        them (a power of two; at least 40 hashes a list), centres from a sample of 40 hashes
        a list."""
        n = len(codes)
        nlist = 1 << max(0, min(round(np.log2(2.0 * np.sqrt(n))), int(np.log2(max(1, n // 40)))))
        sample = codes[np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False)]
        kmeans = faiss.Kmeans(64, nlist, niter=10, seed=1)
        kmeans.train(_signs(sample))
        assert kmeans.centroids is not None
        centroids = np.asarray(kmeans.centroids, dtype=np.float32)
        centres = faiss.IndexFlatL2(64)
        centres.add(centroids)
        binary = faiss.IndexBinaryFlat(64)
        binary.add(np.packbits(centroids > 0, axis=1))
        made = cls(centres, faiss.IndexBinaryIVF(binary, 64, nlist), binary, n)
        made.add(codes, 0)
        return made

    def add(self, codes: NDArray[np.uint8], first: int) -> None:
        """Hashes at positions first, first + 1, ... into the list of their nearest centre."""
        for start in range(0, len(codes), 65536):  # bounds the +-1 floats' memory
            chunk = np.ascontiguousarray(codes[start:start + 65536])
            _, nearest = self.centres.search(_signs(chunk), 1)
            ids = np.arange(first + start, first + start + len(chunk), dtype=np.int64)
            nearest = np.ascontiguousarray(nearest.ravel(), dtype=np.int64)
            # (into the lists given, not the inverted file's own binary quantizer's choice;
            # faiss's type stubs leave add_core out)
            self.lists.add_core(len(chunk), faiss.swig_ptr(chunk),  # type: ignore[attr-defined]
                                faiss.swig_ptr(ids), faiss.swig_ptr(nearest))

    def search(self, queries: NDArray[np.uint8], k: int, probed: int) -> tuple[
            NDArray[np.int32], NDArray[np.int64]]:
        """(distances, positions; -1 for none) of the k nearest hashes in each query's
        `probed` nearest lists."""
        probed = min(probed, self.lists.nlist)
        _, nearest = self.centres.search(_signs(queries), probed)
        self.lists.nprobe = probed
        distances, positions = self.lists.search_preassigned(queries, k, nearest, None)
        return distances, positions


@dataclass
class _Build:
    """Lists being made of held hashes (positions 0..made_at - 1) in a thread of their own,
    with FAISS on one thread: the writer goes on holding and looking up hashes meanwhile."""

    made_at: int
    done: threading.Event = field(default_factory=threading.Event)
    lists: _HashLists | None = None
    error: BaseException | None = None

    @classmethod
    def start(cls, codes: NDArray[np.uint8], background: bool) -> _Build:
        build = cls(len(codes))
        if background:
            threading.Thread(target=build._run, args=(codes,), daemon=True,
                             name="repost-lists").start()
        else:
            build._run(codes)
        return build

    def _run(self, codes: NDArray[np.uint8]) -> None:
        try:
            with one_faiss_thread():
                self.lists = _make_lists(codes)
        except BaseException as exc:  # raised on the writer's thread, by `_take_build`
            self.error = exc
        finally:
            self.done.set()


def _make_lists(codes: NDArray[np.uint8]) -> _HashLists:
    """`_HashLists.make` (a seam for tests)."""
    return _HashLists.make(codes)


def hamming(a: int, b: int) -> int:
    """Bits in which two 64-bit hashes differ."""
    return (a ^ b).bit_count()


def repost_reason(match: Match) -> str:
    """The report's words for a repost: "repost of item X (...)"."""
    return (f"repost of item {match.original_id} (perceptual hash {match.bits} bits apart, "
            f"cosine {match.cosine:.3f})")


@dataclass(frozen=True)
class Match:
    """The stored (or earlier in this run) item a photo reposts."""

    original_id: str
    bits: int
    cosine: float


@dataclass
class DuplicateFinder:
    """Finds the original of a repost among the hashes it holds: the store's (`sync`) and
    those `add`ed since (photos of a running ingest not committed yet; `committed` moves them
    over once they are stored).

    Stored items are compared through their stored vectors (read for the few candidates
    only); deleted items drop out there. Not thread-safe: one writer uses it (its lists are
    made in a thread of their own, handed over through `_Build`)."""

    max_bits: int = 16
    min_cos: float = 0.88
    cos_per_bit: float = 0.008
    max_candidates: int = MAX_CANDIDATES
    exact_up_to: int = EXACT_UP_TO
    probed_lists: int = PROBED_LISTS
    #: make the lists in a background thread (False: on the caller's, as it holds hashes)
    background: bool = True
    # stored items' hashes and rowids in the order held (buffers that double when full);
    # positions 0.._listed - 1 in the lists (None: none yet), the rest (_listed.._size - 1)
    # in a flat index scanned whole; a background build of lists for positions
    # 0..build.made_at - 1 replaces `_lists` when done
    _index: faiss.IndexBinaryFlat = field(default_factory=lambda: faiss.IndexBinaryFlat(64))
    _lists: _HashLists | None = None
    _listed: int = 0
    _build: _Build | None = None
    _hashes: NDArray[np.uint64] = field(default_factory=lambda: np.zeros(1024, np.uint64))
    _rowids: NDArray[np.int64] = field(default_factory=lambda: np.zeros(1024, np.int64))
    # their vectors' sketches, and which have one (an item without is never screened out)
    _sketches: NDArray[np.uint8] = field(
        default_factory=lambda: np.zeros((1024, SKETCH_BYTES), np.uint8))
    _sketched: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(1024, np.bool_))
    _generation: str | None = None  # the store's model generation at the last sync
    _synced: bool = False
    #: stored candidates whose vector was not read, their sketch too far (a count)
    screened: int = 0
    _size: int = 0
    _high_rowid: int = 0
    # added, not stored yet: key -n ↔ (id, hash, vector)
    _pending: dict[int, tuple[str, int, NDArray[np.float32]]] = field(default_factory=dict)
    # their hashes in the order added (key -n at n - 1), grown like the stored ones
    _pending_hashes: NDArray[np.uint64] = field(default_factory=lambda: np.zeros(256, np.uint64))

    def __len__(self) -> int:
        return self._size + len(self._pending)

    def sync(self, store: CatalogStore) -> None:
        """Take in the hashes and sketches of items stored since the last sync (rowids only
        grow). Once the catalog is re-encoded with another model (`lookalike.catalog.reembed`)
        the sketches held before describe old vectors: they are dropped (those items are no
        longer screened)."""
        generation = store.model_generation()
        if self._synced and generation != self._generation:
            self._sketched[:self._size] = False
        self._generation, self._synced = generation, True
        self.hold(*store.repost_keys_after(self._high_rowid))

    def hold(self, rowids: NDArray[np.int64], hashes: NDArray[np.uint64],
             sketches: NDArray[np.uint8] | None = None,
             sketched: NDArray[np.bool_] | None = None) -> None:
        """Hold stored items' hashes (rowids ascending, above those held) and their vectors'
        sketches (`sketched`: which of them are real; no sketches: none). New hashes go into
        the lists when they are current, else into the flat index (scanned whole): up to
        `exact_up_to` held, and while new lists are being made (from `REGROUP_GROWTH` times
        the held hashes the lists were made of). A build holding the flat index past twice
        `exact_up_to` hashes is waited for."""
        if not len(rowids):
            self._take_build(wait=False)
            return
        need = self._size + len(rowids)
        if need > len(self._rowids):
            self._rowids = np.resize(self._rowids, max(need, 2 * len(self._rowids)))
            self._hashes = np.resize(self._hashes, len(self._rowids))
            grown = np.zeros((len(self._rowids), SKETCH_BYTES), np.uint8)
            grown[:self._size] = self._sketches[:self._size]
            self._sketches = grown
            self._sketched = np.resize(self._sketched, len(self._rowids))
        self._rowids[self._size:need] = rowids
        self._hashes[self._size:need] = np.asarray(hashes, dtype=np.uint64)
        if sketches is None:
            self._sketched[self._size:need] = False
        else:
            self._sketches[self._size:need] = sketches
            self._sketched[self._size:need] = (True if sketched is None else sketched)
        codes = self._hashes[self._size:need].view(np.uint8).reshape(-1, 8)
        if self._lists is not None and self._build is None and self._listed == self._size:
            with one_faiss_thread():
                self._lists.add(codes, self._size)
            self._listed = need
        else:
            self._index.add(codes)
        self._size = need
        self._high_rowid = int(rowids.max())
        self._take_build(wait=False)  # (after: a build's error leaves these hashes held)
        if self._build is None and need > self.exact_up_to and (
                self._lists is None or need >= REGROUP_GROWTH * self._lists.made_at):
            self._build = _Build.start(
                self._hashes[:need].copy().view(np.uint8).reshape(-1, 8), self.background)
        if self._build is not None and (not self.background
                                        or self._size - self._listed > 2 * self.exact_up_to):
            self._take_build(wait=True)

    def settle(self) -> None:
        """Wait for lists being made, and use them."""
        self._take_build(wait=True)

    def _take_build(self, wait: bool) -> None:
        """Lists made in the background replace the current ones (their build's error is
        raised here); the hashes held since the build began are added to them, and the flat
        index emptied. Nothing changes while the build runs (unless `wait`)."""
        build = self._build
        if build is None or not (wait or build.done.is_set()):
            return
        build.done.wait()
        self._build = None
        if build.error is not None:
            raise build.error
        lists = build.lists
        assert lists is not None
        if self._size > lists.made_at:
            with one_faiss_thread():
                lists.add(self._hashes[lists.made_at:self._size].view(np.uint8).reshape(-1, 8),
                          lists.made_at)
        self._lists, self._listed = lists, self._size
        self._index.reset()

    def add(self, item_id: str, phash: int, vector: NDArray[np.float32]) -> None:
        """An item added but not stored yet: later photos are compared with it too."""
        n = len(self._pending)
        if n == len(self._pending_hashes):
            self._pending_hashes = np.resize(self._pending_hashes, 2 * n)
        self._pending_hashes[n] = np.uint64(phash)
        self._pending[-(n + 1)] = (
            item_id, phash, np.asarray(vector, dtype=np.float32))

    def committed(self, store: CatalogStore) -> None:
        """The items `add`ed so far are stored: hold them (and anything else stored since) as
        stored items, and let their vectors go."""
        self.sync(store)
        self._pending.clear()

    def needed_cos(self, bits: int) -> float:
        """The cosine a photo whose hash is `bits` away needs to be a repost: a near-identical
        hash needs less (a recompressed or mirrored photo moves the embedding more than the
        hash), a cropped one more (a different garment on the same backdrop has as close a
        hash)."""
        return self.min_cos + self.cos_per_bit * bits

    def could_match(self, bits: NDArray[np.int64], vector: NDArray[np.float32]) -> NDArray[
            np.bool_]:
        """Which candidates `bits` apart could be reposts of a photo with this vector: those
        whose needed cosine a unit-length stored vector can reach (the others' vectors need no
        reading)."""
        reach = float(np.linalg.norm(vector)) * (1.0 + _UNIT_SLACK)
        needed = self.min_cos + self.cos_per_bit * np.asarray(bits, dtype=np.float64)
        return np.asarray(needed <= reach, dtype=np.bool_)

    def worth_reading(
        self,
        keys: NDArray[np.int64],
        bits: NDArray[np.int64],
        vector: NDArray[np.float32],
        sketch: NDArray[np.uint8] | None = None,
    ) -> NDArray[np.bool_]:
        """Which of the candidates `keys` (`bits` apart) have a stored vector worth reading:
        stored ones that `could_match`, and whose sketch (when the photo's `sketch` is given and
        the item has one) lies within `max_distance` of the photo's for the cosine they need. A
        candidate exactly at that cosine is screened out with probability at most
        `lookalike.catalog.sketch.MISS`; one above it less often."""
        return self.worth_reading_many(
            [(keys, bits)], np.asarray(vector).reshape(1, -1),
            None if sketch is None else np.asarray(sketch).reshape(1, -1))[0]

    def worth_reading_many(
        self,
        candidates: Sequence[tuple[NDArray[np.int64], NDArray[np.int64]]],
        vectors: NDArray[np.float32],
        sketches: NDArray[np.uint8] | None = None,
    ) -> list[NDArray[np.bool_]]:
        """`worth_reading` of several photos at once (photo i: `candidates[i]` = (keys, bits),
        `vectors[i]`, `sketches[i]`), the same arithmetic photo by photo in a few array
        operations over all their candidates: done per photo it cost a writer ~15 % of its
        time at a million items."""
        parts = [(np.asarray(k, dtype=np.int64), np.asarray(b, dtype=np.int64))
                 for k, b in candidates]
        sizes = [len(k) for k, _ in parts]
        if not parts:
            return []
        keys = np.concatenate([k for k, _ in parts])
        bits = np.concatenate([b for _, b in parts])
        photo = np.repeat(np.arange(len(parts)), sizes)
        # each photo's length as `could_match` computes it (the same float, photo by photo)
        norms = np.array([float(np.linalg.norm(vectors[i])) for i in range(len(parts))])
        reach = norms * (1.0 + _UNIT_SLACK)
        needed = self.min_cos + self.cos_per_bit * bits.astype(np.float64)
        wanted = (keys > 0) & (needed <= reach[photo])
        if sketches is not None and wanted.any() and self._size:
            at = np.flatnonzero(wanted)
            held = self._rowids[:self._size]
            pos = np.minimum(np.searchsorted(held, keys[at]), self._size - 1)
            known = (held[pos] == keys[at]) & self._sketched[pos]
            # the direction's cosine a stored unit vector needs: the dot product over the photo
            # vector's length (and the stored one's, at most 1 + _UNIT_SLACK)
            length = np.maximum(reach[photo[at]], 1e-30)
            cos = self.min_cos + self.cos_per_bit * bits[at].astype(np.float64)
            cos = np.where(cos > 0, cos / length, -1.0)
            near = sketch_distances(self._sketches[pos], sketches[photo[at]]) <= max_distance(cos)
            keep = ~known | near
            self.screened += int(len(keep) - keep.sum())
            wanted[at] = keep
        return np.split(wanted, np.cumsum(sizes)[:-1])

    def candidates(self, hashes: tuple[int, int]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(keys, Hamming distances) of the held hashes within `max_bits` of either hash,
        closest first, at most `max_candidates`. Keys are rowids, negative for pending items."""
        keys, bits = self.stored_candidates([hashes])[0]
        return self._with_pending(keys, bits, hashes)

    def stored_candidates(
        self, hashes: Sequence[tuple[int, int]]
    ) -> list[tuple[NDArray[np.int64], NDArray[np.int64]]]:
        """For each photo's hashes: (rowids, distances) of the stored hashes held within
        `max_bits` of either, closest first (ties in the order held), at most
        `max_candidates`. Up to `exact_up_to` held hashes, one Hamming range search (FAISS, on
        this thread) of the batch's plain and mirrored hashes against every held hash (exact);
        above, a search of the `probed_lists` lists nearest to each hash (approximate: an
        original in a list not probed is missed)."""
        pairs = np.asarray(hashes, dtype=np.uint64).reshape(len(hashes), 2)
        empty = np.zeros(0, dtype=np.int64)
        if not self._size or not len(pairs):
            return [(empty, empty) for _ in range(len(pairs))]
        # queries plain, mirrored, plain, ...: query q is photo q // 2
        queries = np.ascontiguousarray(pairs.reshape(-1)).view(np.uint8).reshape(-1, 8)
        found_rows, found_cols, found_near = [], [], []
        with one_faiss_thread():
            if self._size > self._listed:  # the flat index's (positions from _listed)
                lims, dist, cols = self._index.range_search(queries, self.max_bits + 1)  # < r
                ends = np.asarray(lims, dtype=np.int64)
                found_rows.append(np.repeat(np.arange(len(queries), dtype=np.int64) // 2,
                                            ends[1:] - ends[:-1]))
                found_cols.append(np.asarray(cols, dtype=np.int64) + self._listed)
                found_near.append(np.asarray(dist, dtype=np.int64))
            if self._lists is not None and self._listed:
                # the closest `max_candidates` in each query's probed lists; each hash found
                # is measured against both of its photo's hashes (the other query's lists may
                # not hold it, or hold it past its own closest `max_candidates`)
                _, cols = self._lists.search(queries, self.max_candidates, self.probed_lists)
                rows = np.repeat(np.arange(len(pairs), dtype=np.int64), cols.shape[1] * 2)
                cols = cols.ravel()
                rows, cols = rows[cols >= 0], cols[cols >= 0]
                held = self._hashes[cols]
                near = np.minimum(np.bitwise_count(held ^ pairs[rows, 0]),
                                  np.bitwise_count(held ^ pairs[rows, 1])).astype(np.int64)
                found = near <= self.max_bits
                found_rows.append(rows[found])
                found_cols.append(cols[found])
                found_near.append(near[found])
        rows, cols, near = (np.concatenate(parts) for parts in (found_rows, found_cols,
                                                                  found_near))
        # by photo, then distance, then the order held; a hash near both of a photo's hashes
        # counts once, at the nearer (the first of its pair in this order)
        order = np.lexsort((cols, near, rows))
        rows, cols, near = rows[order], cols[order], near[order]
        _, first = np.unique(rows * self._size + cols, return_index=True)
        first.sort()
        rows, cols, near = rows[first], cols[first], near[first]
        bounds = np.searchsorted(rows, np.arange(len(pairs) + 1))
        out: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
        for photo in range(len(pairs)):
            lo = bounds[photo]
            hi = min(bounds[photo + 1], lo + self.max_candidates)
            out.append((self._rowids[cols[lo:hi]], near[lo:hi]))
        return out

    def _with_pending(
        self, keys: NDArray[np.int64], bits: NDArray[np.int64], hashes: tuple[int, int]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The stored candidates `keys`, `bits` with the pending items' within `max_bits`,
        closest first (stored before pending at equal distance), at most `max_candidates`."""
        if not self._pending:
            return keys, bits
        plain, mirrored = (np.uint64(h) for h in hashes)
        pending = self._pending_hashes[: len(self._pending)]
        pbits = np.minimum(np.bitwise_count(pending ^ plain), np.bitwise_count(pending ^ mirrored))
        near = np.flatnonzero(pbits <= self.max_bits)
        if not len(near):
            return keys, bits
        all_keys = np.concatenate([keys, -(near.astype(np.int64) + 1)])  # key -n at n - 1
        all_bits = np.concatenate([bits, pbits[near].astype(np.int64)])
        order = np.argsort(all_bits, kind="stable")[: self.max_candidates]
        return all_keys[order], all_bits[order]

    def find(
        self, hashes: tuple[int, int], vector: NDArray[np.float32], store: CatalogStore
    ) -> Match | None:
        """The held item this photo reposts (hash within `max_bits`, cosine at least
        `needed_cos` of the hash distance; the highest cosine among them), or None."""
        keys, bits = self.candidates(hashes)
        stored = np.sort(keys[self.worth_reading(keys, bits, vector,
                                                 vector_sketches(vector.reshape(1, -1))[0])])
        found, vectors = (store.vectors_of(stored) if len(stored)
                          else (stored, np.zeros((0, len(vector)), np.float32)))
        return self._best(keys, bits, vector, dict(zip(found.tolist(), vectors, strict=True)),
                          store)

    def _best(
        self,
        keys: NDArray[np.int64],
        bits: NDArray[np.int64],
        vector: NDArray[np.float32],
        stored_vectors: dict[int, NDArray[np.float32]],
        store: CatalogStore,
    ) -> Match | None:
        """The best match among the candidates `keys` (`bits` apart): cosines against the
        stored candidates' vectors (`stored_vectors`, deleted items absent) and the pending
        items'."""
        if not len(keys):
            return None
        vector = np.asarray(vector, dtype=np.float32)
        best: Match | None = None
        cosines: dict[int, float] = {}
        for key in keys.tolist():
            other = self._pending[key][2] if key < 0 else stored_vectors.get(key)
            if other is not None:
                cosines[key] = float(other @ vector)
        names: dict[int, str] = {}
        for key, distance in zip(keys.tolist(), bits.tolist(), strict=True):
            cosine = cosines.get(key)
            if cosine is None or cosine < self.needed_cos(distance):
                continue
            if best is None or cosine > best.cosine:
                if key < 0:
                    name = self._pending[key][0]
                else:
                    names = names or store.ids_of([k for k in keys.tolist() if k > 0])
                    if key not in names:
                        continue
                    name = names[key]
                best = Match(name, int(distance), cosine)
        return best


@dataclass
class RepostCheck:
    """What an ingest does about reposts: `mode` (`Settings.duplicates`) and the finder
    holding the catalog's hashes (synced when the check starts)."""

    mode: DuplicateMode
    finder: DuplicateFinder
    #: where the stored candidates' vectors are read (rowids → (rowids found, vectors), as
    #: `CatalogStore.vectors_of`; None: the store's), e.g. the embedded vector store's copy
    read: VectorReader | None = None

    @classmethod
    def from_settings(cls, settings: Settings, read: VectorReader | None = None) -> RepostCheck:
        return cls(settings.duplicates, DuplicateFinder(
            settings.duplicate_hash_bits, settings.duplicate_cos, settings.duplicate_cos_per_bit),
            read)

    def batch(
        self,
        store: CatalogStore,
        ids: Sequence[str],
        hashes: Sequence[tuple[int, int]],
        vectors: NDArray[np.float32],
        on_repost: Callable[[int, Match], None],
        sketches: NDArray[np.uint8] | None = None,
    ) -> list[int]:
        """One batch of new photos, in order: the positions of those to add (reposts left out
        in "reject" mode; `on_repost(position, match)` is told of each repost unless the mode
        is "keep"). Every photo added joins the finder, so a later repost of it in the same
        run is caught too; call `finder.committed` once they are stored. `sketches`: the
        vectors' (`lookalike.catalog.sketch.vector_sketches`), made here when not given."""
        keep: list[int] = []
        finder = self.finder
        if self.mode != "keep":
            # the stored candidates of the whole batch at once, and their vectors in one read;
            # the pending ones (this run's, growing as the batch is checked) photo by photo
            stored = finder.stored_candidates(hashes)
            if sketches is None:
                sketches = vector_sketches(vectors)
            wanted = np.unique(np.concatenate(
                [k[mask] for (k, _), mask in zip(
                    stored, finder.worth_reading_many(stored, vectors, sketches), strict=True)]
                or [np.zeros(0, np.int64)]))
            found, found_vectors = ((self.read or store.vectors_of)(wanted) if len(wanted)
                                    else (wanted, np.zeros((0, vectors.shape[1]), np.float32)))
            by_key = dict(zip(found.tolist(), found_vectors, strict=True))
        for pos, (item_id, pair) in enumerate(zip(ids, hashes, strict=True)):
            if self.mode != "keep":
                keys, bits = finder._with_pending(*stored[pos], pair)
                match = finder._best(keys, bits, vectors[pos], by_key, store)
                if match is not None:
                    on_repost(pos, match)
                    if self.mode == "reject":
                        continue
            finder.add(item_id, pair[0], vectors[pos])
            keep.append(pos)
        return keep


def hash_stored_photos(
    store: CatalogStore, limits: ImageLimits, draft: int, chunk: int = 256
) -> tuple[int, int]:
    """Hash the photos of stored items that have no perceptual hash yet (a catalog made before
    hashes were stored), decoded as ingest decodes them (`draft`: the encoder's resize size).
    Returns (hashed, unreadable); an unreadable photo stays without a hash (`lookalike check`
    reports it) and is tried again next time."""
    hashed = failed = after = 0
    while rows := store.unhashed(after, chunk):
        found: dict[int, int] = {}
        for rowid, path in rows:
            try:
                img = load_image(path, limits=limits, draft_size=(draft, draft))
                found[rowid] = perceptual_hashes(img)[0]
            except (ImageLoadError, OSError):
                failed += 1
        if found:
            store.set_phashes(found)
        hashed += len(found)
        after = rows[-1][0]
    if failed:
        log.warning("%s: %d stored photo(s) could not be read to hash them for duplicate "
                    "detection; run `lookalike check`", store.path, failed)
    return hashed, failed
