"""Shared by the Ray engine tests: a folder of real photos with a metadata file that has every
kind of row an ingest meets (good, duplicate bytes, broken photo, missing photo, a path out of
the folder, a bad price), the local engine's catalog of it as the reference, and the checks
that another catalog holds the same items."""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lookalike import Catalog, Settings
from lookalike.attributes import default_taggers
from lookalike.demo import sample_images, sample_metadata


def need_ray() -> Any:
    """The `ray` module; without it the calling test module is skipped, unless
    LOOKALIKE_REQUIRE_SERVERS=1 (CI: a Ray cluster counts as one of the real servers), where
    a missing Ray fails instead of hiding its tests."""
    if os.environ.get("LOOKALIKE_REQUIRE_SERVERS") == "1":
        import ray

        return ray
    return pytest.importorskip("ray")

GOOD = 60  # sample photos
#: rows beyond the good ones, with what the ingest does with them
EXTRA = {
    "dup-of-first": "skipped: same bytes as the first photo",
    "broken": "rejected: a truncated JPEG",
    "missing": "rejected: no such file",
    "outside": "rejected: a path out of the images folder",
    "bad-price": "rejected: price is not a number",
}


@dataclass(frozen=True)
class Photos:
    images: Path
    metadata: Path


@dataclass(frozen=True)
class Snapshot:
    items: dict[str, dict[str, object]]  # id -> every stored field but rowid and times
    vectors: dict[str, np.ndarray]
    rejected: list[list[str]]  # rejected.csv's rows, header first
    report: dict[str, object]


def make_photos(folder: Path) -> Photos:
    images = folder / "images"
    images.mkdir(parents=True)
    with sample_metadata().open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = [row for _, row in zip(range(GOOD), reader, strict=False)]
    for row in rows:
        shutil.copyfile(sample_images() / row["image"], images / row["image"])
    first = images / rows[0]["image"]
    shutil.copyfile(first, images / "copy-of-first.jpg")
    (images / "broken.jpg").write_bytes(first.read_bytes()[:600])
    base = {**rows[1], "price": "20"}
    rows += [
        {**base, "id": "dup-of-first", "image": "copy-of-first.jpg"},
        {**base, "id": "broken", "image": "broken.jpg"},
        {**base, "id": "missing", "image": "missing.jpg"},
        {**base, "id": "outside", "image": "../outside.jpg"},
        {**base, "id": "bad-price", "image": rows[2]["image"], "price": "abc"},
    ]
    metadata = folder / "items.csv"
    with metadata.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return Photos(images, metadata)


def snapshot(catalog: Path, report: dict[str, object] | None = None) -> Snapshot:
    with Catalog.open(Settings(catalog_dir=catalog), create=False, taggers=default_taggers) as cat:
        ids, vecs = cat.store.vectors()
        items = cat.store.get_many(ids.tolist())
        rowids, hashes = cat.store.phashes_after(0)  # perceptual hashes (reposts)
    phash = dict(zip(rowids.tolist(), hashes.tolist(), strict=True))
    rejected_csv = catalog / "rejected.csv"
    rejected = []
    if rejected_csv.exists():
        with rejected_csv.open(encoding="utf-8", newline="") as f:
            rejected = list(csv.reader(f))
    return Snapshot(
        items={it.id: {**it.model_dump(exclude={"rowid", "created_at", "updated_at"}),
                       "phash": phash.get(it.rowid)}
               for it in items},
        vectors={it.id: v for it, v in zip(items, vecs, strict=True)},
        rejected=rejected,
        report={k: v for k, v in (report or {}).items()
                if k in ("added", "skipped", "rejected")},
    )


def assert_same(got: Snapshot, want: Snapshot) -> None:
    """The same items (every field, tags, hashes, paths), in the same order, vectors at cosine
    >= 0.9999 each, the same rejected rows and counts."""
    assert list(got.items) == list(want.items)  # same ids, stored in file order
    assert all(fields["phash"] is not None for fields in want.items.values())
    for key, fields in want.items.items():
        assert got.items[key] == fields, key
        cosine = float(got.vectors[key] @ want.vectors[key])
        assert cosine >= 0.9999, (key, cosine)
    assert got.rejected == want.rejected
    assert got.report == want.report


def stored_rows(catalog: Path) -> tuple[int, int, int]:
    """(items, distinct ids, distinct image hashes) in the catalog file, 0s if none yet."""
    db = catalog / "catalog.sqlite"
    if not db.exists():
        return 0, 0, 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT id), count(DISTINCT image_hash) FROM items"
            ).fetchone()
            return int(row[0]), int(row[1]), int(row[2])
    except sqlite3.OperationalError:
        return 0, 0, 0


# tests/conftest.py imports these (once for the session); tests ask for them by fixture name.
@pytest.fixture(scope="session", name="ray_photos")
def ray_photos_fixture(tmp_path_factory: pytest.TempPathFactory) -> Photos:
    return make_photos(tmp_path_factory.mktemp("ray-photos"))


@pytest.fixture(scope="session", name="local_reference")
def local_reference_fixture(
    ray_photos: Photos, tmp_path_factory: pytest.TempPathFactory
) -> Snapshot:
    """The local engine's catalog of `ray_photos` (the default, real model)."""
    folder = tmp_path_factory.mktemp("local-reference")
    with Catalog.open(Settings(catalog_dir=folder), taggers=default_taggers) as cat:
        report = cat.ingest(ray_photos.images, ray_photos.metadata,
                            report_path=folder / "rejected.csv")
    assert report.added == GOOD and report.skipped == 1 and len(report.rejected) == 4
    return snapshot(folder, report.as_dict())
