"""`lookalike ingest --engine`: the local engine by name, and plain errors for a wrong engine or
a Ray address without the Ray engine (exit 2, nothing created). The Ray engine itself runs in
test_ray_engine.py and test_ray_cluster.py."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from catalog_factory import make_dataset
from lookalike.cli import app

runner = CliRunner()


def test_engine_local_by_name(tmp_path: Path) -> None:
    images, meta, _ = make_dataset(tmp_path, 6)
    res = runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c",
                              str(tmp_path / "cat"), "-m", "fake", "--engine", "local", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["added"] == 6


def test_unknown_engine_and_a_ray_address_without_ray_are_plain_errors(tmp_path: Path) -> None:
    images, meta, _ = make_dataset(tmp_path, 2)
    base = ["ingest", str(images), "--metadata", str(meta), "-c", str(tmp_path / "cat"),
            "-m", "fake"]
    res = runner.invoke(app, [*base, "--engine", "spark"])
    assert res.exit_code == 2 and "expected local or ray" in res.output
    res = runner.invoke(app, [*base, "--ray-address", "10.0.0.1:6379"])
    assert res.exit_code == 2 and "only with --engine ray" in res.output
    assert not (tmp_path / "cat").exists()
