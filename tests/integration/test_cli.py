"""The CLI end to end (in-process Typer runner) on generated images with the fake encoder."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert res.exit_code == 1 and "unknown field 'colr'" in res.output
    res = runner.invoke(app, ["similar", "nope", "-c", cat])
    assert res.exit_code == 1 and "no item with id 'nope'" in res.output
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    res = runner.invoke(app, ["search", str(tmp_path / "bad.jpg"), "-c", cat])
    assert res.exit_code == 1 and "bad.jpg" in res.output and "not an image" in res.output
