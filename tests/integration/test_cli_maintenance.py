"""`lookalike check / repair / backup / restore` as a user runs them (in-process Typer runner,
fake encoder): exit codes, clear messages, never a traceback."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog_factory import make_dataset
from lookalike.cli import app

runner = CliRunner()


@pytest.fixture
def cat(tmp_path: Path) -> str:
    images, meta, _ = make_dataset(tmp_path, 12)
    folder = str(tmp_path / "cat")
    res = runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", folder,
                              "-m", "fake"])
    assert res.exit_code == 0, res.output
    return folder


def test_check_says_ok_then_names_the_damage_with_exit_code_1(cat: str) -> None:
    res = runner.invoke(app, ["check", "-c", cat])
    assert res.exit_code == 0 and "ok" in res.stdout and "12 items" in res.stdout
    with contextlib.closing(sqlite3.connect(Path(cat) / "catalog.sqlite")) as conn:
        conn.execute("UPDATE embeddings SET vector = x'0102' WHERE item_rowid = 4")
        conn.commit()
    res = runner.invoke(app, ["check", "-c", cat, "--json"])
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert not report["ok"] and report["problems"]["embedding"][0]["item_id"] == "item-0003"

    res = runner.invoke(app, ["repair", "-c", cat])
    assert res.exit_code == 0, res.output
    assert "re-embedded 1: item-0003" in res.stdout and "ok" in res.stdout


def test_a_damaged_database_is_one_clear_line_for_every_command(cat: str) -> None:
    db = Path(cat) / "catalog.sqlite"
    db.write_bytes(b"")
    for command in (["info"], ["similar", "item-0001"], ["check"], ["repair"],
                    ["backup", str(Path(cat).parent / "b")]):
        res = runner.invoke(app, [*command, "-c", cat])
        # `check` exits 1 for a damaged catalog (its verdict); every error is exit 2
        assert res.exit_code == (1 if command == ["check"] else 2), (command, res.output)
        assert isinstance(res.exception, SystemExit), (command, res.exception)
        assert str(db) in res.output and "empty" in res.output, (command, res.output)
    assert db.stat().st_size == 0


def test_backup_then_restore_from_the_command_line(cat: str, tmp_path: Path) -> None:
    backup = str(tmp_path / "backup")
    res = runner.invoke(app, ["backup", backup, "-c", cat, "--images"])
    assert res.exit_code == 0, res.output
    assert "backed up 12 items" in res.stdout and "12 images" in res.stdout
    res = runner.invoke(app, ["backup", backup, "-c", cat])
    assert res.exit_code == 2 and "not empty" in res.output

    restored = str(tmp_path / "restored")
    res = runner.invoke(app, ["restore", backup, "-c", restored, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["items"] == 12
    res = runner.invoke(app, ["similar", "item-0001", "-c", restored, "--json", "-k", "3"])
    original = runner.invoke(app, ["similar", "item-0001", "-c", cat, "--json", "-k", "3"])
    assert [h["id"] for h in json.loads(res.stdout)] == [
        h["id"] for h in json.loads(original.stdout)]
    res = runner.invoke(app, ["restore", backup, "-c", restored])
    assert res.exit_code == 2 and "holds a catalog" in res.output
