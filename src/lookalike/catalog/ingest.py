"""Bulk ingest: a folder of images plus a CSV/JSONL metadata file into the catalog.

Every row is validated; bad rows and bad images are reported (row, field, reason) and skipped,
never fatal: one bad input never stops an ingest (`lookalike.catalog.metadata` reads any file
into rows or rejections; any failure on one image rejects that image). Only a problem with the
metadata file as a whole raises `MetadataError`, before anything is stored. Every image path
must resolve inside the images folder (links included), checked before the file is opened.
Duplicates (same id or same image bytes) are skipped; reposts (the same photo resized,
recompressed, cropped or mirrored: `lookalike.catalog.duplicates`) are rejected naming their
original, or flagged, by setting. Items are committed in batches, so a killed run resumes
where it stopped: the rerun skips what is already stored.

Three stages: (a) `validate_rows` checks every row before its photo is read; (b) an
`EncodeEngine` decodes and encodes the photos (`LocalEngine`: this machine's cores;
`ray_engine.RayEngine`: a Ray cluster), each photo through the same `ImagePreparer`; (c) the
writer stores the results in file order (dedupe by bytes, reposts, commits, reject report,
progress). Whatever the engine, (a) and (c) are the same code. The file goes through them
`WINDOW_ROWS` rows at a time, so however long it is the driver holds at most one window of
validated rows (~2 KB each) and the vectors of one commit.
"""

from __future__ import annotations

import csv
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydantic import ValidationError

from lookalike.catalog.duplicates import Match, RepostCheck, perceptual_hashes, repost_reason
from lookalike.catalog.metadata import RawRow, read_metadata
from lookalike.catalog.schema import OUTSIDE, ItemIn, Tag, image_path_problem
from lookalike.catalog.sketch import vector_sketches
from lookalike.catalog.store import CatalogStore, NewItem
from lookalike.encoders.base import Encoder, Preprocess
from lookalike.encoders.pipeline import EncodedBatch, encode_stream
from lookalike.errors import ImageLoadError, LookalikeError
from lookalike.images import ImageLimits, content_hash, load_image, read_image_bytes

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})

#: A tagger that looks at pixels (runs in the decode threads): image → tags.
PixelTagger = Callable[[Image.Image], dict[str, Tag]]
#: A tagger that looks at embeddings (runs per batch): vectors → tags per item.
VectorTagger = Callable[[NDArray[np.float32]], list[dict[str, Tag]]]


@dataclass(frozen=True)
class Rejection:
    """Why one row or image was not added."""

    row: int
    item_id: str
    field: str
    reason: str
    file: str = ""


@dataclass
class IngestProgress:
    done: int
    total: int
    added: int
    skipped: int
    rejected: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class IngestReport:
    added: int = 0
    skipped: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    #: reposts added with `duplicate_of` set (Settings.duplicates = "flag"), why and of what
    flagged: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0
    report_path: Path | None = None
    added_rowids: list[int] = field(default_factory=list)
    #: how the metadata file's text was decoded (e.g. "UTF-8", "Windows-1252"); None: no file
    metadata_encoding: str | None = None

    @property
    def images_per_second(self) -> float:
        return self.added / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "skipped": self.skipped,
            "rejected": len(self.rejected),
            "reposts": sum(r.reason.startswith("repost of item") for r in self.rejected),
            "flagged": len(self.flagged),
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
            "report": str(self.report_path) if self.report_path else None,
            "metadata_encoding": self.metadata_encoding,
        }


@dataclass(frozen=True)
class _Row:
    number: int
    item: ItemIn
    path: Path


class DuplicateImageError(Exception):
    """The image's bytes are already in the catalog (or earlier in this run)."""


