"""Reposts caught at ingest and on POST /items: a folder of sample photos with resized,
recompressed, cropped and mirrored copies, a real SQLite catalog, the API through TestClient.
The `fake` encoder keeps it fast; the last test runs the real default model (slow)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.api import create_app
from lookalike.api.deps import hash_admin_key
from lookalike.attributes import default_taggers
from lookalike.catalog import Catalog
from lookalike.config import Settings
from lookalike.demo import sample_images

ADMIN_KEY = "dup-admin-key-81a"
ADMIN = {"X-API-Key": ADMIN_KEY}
ORIGINALS = sorted(sample_images().glob("*.jpg"))[:8]


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def repost_bytes(path: Path, kind: str) -> bytes:
    with Image.open(path) as opened:
        img = opened.convert("RGB")
    w, h = img.size
    if kind == "resized":
        return jpeg(img.resize((w * 6 // 10, h * 6 // 10), Image.Resampling.BICUBIC), 70)
    if kind == "mirrored":
        return jpeg(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 85)
    if kind == "cropped":
        return jpeg(img.crop((w * 3 // 100, h * 2 // 100, w - w // 100, h - h * 2 // 100)), 50)
    raise ValueError(kind)


#: (repost file, original index, kind): named after the originals, so they come later in order
REPOSTS = [("z1-resized.jpg", 0, "resized"), ("z2-mirrored.jpg", 3, "mirrored"),
           ("z3-cropped.jpg", 5, "cropped")]


def folder_with_reposts(root: Path) -> Path:
    images = root / "images"
    images.mkdir(parents=True)
    for i, path in enumerate(ORIGINALS):
        (images / f"a{i}.jpg").write_bytes(path.read_bytes())
    for name, original, kind in REPOSTS:
        (images / name).write_bytes(repost_bytes(ORIGINALS[original], kind))
    return images


def settings(folder: Path, **overrides: Any) -> Settings:
    return Settings(catalog_dir=folder, model="fake", admin_key_hash=hash_admin_key(ADMIN_KEY),
                    **overrides)


def test_ingest_rejects_reposts_naming_the_original(tmp_path: Path) -> None:
    images = folder_with_reposts(tmp_path)
    with Catalog.open(settings(tmp_path / "cat", duplicates="reject"),
                      taggers=default_taggers) as cat:
        report = cat.ingest(images, report_path=tmp_path / "rejected.csv")
        assert report.added == len(ORIGINALS)
        assert {i.id for i in cat.items(limit=100)} == {f"a{i}" for i in range(len(ORIGINALS))}
        reasons = {r.item_id: r.reason for r in report.rejected}
        assert set(reasons) == {name.removesuffix(".jpg") for name, _, _ in REPOSTS}
        for name, original, _ in REPOSTS:
            assert reasons[name.removesuffix(".jpg")].startswith(f"repost of item a{original} ")
        assert report.as_dict()["reposts"] == len(REPOSTS)
        with (tmp_path / "rejected.csv").open() as f:
            rows = {r["id"]: r for r in csv.DictReader(f)}
        assert rows["z2-mirrored"]["reason"].startswith("repost of item a3 ")
        assert rows["z2-mirrored"]["file"].endswith("z2-mirrored.jpg")
        # a rerun adds nothing and reports the reposts again (they are never stored)
        again = cat.ingest(images)
        assert again.added == 0 and len(again.rejected) == len(REPOSTS)


def test_reposts_within_one_run_and_against_the_catalog(tmp_path: Path) -> None:
    images = folder_with_reposts(tmp_path)
    first = tmp_path / "first"
    first.mkdir()
    (images / "a0.jpg").rename(first / "a0.jpg")  # the original is stored by an earlier run
    with Catalog.open(settings(tmp_path / "cat", duplicates="reject"),
                      taggers=default_taggers) as cat:
        assert cat.ingest(first).added == 1
        report = cat.ingest(images)
        assert {r.item_id for r in report.rejected} == {"z1-resized", "z2-mirrored",
                                                         "z3-cropped"}
        assert report.added == len(ORIGINALS) - 1


def test_flag_mode_adds_reposts_with_their_original(tmp_path: Path) -> None:
    images = folder_with_reposts(tmp_path)
    with Catalog.open(settings(tmp_path / "cat", duplicates="flag"),
                      taggers=default_taggers) as cat:
        report = cat.ingest(images)
        assert report.added == len(ORIGINALS) + len(REPOSTS) and not report.rejected
        assert len(report.flagged) == len(REPOSTS)
        flags = {i.id: i.duplicate_of for i in cat.items(limit=100)}
        assert flags == {**{f"a{i}": None for i in range(len(ORIGINALS))},
                         "z1-resized": "a0", "z2-mirrored": "a3", "z3-cropped": "a5"}


def test_keep_mode_adds_reposts_unchecked(tmp_path: Path) -> None:
    images = folder_with_reposts(tmp_path)
    with Catalog.open(settings(tmp_path / "cat", duplicates="keep"),
                      taggers=default_taggers) as cat:
        report = cat.ingest(images)
        assert report.added == len(ORIGINALS) + len(REPOSTS) and not report.flagged
        assert all(i.duplicate_of is None for i in cat.items(limit=100))


def api_client(tmp_path: Path, mode: str) -> tuple[Catalog, TestClient]:
    images = tmp_path / "images"
    images.mkdir()
    for i, path in enumerate(ORIGINALS):
        (images / f"a{i}.jpg").write_bytes(path.read_bytes())
    cat = Catalog.open(settings(tmp_path / "cat", duplicates=mode), taggers=default_taggers)
    assert cat.ingest(images).added == len(ORIGINALS)
    return cat, TestClient(create_app(cat.settings, cat))


def test_post_items_answers_409_with_the_original(tmp_path: Path) -> None:
    cat, client = api_client(tmp_path, "reject")
    with cat:
        photo = repost_bytes(ORIGINALS[3], "mirrored")
        response = client.post("/items", files={"image": ("m.jpg", photo, "image/jpeg")},
                               data={"item": '{"id": "again"}'}, headers=ADMIN)
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["original_id"] == "a3" and "repost of item a3" in body["detail"]
        assert client.get("/items/again").status_code == 404
        assert not list((tmp_path / "cat" / "uploads").glob("*"))  # the upload is not kept
        # a photo of its own is added
        fresh = ORIGINALS[-1].parent / sorted(p.name for p in sample_images().glob("*.jpg"))[40]
        added = client.post("/items", files={"image": ("n.jpg", fresh.read_bytes(),
                                                       "image/jpeg")},
                            data={"item": '{"id": "new"}'}, headers=ADMIN)
        assert added.status_code == 201, added.text
        assert added.json()["duplicate_of"] is None
        # and a repost of an item added through the API is caught too
        copy = client.post("/items", files={"image": ("c.jpg", jpeg(
            Image.open(fresh).convert("RGB").resize((200, 266)), 60), "image/jpeg")},
            headers=ADMIN)
        assert copy.status_code == 409 and copy.json()["original_id"] == "new"


def test_post_items_flags_a_repost_in_flag_mode(tmp_path: Path) -> None:
    cat, client = api_client(tmp_path, "flag")
    with cat:
        photo = repost_bytes(ORIGINALS[5], "cropped")
        response = client.post("/items", files={"image": ("c.jpg", photo, "image/jpeg")},
                               data={"item": '{"id": "copy"}'}, headers=ADMIN)
        assert response.status_code == 201, response.text
        assert response.json()["duplicate_of"] == "a5"
        assert client.get("/items/copy").json()["duplicate_of"] == "a5"


@pytest.mark.slow
def test_real_model_rejects_reposts_and_keeps_the_sample(tmp_path: Path) -> None:
    """The default model and thresholds: the reposts are caught, and none of the 306 distinct
    sample photos is taken for a repost of another."""
    images = folder_with_reposts(tmp_path)
    for path in sorted(sample_images().glob("*.jpg")):
        (images / f"s-{path.name}").write_bytes(path.read_bytes())  # the originals again,
    real = Settings(catalog_dir=tmp_path / "cat", duplicates="reject")  # as byte copies
    with Catalog.open(real, taggers=default_taggers) as cat:
        report = cat.ingest(images)
        reposts = {r.item_id for r in report.rejected}
        assert reposts == {"z1-resized", "z2-mirrored", "z3-cropped"}, report.rejected
        assert report.added == 306 and report.skipped == len(ORIGINALS)


def test_cli_ingest_reports_reposts_and_takes_the_mode(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lookalike.cli import app

    images = folder_with_reposts(tmp_path)
    runner = CliRunner()
    cat = str(tmp_path / "cat")
    res = runner.invoke(app, ["ingest", str(images), "-c", cat, "-m", "fake",
                              "--duplicates", "reject"])
    assert res.exit_code == 0, res.output
    assert "repost of item a3" in res.stdout
    with (tmp_path / "cat" / "rejected.csv").open() as f:
        assert {r["id"] for r in csv.DictReader(f)} == {"z1-resized", "z2-mirrored",
                                                        "z3-cropped"}
    res = runner.invoke(app, ["ingest", str(images), "-c", str(tmp_path / "flagged"), "-m",
                              "fake", "--duplicates", "flag", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["added"], summary["flagged"], summary["reposts"]) == (11, 3, 0)
    res = runner.invoke(app, ["ingest", str(images), "-c", cat, "--duplicates", "maybe"])
    assert res.exit_code == 2 and "reject, flag or keep" in res.output
