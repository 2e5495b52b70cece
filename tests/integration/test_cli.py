"""The CLI end to end (in-process Typer runner) on generated images with the fake encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog_factory import make_dataset
from lookalike.cli import app

runner = CliRunner()


def test_ingest_search_similar_info(tmp_path: Path) -> None:
    images, meta, rows = make_dataset(tmp_path, 24)
    cat = str(tmp_path / "cat")
    res = runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", cat,
                              "-m", "fake", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["added"] == 24

    res = runner.invoke(app, ["search", str(images / rows[1]["image"]), "-k", "3", "-c", cat,
                              "--json", "-f", "category=Shoes"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert hits[0]["id"] == rows[1]["id"] and len(hits) == 3
    assert all(h["category"] == "Shoes" for h in hits)

    res = runner.invoke(app, ["similar", rows[1]["id"], "-c", cat, "--json"])
    assert res.exit_code == 0 and rows[1]["id"] not in [h["id"] for h in json.loads(res.stdout)]

    res = runner.invoke(app, ["search", str(images / rows[1]["image"]), "-c", cat])
    assert res.exit_code == 0 and "look-alikes" in res.stdout

    res = runner.invoke(app, ["info", "-c", cat, "--json"])
    assert json.loads(res.stdout)["items"] == 24


def test_clear_errors_and_exit_codes(tmp_path: Path) -> None:
    images, meta, _ = make_dataset(tmp_path, 4)
    cat = str(tmp_path / "cat")
    runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", cat, "-m", "fake"])
    res = runner.invoke(app, ["search", str(images / "img0001.jpg"), "-c", cat, "-f", "colr=red"])
    assert res.exit_code == 2 and "unknown field 'colr'" in res.output
    res = runner.invoke(app, ["similar", "nope", "-c", cat])
    assert res.exit_code == 2 and "no item with id 'nope'" in res.output
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    res = runner.invoke(app, ["search", str(tmp_path / "bad.jpg"), "-c", cat])
    assert res.exit_code == 2 and "bad.jpg" in res.output and "not an image" in res.output


def test_result_table_fits_the_terminal_and_keeps_the_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rich squeezed the columns allowed to wrap (#, score, 2nd hand) to nothing in an 80-column
    # terminal; now the least needed columns are left out instead
    import re

    from rich.console import Console

    import lookalike.cli.catalog as cli_catalog

    images, meta, rows = make_dataset(tmp_path, 12)
    cat = str(tmp_path / "cat")
    assert runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", cat,
                               "-m", "fake", "--json"]).exit_code == 0
    wide = ["#", "score", "title", "category", "colour", "price", "brand", "2nd hand", "id"]
    for width in (80, 150):
        monkeypatch.setattr(cli_catalog, "console", Console(width=width, force_terminal=False))
        res = runner.invoke(app, ["similar", rows[1]["id"], "-c", cat, "-k", "5"])
        assert res.exit_code == 0, res.output
        lines = res.stdout.splitlines()
        assert max(len(line) for line in lines) <= width
        header = next(line for line in lines if "score" in line)
        results = [line for line in lines if re.search(r"\b[01]\.\d{3}\b.*item-\d{4}\b", line)]
        assert len(results) == 5, res.stdout  # every score and whole id shown
        if width == 150:
            assert header.split() == ["#", "score", "title", "category", "colour", "price",
                                      "brand", "2nd", "hand", "id"]
            assert all(re.match(r"\s*[1-5]\s+[01]\.\d{3}", line) for line in results)
        else:
            assert set(header.split()) < set(wide) | {"2nd", "hand"}
