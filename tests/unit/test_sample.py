"""The sample catalog shipped in the package: complete, loadable, small, consistent."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

import lookalike.images
from lookalike.catalog.brands import normalise_brand, read_brand_ratings
from lookalike.catalog.schema import KNOWN_FIELDS, STATES
from lookalike.images import load_image

SAMPLE = Path(lookalike.images.__file__).resolve().parent / "data" / "sample"
MAX_BYTES = 5 * 1024 * 1024
COLUMNS = [*KNOWN_FIELDS, "sender_id"]


def _csv_rows() -> list[dict[str, str]]:
    with (SAMPLE / "catalog.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def _jsonl_rows() -> list[dict[str, Any]]:
    with (SAMPLE / "catalog.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return _csv_rows()


def test_files_present() -> None:
    for name in ("catalog.csv", "catalog.jsonl", "brand_ratings.csv", "README.md", "LICENSE"):
        assert (SAMPLE / name).is_file(), name
    assert "CC0 1.0" in (SAMPLE / "LICENSE").read_text(encoding="utf-8")


def test_size_and_count(rows: list[dict[str, str]]) -> None:
    assert 250 <= len(rows) <= 400
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total <= MAX_BYTES, f"sample is {total:,} bytes"


def test_ids_unique(rows: list[dict[str, str]]) -> None:
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(r["image"] == f"{r['id']}.jpg" for r in rows)


def test_every_image_exists_and_loads(rows: list[dict[str, str]]) -> None:
    for row in rows:
        path = SAMPLE / "images" / row["image"]
        assert path.is_file(), path
        img = load_image(path)
        assert img.mode == "RGB"
        assert max(img.size) == 256, (path, img.size)


def test_no_stray_images(rows: list[dict[str, str]]) -> None:
    on_disk = {p.name for p in (SAMPLE / "images").iterdir()}
    assert on_disk == {r["image"] for r in rows}


def test_metadata_is_stripped(rows: list[dict[str, str]]) -> None:
    from PIL import Image

    for row in rows[:20]:
        with Image.open(SAMPLE / "images" / row["image"]) as img:
            assert not img.getexif()
            assert "icc_profile" not in img.info


def test_field_values(rows: list[dict[str, str]]) -> None:
    categories = {r["category"] for r in rows}
    assert len(categories) >= 15
    assert not categories & {"Not sure", "Skip", "Other", ""}
    assert len({r["sender_id"] for r in rows}) >= 100
    for r in rows:
        assert r["kids"] in ("true", "false")
        assert r["second_hand"] in ("true", "false")
        assert r["currency"] == "EUR"
        assert r["source"] == "clothing-dataset"
        assert r["department"] == r["colour"] == r["url"] == ""
        assert r["title"] and r["brand"]
        assert 0 < float(r["price"]) < 1000
        assert 0.0 <= float(r["sustainability"]) <= 5.0
        assert r["sizes"] and all(s.strip() == s and s for s in r["sizes"].split(";"))
        assert r["sender_id"].isdigit()
        assert r["state"] in STATES
        assert r["rating"] == "" or 0.0 <= float(r["rating"]) <= 5.0
        assert (r["reviews"] == "") == (r["rating"] == "")
    share = sum(r["second_hand"] == "true" for r in rows) / len(rows)
    assert 0.25 <= share <= 0.55
    states = {s: sum(r["state"] == s for r in rows) for s in STATES}
    assert states["sold"] >= 5 and states["reserved"] >= 5  # something for the demo to show


def test_brand_ratings_are_marked_invented_and_rate_the_sample(rows: list[dict[str, str]]) -> None:
    path = SAMPLE / "brand_ratings.csv"
    assert path.read_text(encoding="utf-8").startswith("# INVENTED FOR THE DEMO")
    parsed = read_brand_ratings(path)
    assert not parsed.errors
    rated = {r.key for r in parsed.ratings}
    brands = {normalise_brand(r["brand"]) for r in rows}
    assert rated < brands  # every rating is of a sample brand; some brands stay unrated


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(value)
    return str(value)


def test_csv_and_jsonl_agree(rows: list[dict[str, str]]) -> None:
    records = _jsonl_rows()
    assert len(records) == len(rows)
    for row, rec in zip(rows, records, strict=True):
        assert list(rec) == COLUMNS
        assert isinstance(rec["sizes"], list)
        assert isinstance(rec["kids"], bool) and isinstance(rec["second_hand"], bool)
        for column in COLUMNS:
            if column in ("price", "sustainability", "rating") and rec[column] is not None:
                assert float(row[column]) == pytest.approx(rec[column]), (row["id"], column)
            else:
                assert row[column] == _cell(rec[column]), (row["id"], column)