def rows_from_folder(images_dir: Path) -> Iterator[RawRow]:
    """Without a metadata file every image in the folder and its subfolders is an item named
    after its file. Nothing is skipped silently: a folder that cannot be read and a link to a
    folder (never followed) are reported as rejected rows, and every entry with an image
    suffix becomes a row, so a FIFO, a device, a dangling link or a folder named like an image
    is rejected when it is read. Files without an image suffix are not items."""
    root = Path(images_dir)
    problems: list[OSError] = []
    entries: list[tuple[str, str]] = []  # (path relative to the root, problem)
    for dirpath, dirnames, filenames in os.walk(root, onerror=problems.append):
        dirnames.sort()
        folder = Path(dirpath)
        for name in dirnames:
            rel = str((folder / name).relative_to(root))
            if (folder / name).is_symlink():
                entries.append((rel, "a link to a folder: not followed"))
            elif Path(name).suffix.lower() in IMAGE_SUFFIXES:
                entries.append((rel, ""))
        entries.extend(
            (str((folder / name).relative_to(root)), "")
            for name in filenames
            if Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    for exc in problems:
        where = Path(exc.filename) if exc.filename else root
        entries.append((str(where.relative_to(root)) if where != root else ".",
                        f"cannot read this folder ({exc.strerror or exc})"))
    for number, (image, problem) in enumerate(sorted(entries), start=1):
        if problem:
            yield RawRow(number, None, problem, field="image", file=str(root / image))
        else:
            yield RawRow(number, {"id": Path(image).stem, "image": image})


def resolve_image(root: Path, name: str) -> Path:
    """The file a row's `image` names, every link resolved, inside the images folder `root`
    (itself resolved), or `ImageLoadError` "outside the images folder". The file is never
    opened, and whether a path outside exists is never looked at. A name without a suffix may
    omit a known image suffix."""
    problem = image_path_problem(name)
    if problem is not None:
        raise ImageLoadError(name, problem)
    lexical = Path(root) / name
    root = Path(root).resolve()  # a relative root ("../data/images") holds resolved paths too
    candidates = [lexical]
    if not lexical.suffix:
        candidates += [Path(f"{lexical}{suffix}") for suffix in sorted(IMAGE_SUFFIXES)]
    for candidate in candidates:
        try:
            real = candidate.resolve()
        except RuntimeError:  # Python 3.11-3.12 for a loop of links
            raise ImageLoadError(str(lexical), "a loop of symbolic links") from None
        except (OSError, ValueError):
            raise ImageLoadError(str(lexical), "invalid file name") from None
        if real != root and root not in real.parents:
            raise ImageLoadError(str(lexical), OUTSIDE)
        if len(candidates) > 1 and not _exists(candidate):
            continue
        if candidate.is_symlink() and not _exists(real):
            raise ImageLoadError(str(lexical), "dangling symbolic link (its target is missing)")
        return real
    return lexical.resolve()


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except (OSError, ValueError):
        return False
    return True


def default_id(image: str) -> str:
    """An id for a row without one: the image's path without suffix ('/' becomes ':')."""
    stem = str(Path(image).with_suffix("")) if Path(image).suffix else image
    return stem.replace("\\", ":").replace("/", ":").lstrip(":.") or image


def _describe(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, reason) of each error; our own checks' messages without pydantic's prefix."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "row"
        msg = err["msg"].removeprefix("Value error, ")
        out.append((loc, _short(msg, 300)))
    return out


def validate_row(raw_row: RawRow) -> ItemIn | list[Rejection]:
    """One row of a metadata file (or of a bulk upload) as an item to add, or why not: every
    field checked, a missing id made from the image path, the image path checked from its
    text alone (inside the images folder)."""
    number, raw = raw_row.number, raw_row.fields
    if raw is None:
        return [Rejection(number, "", raw_row.field, raw_row.problem, raw_row.file)]
    image = raw.get("image")
    if not raw.get("id") and isinstance(image, str) and image.strip():
        raw = {**raw, "id": default_id(image.strip())}
    try:
        item = ItemIn.model_validate(raw)
    except ValidationError as exc:
        item_id = _short(raw.get("id"))
        return [Rejection(number, item_id, fld, reason) for fld, reason in _describe(exc)]
    except (TypeError, OverflowError, RecursionError) as exc:  # a value no check foresaw
        return [Rejection(number, _short(raw.get("id")), "row", f"invalid value ({_short(exc)})")]
    problem = image_path_problem(item.image)  # from the text alone, before any file
    if problem is not None:
        return [Rejection(number, item.id or "", "image", problem)]
    return item


@dataclass(frozen=True)
class ImagePreparer:
    """What every photo goes through before the model, wherever it runs (a thread of the local
    engine, an actor of the Ray engine): the path checked to stay inside the images folder
    (links included) before the file is opened, the bytes read within the byte cap and hashed,
    the image decoded within the limits, pixel taggers run, resized and centre-cropped.

    `__call__(image)` does it all: (S, S, 3) uint8 crop and (digest, pixel tags, real path,
    perceptual hashes), or
    `ImageLoadError` (any failure on one image: one image never stops an ingest) or
    `DuplicateImageError` (bytes already in `seen`). `read` and `decode` are its two halves for
    an engine that reads in one process and decodes in another. Picklable (`seen` aside, which
    only the writer's own process can share: an engine sending it elsewhere leaves it out).
    """

    #: the images folder, resolved; None: names are files already checked (stored items)
    root: Path | None
    limits: ImageLimits
    preprocess: Preprocess
    pixel_taggers: tuple[PixelTagger, ...] = ()
    #: hashes already stored or taken (read live): an early exit; the writer's check decides
    seen: AbstractSet[str] | None = field(default=None, compare=False)

    def path_of(self, image: str) -> Path:
        """The file `image` names, unresolved: what messages show."""
        return Path(image) if self.root is None else self.root / image

    def read(self, image: str) -> tuple[bytes, str, str]:
        """(bytes, content hash, resolved path) of `image`'s file, checked before it is opened."""
        return _guard(self.path_of(image), lambda: self._read(image))

    def _read(self, image: str) -> tuple[bytes, str, str]:
        path = Path(image) if self.root is None else resolve_image(self.root, image)
        data = read_image_bytes(path, self.limits, follow_symlinks=False)
        digest = content_hash(data)
        if self.seen is not None and digest in self.seen:  # the writer's ordered check decides
            raise DuplicateImageError(digest)
        return data, digest, str(path)

    def decode(self, image: str, data: bytes) -> Decoded:
        """(crop, pixel tags, perceptual hashes) of the photo `image` whose bytes are `data`."""
        return _guard(self.path_of(image), lambda: self._decode(image, data))

    def _decode(self, image: str, data: bytes) -> Decoded:
        size = self.preprocess.resize_size
        img = load_image(data, limits=self.limits, name=str(self.path_of(image)),
                         draft_size=(size, size))
        tags: dict[str, Tag] = {}
        for tagger in self.pixel_taggers:
            tags.update(tagger(img))
        # normalised into the batch; the hashes from the small decoded image (reposts)
        return self.preprocess.resize_crop(img), tags, perceptual_hashes(img)

    def __call__(self, image: str) -> tuple[NDArray[np.uint8], Payload]:
        data, digest, path = self.read(image)
        crop, tags, hashes = self.decode(image, data)
        return crop, (digest, tags, path, hashes)


#: What a prepared photo brings to the writer: content hash, pixel tags, resolved path,
#: perceptual hashes (the photo's and its mirror's).
Payload = tuple[str, dict[str, Tag], str, tuple[int, int]]
#: A decoded photo: its crop for the model, pixel tags, perceptual hashes.
Decoded = tuple[NDArray[np.uint8], dict[str, Tag], tuple[int, int]]

R = TypeVar("R")


def _guard(path: Path, step: Callable[[], R]) -> R:
    """`step()`, any failure but a duplicate an `ImageLoadError` naming `path`."""
    try:
        return step()
    except (ImageLoadError, DuplicateImageError):
        raise
    except Exception as exc:  # one image never stops an ingest, whatever a library raises
        raise ImageLoadError(
            str(path), f"cannot process this image ({type(exc).__name__}: {_short(exc)})"
        ) from exc


class EncodeEngine(Protocol):
    """Stage (b) of an ingest: decode and encode photos, here or on a cluster.

    `encode` yields, in input order, batches whose items are indices into `images` with their
    vectors and payloads, and whose failures are (index, `ImageLoadError` or
    `DuplicateImageError`); every index comes out exactly once. `LocalEngine` runs on this
    machine's cores; `lookalike.catalog.ray_engine.RayEngine` on a Ray cluster.
    """

    def encode(
        self, encoder: Encoder, images: Sequence[str], prepare: ImagePreparer
    ) -> Iterator[EncodedBatch[int, Payload]]: ...


@dataclass(frozen=True)
class LocalEngine:
    """This machine: `decode_threads` workers, each decoding a chunk of `chunk_size` photos then
    encoding it with a one-thread model in batches of `batch_size` (`encode_stream`)."""

    batch_size: int = 4
    chunk_size: int = 32
    decode_threads: int = 2

    def encode(
        self, encoder: Encoder, images: Sequence[str], prepare: ImagePreparer
    ) -> Iterator[EncodedBatch[int, Payload]]:
        return encode_stream(
            encoder,
            range(len(images)),
            lambda i: prepare(images[i]),
            batch_size=self.batch_size,
            chunk_size=self.chunk_size,
            decode_threads=self.decode_threads,
            expected=(ImageLoadError, DuplicateImageError),
        )


@dataclass
class StoredBatch:
    """Photos of stored items encoded again: their rowids and new vectors (in input order), and
    (rowid, reason) of those that could not be."""

    rowids: list[int]
    vectors: NDArray[np.float32]
    failures: list[tuple[int, str]]


#: Why a stored photo is not encoded again when its file changed since the ingest.
CHANGED_PHOTO = "holds other bytes than the photo ingested"


def encode_stored(
    engine: EncodeEngine,
    encoder: Encoder,
    photos: Sequence[tuple[int, str, str]],
    limits: ImageLimits = ImageLimits(),
) -> Iterator[StoredBatch]:
    """Stage (b) for a re-embedding: (rowid, image_path, image_hash) of stored items → their
    vectors with `encoder`, by `engine` (local or Ray), batch by batch in input order. The
    paths are the files the ingest checked and stored; a photo that is gone, unreadable or no
    longer the bytes that were ingested is a failure (`CHANGED_PHOTO`), never an error."""
    prepare = ImagePreparer(None, limits, encoder.preprocess)
    for batch in engine.encode(encoder, [path for _, path, _ in photos], prepare):
        failures = [(photos[i][0], exc.reason if isinstance(exc, ImageLoadError) else str(exc))
                    for i, exc in batch.failures]
        keep = []
        for pos, (i, (digest, *_)) in enumerate(zip(batch.items, batch.payloads, strict=True)):
            if digest == photos[i][2]:
                keep.append(pos)
            else:
                failures.append((photos[i][0], CHANGED_PHOTO))
        yield StoredBatch(
            rowids=[photos[batch.items[pos]][0] for pos in keep],
            vectors=batch.vectors[keep] if len(keep) < len(batch.items) else batch.vectors,
            failures=failures,
        )


#: Rows validated, encoded and written at a time (see the module doc): ~200 MB of rows held,
#: and an engine started once per window (a Ray run's fixed cost is a few seconds).
WINDOW_ROWS = 100_000


def ingest(
    store: CatalogStore,
    encoder: Encoder,
    images_dir: Path,
    metadata: Path | None = None,
    *,
    limits: ImageLimits = ImageLimits(),
    batch_size: int = 4,
    chunk_size: int = 32,
    commit_items: int = 64,
    decode_threads: int = 2,
    engine: EncodeEngine | None = None,
    report_path: Path | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    pixel_taggers: Sequence[PixelTagger] = (),
    vector_taggers: Sequence[VectorTagger] = (),
    on_batch: Callable[[list[int], NDArray[np.float32]], None] | None = None,
    columns: dict[str, str] | None = None,
    reposts: RepostCheck | None = None,
    place_image: Callable[[Path, str], str] | None = None,
    window_rows: int = WINDOW_ROWS,
) -> IngestReport:
    """Add every valid, new row of `metadata` (or every image of `images_dir`) to `store`.

    Three stages, `window_rows` rows at a time: (a) the rows validated; (b) their photos
    decoded and encoded by `engine` (default: `LocalEngine(batch_size, chunk_size,
    decode_threads)`); (c) the results stored in file order by this thread. `columns`
    renames metadata columns (e.g. {"label": "category"}); a row without an id gets its image
    path as id. Items are committed `commit_items` at a time (a killed run loses at most
    those); `on_batch(rowids, vectors)` is called after each commit. `reposts` checks every
    new photo against the catalog and the run's earlier photos (None: no check).
    `place_image(path, hash)` returns the image path to store for a photo about to be stored
    (it may copy the file into the catalog: `lookalike.catalog.imagefiles`); without it, the
    resolved path.
    """
    start = time.perf_counter()
    images_dir = Path(images_dir)
    try:
        is_dir = images_dir.is_dir()
    except (OSError, ValueError):
        is_dir = False
    if not is_dir:
        raise LookalikeError(f"{images_dir}: not a folder of images")
    report = IngestReport()
    # the metadata file as a whole is checked here, before anything is stored
    if metadata is not None:
        source = read_metadata(metadata, columns)
        report.metadata_encoding = source.encoding_name
        raw_rows: Iterable[RawRow] = source
    else:
        raw_rows = rows_from_folder(images_dir)
    store.bind_model(encoder.name, encoder.dim)
    known_ids, known_hashes = store.known_keys()
    if reposts is not None and reposts.mode != "keep":
        reposts.finder.sync(store)
    # resolved once; each image's own path is resolved by the engine's workers (an lstat per
    # path component cost the writing thread 4% of a 300 images/s ingest)
    root = images_dir.resolve()

    writer = _Writer(store, report, known_hashes, commit_items, vector_taggers,
                     on_batch, progress, start, reposts, place_image)
    prepare = ImagePreparer(root, limits, encoder.preprocess, tuple(pixel_taggers),
                            seen=writer.seen)
    engine = engine or LocalEngine(batch_size, chunk_size, decode_threads)
    valid = validate_rows(raw_rows, root, known_ids, report)
    # (a) a window of rows validated (cheap; the progress bar's total is the rows validated
    #     so far: the whole file's when it fits in one window), (b) decoded + encoded by the
    #     engine, (c) stored in order in this thread. Duplicate images are resolved by the
    #     writer, in file order, so the first row always wins whatever the engine's timing.
    while window := list(itertools.islice(valid, max(1, window_rows))):
        writer.begin(window)
        for batch in engine.encode(encoder, [row.item.image for row in window], prepare):
            writer.write(batch)
    writer.commit()
    report.seconds = time.perf_counter() - start
    if report_path is not None and report.rejected:
        write_rejections(report.rejected, report_path)
        report.report_path = report_path
    return report


def validate_rows(
    raw_rows: Iterable[RawRow], root: Path, known_ids: set[str], report: IngestReport
) -> Iterator[_Row]:
    """Stage (a): the rows checked (schema, image path from its text), before any photo is
    read, as they are drawn. Rejected rows go to `report.rejected`; rows whose id is stored
    already (or came earlier) are counted as skipped. `known_ids` gains the ids of the rows
    kept."""
    for raw_row in raw_rows:
        number = raw_row.number
        item = validate_row(raw_row)
        if not isinstance(item, ItemIn):
            report.rejected.extend(item)
            continue
        if item.id is not None and item.id in known_ids:
            report.skipped += 1
            continue
        if item.id is not None:
            known_ids.add(item.id)
        yield _Row(number, item, root / item.image)


class _Writer:
    """Stage (c): an engine's batches into the store, in file order: failures rejected (or
    skipped as duplicates), duplicates by bytes skipped (the first row wins), vector taggers
    run, reposts checked (rejected naming the original, or flagged), items committed
    `commit_items` at a time, progress reported after each batch."""

    def __init__(
        self,
        store: CatalogStore,
        report: IngestReport,
        known_hashes: set[str],
        commit_items: int,
        vector_taggers: Sequence[VectorTagger],
        on_batch: Callable[[list[int], NDArray[np.float32]], None] | None,
        progress: Callable[[IngestProgress], None] | None,
        start: float,
        reposts: RepostCheck | None = None,
        place_image: Callable[[Path, str], str] | None = None,
    ) -> None:
        self.store, self.report = store, report
        #: the window of rows being encoded (an engine's batches index into it)
        self.rows: list[_Row] = []
        self.total = 0  # rows validated so far
        self.seen: set[str] = set(known_hashes)
        self.commit_items = commit_items
        self.vector_taggers = vector_taggers
        self.on_batch, self.progress, self.start = on_batch, progress, start
        #: None or mode "keep": no repost check
        self.reposts = reposts if reposts is not None and reposts.mode != "keep" else None
        self.place_image = place_image
        # Written in transactions of `commit_items`: in transactions of 8, the writer thread
        # spent ~0.2 ms of CPU per item beside the busy decoding threads, ~4x what storing
        # costs alone.
        self.pending: list[NewItem] = []
        self.pending_vectors: list[NDArray[np.float32]] = []
        self.done = 0

    def begin(self, window: list[_Row]) -> None:
        """The next window of validated rows: the engine's next batches index into it.
        Items still pending from the last window stay pending (they hold no row index)."""
        self.rows = window
        self.total += len(window)

    def write(self, batch: EncodedBatch[int, Payload]) -> None:
        report = self.report
        for index, failure in batch.failures:
            row = self.rows[index]
            if isinstance(failure, DuplicateImageError):
                report.skipped += 1
            else:
                reason = failure.reason if isinstance(failure, ImageLoadError) else str(failure)
                report.rejected.append(
                    Rejection(row.number, row.item.id or "", "image", reason, str(row.path))
                )
        unique = []
        for pos, (digest, *_) in enumerate(batch.payloads):
            if digest in self.seen:
                report.skipped += 1
            else:
                self.seen.add(digest)
                unique.append(pos)
        items, payloads, vectors = batch.items, batch.payloads, batch.vectors
        if len(unique) < len(items):
            items = [items[p] for p in unique]
            payloads = [payloads[p] for p in unique]
            vectors = vectors[unique]
        originals: dict[int, str] = {}  # position -> the id of the item it reposts (flagged)
        # the vectors' sketches, made once for the repost check and the store (else the store
        # makes them)
        sketches: NDArray[np.uint8] | None = None
        if self.reposts is not None and items:
            matches: dict[int, Match] = {}
            sketches = vector_sketches(vectors)
            keep = self.reposts.batch(
                self.store,
                [self.rows[i].item.id or digest[:16]
                 for i, (digest, *_) in zip(items, payloads, strict=True)],
                [p[3] for p in payloads], vectors, matches.__setitem__, sketches)
            for pos, match in matches.items():
                row = self.rows[items[pos]]
                note = Rejection(row.number, row.item.id or "", "image", repost_reason(match),
                                 str(row.path))
                flagged = self.reposts.mode == "flag"
                (report.flagged if flagged else report.rejected).append(note)
                if flagged:
                    originals[pos] = match.original_id
            if len(keep) < len(items):
                items = [items[p] for p in keep]
                payloads = [payloads[p] for p in keep]
                vectors = vectors[keep]
                sketches = sketches[keep]
                originals = {new: originals[old] for new, old in enumerate(keep)
                             if old in originals}
        if self.place_image is not None and items:  # the path to store (or a copy's)
            placed: list[Payload] = []
            kept: list[int] = []
            for pos, (index, (digest, tags, real_path, hashes)) in enumerate(
                zip(items, payloads, strict=True)
            ):
                try:
                    placed.append((digest, tags, self.place_image(Path(real_path), digest),
                                   hashes))
                    kept.append(pos)
                except (OSError, LookalikeError) as exc:  # one photo never stops an ingest
                    row = self.rows[index]
                    report.rejected.append(Rejection(
                        row.number, row.item.id or "", "image",
                        f"cannot store this photo in the catalog ({_short(exc)})", real_path))
            if len(kept) < len(items):
                items = [items[p] for p in kept]
                vectors = vectors[kept]
                if sketches is not None:
                    sketches = sketches[kept]
                originals = {new: originals[old] for new, old in enumerate(kept)
                             if old in originals}
            payloads = placed
        if items:
            vector_tags: list[dict[str, Tag]] = [{} for _ in items]
            for vtagger in self.vector_taggers:
                for slot, tags in zip(vector_tags, vtagger(vectors), strict=True):
                    slot.update(tags)
            for pos, (index, (digest, pixel_tags, real_path, phashes), vtags) in enumerate(zip(
                items, payloads, vector_tags, strict=True
            )):
                fields = self.rows[index].item
                predicted = {
                    name: tag
                    for name, tag in {**pixel_tags, **vtags}.items()
                    if not fields.gives(name)  # never overwrite a given value
                }
                self.pending.append(
                    NewItem(
                        id=fields.id or digest[:16],
                        fields=fields,
                        image_path=real_path,
                        image_hash=digest,
                        predicted=predicted,
                        phash=phashes[0],
                        duplicate_of=originals.get(pos),
                        sketch=None if sketches is None else sketches[pos].tobytes(),
                    )
                )
            self.pending_vectors.append(vectors)
            if len(self.pending) >= self.commit_items:
                self.commit()
        self.done += len(batch.items) + len(batch.failures)
        if self.progress is not None:
            self.progress(
                IngestProgress(
                    done=self.done,
                    total=self.total,
                    added=report.added + len(self.pending),  # encoded, committing soon
                    skipped=report.skipped,
                    rejected=len(report.rejected),
                    elapsed=time.perf_counter() - self.start,
                )
            )

    def commit(self) -> None:
        if not self.pending:
            return
        vectors = np.concatenate(self.pending_vectors)
        rowids = self.store.add(self.pending, vectors)
        if self.reposts is not None:
            self.reposts.finder.committed(self.store)
        self.report.added += len(rowids)
        self.report.added_rowids.extend(rowids)
        self.pending.clear()
        self.pending_vectors.clear()
        if self.on_batch is not None:
            self.on_batch(rowids, vectors)


#: A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A cell a spreadsheet shows as text: a leading formula character is quoted with '."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_rejections(rejections: Sequence[Rejection], path: Path) -> None:
    """CSV of what was rejected and why: row, id, field, reason, file (safe to open in a
    spreadsheet: no cell is read as a formula)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["row", "id", "field", "reason", "file"])
            for r in sorted(rejections, key=lambda r: r.row):
                writer.writerow([r.row, *map(_cell, (r.item_id, r.field, r.reason, r.file))])
    except OSError as exc:
        raise LookalikeError(f"{path}: cannot write the report ({exc.strerror or exc})") from None


def _short(value: object, limit: int = 200) -> str:
    """`value` as text of at most `limit` characters (ids and messages stay readable)."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
