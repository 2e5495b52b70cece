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
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydantic import ValidationError

from lookalike.catalog.duplicates import Match, RepostCheck, perceptual_hashes, repost_reason
from lookalike.catalog.metadata import RawRow, read_metadata
from lookalike.catalog.schema import OUTSIDE, ItemIn, Tag, image_path_problem
from lookalike.catalog.store import CatalogStore, NewItem
from lookalike.encoders.base import Encoder
from lookalike.encoders.pipeline import encode_stream
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


class _DuplicateError(Exception):
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
    report_path: Path | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    pixel_taggers: Sequence[PixelTagger] = (),
    vector_taggers: Sequence[VectorTagger] = (),
    on_batch: Callable[[list[int], NDArray[np.float32]], None] | None = None,
    columns: dict[str, str] | None = None,
    reposts: RepostCheck | None = None,
) -> IngestReport:
    """Add every valid, new row of `metadata` (or every image of `images_dir`) to `store`.

    `columns` renames metadata columns (e.g. {"label": "category"}); a row without an id gets
    its image path as id. Items are committed `commit_items` at a time (a killed run loses
    at most those); `on_batch(rowids, vectors)` is called after each commit. `reposts`
    checks every new photo against the catalog and the run's earlier photos (None: no check).
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
    # resolved once; each image's own path is resolved in the decoding threads (an lstat per
    # path component cost the writing thread 4% of a 300 images/s ingest)
    root = images_dir.resolve()

    # 1. validate every row up front (cheap), so the total for the progress bar is known
    rows: list[_Row] = []
    for raw_row in raw_rows:
        number, raw = raw_row.number, raw_row.fields
        if raw is None:
            report.rejected.append(
                Rejection(number, "", raw_row.field, raw_row.problem, raw_row.file)
            )
            continue
        image = raw.get("image")
        if not raw.get("id") and isinstance(image, str) and image.strip():
            raw = {**raw, "id": default_id(image.strip())}
        try:
            item = ItemIn.model_validate(raw)
        except ValidationError as exc:
            item_id = _short(raw.get("id"))
            for fld, reason in _describe(exc):
                report.rejected.append(Rejection(number, item_id, fld, reason))
            continue
        except (TypeError, OverflowError, RecursionError) as exc:  # a value no check foresaw
            report.rejected.append(Rejection(number, _short(raw.get("id")), "row",
                                             f"invalid value ({_short(exc)})"))
            continue
        problem = image_path_problem(item.image)  # from the text alone, before any file
        if problem is not None:
            report.rejected.append(Rejection(number, item.id or "", "image", problem))
            continue
        if item.id is not None and item.id in known_ids:
            report.skipped += 1
            continue
        rows.append(_Row(number, item, root / item.image))
        if item.id is not None:
            known_ids.add(item.id)

    # 2. decode + encode in worker threads, store in order in this thread. Duplicate images are
    #    resolved here, in file order, so the first row always wins whatever the thread timing.
    seen_hashes: set[str] = set(known_hashes)
    preprocess = encoder.preprocess
    draft = (preprocess.resize_size, preprocess.resize_size)

    def prepare(
        row: _Row,
    ) -> tuple[NDArray[np.uint8], tuple[str, dict[str, Tag], str, tuple[int, int]]]:
        try:
            path = resolve_image(root, row.item.image)  # before the file is opened
            data = read_image_bytes(path, limits, follow_symlinks=False)
            digest = content_hash(data)
            if digest in seen_hashes:  # cheap early exit; the ordered check below is the real one
                raise _DuplicateError(digest)
            img = load_image(data, limits=limits, name=str(row.path), draft_size=draft)
            tags: dict[str, Tag] = {}
            for tagger in pixel_taggers:
                tags.update(tagger(img))
            crop = preprocess.resize_crop(img)  # normalised into the batch
            phashes = perceptual_hashes(img)
        except (ImageLoadError, _DuplicateError):
            raise
        except Exception as exc:  # one image never stops an ingest, whatever a library raises
            raise ImageLoadError(
                str(row.path), f"cannot process this image ({type(exc).__name__}: {_short(exc)})"
            ) from exc
        return crop, (digest, tags, str(path), phashes)

    # Written in transactions of `commit_items`: in transactions of 8, the writer thread spent
    # ~0.2 ms of CPU per item beside the busy decoding threads, ~4x what storing costs alone.
    pending: list[NewItem] = []
    pending_vectors: list[NDArray[np.float32]] = []

    def commit() -> None:
        if not pending:
            return
        vectors = np.concatenate(pending_vectors)
        rowids = store.add(pending, vectors)
        if reposts is not None and reposts.mode != "keep":
            reposts.finder.committed(store)
        report.added += len(rowids)
        report.added_rowids.extend(rowids)
        pending.clear()
        pending_vectors.clear()
        if on_batch is not None:
            on_batch(rowids, vectors)

    done = 0
    for batch in encode_stream(
        encoder,
        rows,
        prepare,
        batch_size=batch_size,
        chunk_size=chunk_size,
        decode_threads=decode_threads,
        expected=(ImageLoadError, _DuplicateError),
    ):
        done += len(batch.items) + len(batch.failures)
        for row, failure in batch.failures:
            if isinstance(failure, _DuplicateError):
                report.skipped += 1
            else:
                reason = failure.reason if isinstance(failure, ImageLoadError) else str(failure)
                report.rejected.append(
                    Rejection(row.number, row.item.id or "", "image", reason, str(row.path))
                )
        unique = []
        for pos, (digest, *_) in enumerate(batch.payloads):
            if digest in seen_hashes:
                report.skipped += 1
            else:
                seen_hashes.add(digest)
                unique.append(pos)
        if len(unique) < len(batch.items):
            batch.items = [batch.items[p] for p in unique]
            batch.payloads = [batch.payloads[p] for p in unique]
            batch.vectors = batch.vectors[unique]
        originals: dict[int, str] = {}  # position → the id of the item it reposts (flagged)
        if reposts is not None and reposts.mode != "keep" and batch.items:
            matches: dict[int, Match] = {}
            keep = reposts.batch(
                store,
                [row.item.id or digest[:16]
                 for row, (digest, *_) in zip(batch.items, batch.payloads, strict=True)],
                [p[3] for p in batch.payloads], batch.vectors, matches.__setitem__)
            for pos, match in matches.items():
                row = batch.items[pos]
                note = Rejection(row.number, row.item.id or "", "image", repost_reason(match),
                                 str(row.path))
                (report.rejected if reposts.mode == "reject" else report.flagged).append(note)
            if reposts.mode == "flag":
                originals = {pos: m.original_id for pos, m in matches.items()}
            if len(keep) < len(batch.items):
                batch.items = [batch.items[p] for p in keep]
                batch.payloads = [batch.payloads[p] for p in keep]
                batch.vectors = batch.vectors[keep]
        if batch.items:
            vector_tags: list[dict[str, Tag]] = [{} for _ in batch.items]
            for vtagger in vector_taggers:
                for slot, tags in zip(vector_tags, vtagger(batch.vectors), strict=True):
                    slot.update(tags)
            new_items = []
            for pos, (row, (digest, pixel_tags, real_path, phashes), vtags) in enumerate(zip(
                batch.items, batch.payloads, vector_tags, strict=True
            )):
                fields = row.item
                predicted = {
                    name: tag
                    for name, tag in {**pixel_tags, **vtags}.items()
                    if not fields.gives(name)  # never overwrite a given value
                }
                new_items.append(
                    NewItem(
                        id=row.item.id or digest[:16],
                        fields=fields,
                        image_path=real_path,
                        image_hash=digest,
                        predicted=predicted,
                        phash=phashes[0],
                        duplicate_of=originals.get(pos),
                    )
                )
            pending.extend(new_items)
            pending_vectors.append(batch.vectors)
            if len(pending) >= commit_items:
                commit()
        if progress is not None:
            progress(
                IngestProgress(
                    done=done,
                    total=len(rows),
                    added=report.added + len(pending),  # encoded, committing soon
                    skipped=report.skipped,
                    rejected=len(report.rejected),
                    elapsed=time.perf_counter() - start,
                )
            )

    commit()
    report.seconds = time.perf_counter() - start
    if report_path is not None and report.rejected:
        write_rejections(report.rejected, report_path)
        report.report_path = report_path
    return report


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
