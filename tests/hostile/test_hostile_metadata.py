"""Hostile metadata files through the library's ingest: every case of the generated corpus
(over 60: fields over the csv limit, invalid UTF-8, wrong JSON shapes, huge integers, deep
nesting, NUL bytes, byte-order marks, Excel exports, path escapes, unreadable files...) either
adds and rejects exactly the rows it should, each rejection with its reason, the ingest going
past it, or is one `MetadataError` naming the file. Nothing already stored changes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile.metadata_corpus import (
    GOOD,
    MetadataCase,
    csv_bytes,
    make_images,
    metadata_corpus,
    write_case,
)
from hostile.support import fake_settings, stored_rows
from lookalike import Catalog, ItemIn
from lookalike.attributes import default_taggers
from lookalike.catalog.metadata import read_metadata
from lookalike.errors import LookalikeError, MetadataError

CASES = metadata_corpus()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_images(tmp_path_factory.mktemp("hostile-metadata"))


def baseline_catalog(folder: Path, images: Path) -> Catalog:
    """A catalog that already holds one item: no hostile ingest may change it."""
    base_images = folder / "base-images"
    base_images.mkdir()
    (base_images / "base.jpg").write_bytes((images.parent / "base.jpg").read_bytes())
    base = folder / "base.csv"
    base.write_bytes(csv_bytes([{"id": "base", "image": "base.jpg", "title": "Stored"}]))
    catalog = Catalog.open(fake_settings(folder / "cat"), taggers=default_taggers)
    assert catalog.ingest(base_images, base).added == 1
    return catalog


def test_the_corpus_has_enough_cases() -> None:
    assert len(CASES) >= 60
    assert sum(1 for c in CASES if c.error) >= 12


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_metadata_case(case: MetadataCase, images: Path, tmp_path: Path) -> None:
    path = write_case(case, tmp_path)
    catalog = baseline_catalog(tmp_path, images)
    before = stored_rows(tmp_path / "cat")
    report_path = tmp_path / "rejected.csv"
    try:
        if case.error:
            with pytest.raises(MetadataError) as info:
                catalog.ingest(images, path, report_path=report_path, columns=case.columns)
            message = str(info.value)
            assert message.startswith(f"{path}: "), message
            assert case.error in message and "\n" not in message
            assert stored_rows(tmp_path / "cat") == before  # nothing stored, nothing changed
            return
        report = catalog.ingest(images, path, report_path=report_path, columns=case.columns)
        added = {row[1] for row in stored_rows(tmp_path / "cat")} - {"base"}
    finally:
        catalog.close()
    # the ingest went past every bad row: these were added, and only these
    assert case.added <= added, (added, report.rejected)
    if case.exact:
        assert added == case.added, report.rejected
    # each expected rejection, with its reason (one line, naming the field)
    by_row: dict[int, list[str]] = {}
    for r in report.rejected:
        assert r.reason.strip() and "\n" not in r.reason and len(r.reason) < 400, r
        by_row.setdefault(r.row, []).append(f"{r.field}: {r.reason}")
    for row, words in case.rejected.items():
        assert row in by_row, (row, report.rejected)
        assert any(words.lower() in text.lower() for text in by_row[row]), by_row[row]
    if case.exact:
        assert set(by_row) == set(case.rejected), by_row
    # the item stored before is untouched, titles decoded as they were written
    assert stored_rows(tmp_path / "cat")[0] == before[0]
    with Catalog.open(fake_settings(tmp_path / "cat"), taggers=default_taggers) as again:
        for item_id, title in case.titles.items():
            assert again.get(item_id).title == title
    if report.rejected:
        check_report_file(report_path, len(report.rejected))


def check_report_file(path: Path, rows: int) -> None:
    """rejected.csv: one line per rejection, no cell a spreadsheet would run as a formula."""
    with path.open(newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["row", "id", "field", "reason", "file"]
    assert len(lines) == rows + 1
    for line in lines[1:]:
        for cell in line:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), line


def test_a_formula_in_a_rejected_row_is_quoted_in_the_report(images: Path, tmp_path: Path) -> None:
    meta = tmp_path / "items.csv"
    meta.write_bytes(csv_bytes([{"id": '=HYPERLINK("http://evil")', "image": "img0.jpg"},
                                {"id": "ok", "image": "@img1.jpg"}]))
    with Catalog.open(fake_settings(tmp_path / "cat"), taggers=default_taggers) as catalog:
        report = catalog.ingest(images, meta, report_path=tmp_path / "rejected.csv")
    assert len(report.rejected) == 2
    text = (tmp_path / "rejected.csv").read_text()
    assert "'=HYPERLINK" in text and "'@img1.jpg" not in text  # the file column is absolute
    check_report_file(tmp_path / "rejected.csv", 2)


def test_the_encoding_is_reported(images: Path, tmp_path: Path) -> None:
    meta = tmp_path / "excel.csv"
    meta.write_bytes("id;image;title\nx;img0.jpg;Robe d'été\n".encode("cp1252"))
    with Catalog.open(fake_settings(tmp_path / "cat"), taggers=default_taggers) as catalog:
        report = catalog.ingest(images, meta)
        assert report.metadata_encoding == "Windows-1252"
        assert report.as_dict()["metadata_encoding"] == "Windows-1252"
        assert catalog.get("x").title == "Robe d'été"


def test_an_excel_export_with_decimal_commas_just_works(images: Path, tmp_path: Path) -> None:
    meta = tmp_path / "export.csv"
    meta.write_bytes("id;image;title;price;sustainability\r\n"
                     "a;img0.jpg;Robe d'été;12,50;3,5\r\n"
                     "b;img1.jpg;Manteau;1.249,90;\r\n".encode("cp1252"))
    with Catalog.open(fake_settings(tmp_path / "cat"), taggers=default_taggers) as catalog:
        report = catalog.ingest(images, meta)
        assert report.rejected == []
        assert (catalog.get("a").price, catalog.get("a").sustainability) == (12.5, 3.5)
        assert catalog.get("b").price == 1249.9


def test_a_bom_no_longer_loses_the_first_row(images: Path, tmp_path: Path) -> None:
    meta = tmp_path / "items.jsonl"
    meta.write_bytes(b'\xef\xbb\xbf{"id": "first", "image": "img0.jpg"}\n'
                     b'{"id": "second", "image": "img1.jpg"}\n')
    with Catalog.open(fake_settings(tmp_path / "cat"), taggers=default_taggers) as catalog:
        report = catalog.ingest(images, meta)
    assert (report.added, report.rejected) == (2, [])


# -- fuzzing ------------------------------------------------------------------------------------

_FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)
_FIELDS = st.sampled_from(["id", "image", "title", "price", "kids", "sizes", "extra", "url",
                           "currency", "sustainability", "second_hand", "x", ""])


@_FUZZ
@given(st.dictionaries(_FIELDS, _JSON, max_size=8))
def test_fuzz_row_validation(row: dict[str, object]) -> None:
    """Any JSON-shaped row: a valid item or a pydantic ValidationError, nothing else."""
    from pydantic import ValidationError

    try:
        ItemIn.model_validate(row)
    except ValidationError as exc:
        assert exc.errors()


@_FUZZ
@given(st.lists(st.binary(max_size=80), max_size=8),
       st.sampled_from([".csv", ".jsonl"]), st.booleans())
def test_fuzz_metadata_files(tmp_path_factory: pytest.TempPathFactory, lines: list[bytes],
                             suffix: str, header: bool) -> None:
    """Random bytes as rows: every record becomes a row or a rejection with its reason; only
    the file as a whole may raise, as a MetadataError."""
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / f"items{suffix}"
    head = b"id,image,title\n" if header and suffix == ".csv" else b""
    path.write_bytes(head + b"\n".join(lines))
    try:
        rows = list(read_metadata(path))
    except MetadataError as exc:
        assert str(exc).startswith(f"{path}: ")
        return
    for row in rows:
        assert (row.fields is None) == bool(row.problem)


@_FUZZ
@given(st.lists(st.dictionaries(_FIELDS, _JSON, max_size=6), min_size=1, max_size=5))
def test_fuzz_ingest_of_json_rows(images: Path, tmp_path_factory: pytest.TempPathFactory,
                                  rows: list[dict[str, object]]) -> None:
    import json

    folder = tmp_path_factory.mktemp("fuzz-ingest")
    path = folder / "items.jsonl"
    lines = []
    for row in [GOOD, *rows]:
        try:
            lines.append(json.dumps(row))
        except ValueError:
            lines.append("{")
    path.write_text("\n".join(lines) + "\n")
    with Catalog.open(fake_settings(folder / "cat"), taggers=default_taggers) as catalog:
        try:
            report = catalog.ingest(images, path)
        except LookalikeError as exc:  # only a whole-file problem may stop it
            assert isinstance(exc, MetadataError), exc
            return
    assert report.added >= 1  # the good row always
    assert all(r.reason for r in report.rejected)
