"""The CLI end to end (in-process Typer runner) on generated images with the fake encoder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner, Result

import lookalike
from catalog_factory import garment, make_dataset, make_rows, write_csv, write_images
from imagefactory import jpeg
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


def assert_error(res: Result, *words: str) -> None:
    """A LookalikeError as the CLI shows every one: exit code 2 and one stderr line
    `error: <message>` naming `words`; no traceback, nothing on stdout."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert res.stdout == ""
    assert "Traceback" not in res.output


def test_clear_errors_and_exit_codes(tmp_path: Path) -> None:
    images, meta, _ = make_dataset(tmp_path, 4)
    cat = str(tmp_path / "cat")
    runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", cat, "-m", "fake"])
    res = runner.invoke(app, ["search", str(images / "img0001.jpg"), "-c", cat, "-f", "colr=red"])
    assert_error(res, "unknown field 'colr'", "did you mean 'colour'?")
    res = runner.invoke(app, ["similar", "nope", "-c", cat])
    assert_error(res, "no item with id 'nope'")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    res = runner.invoke(app, ["search", str(tmp_path / "bad.jpg"), "-c", cat])
    assert_error(res, "bad.jpg", "not an image")
    res = runner.invoke(app, ["steer", "--like", "nope", "-c", cat])
    assert_error(res, "no item with id 'nope'")


def test_a_bad_setting_is_one_plain_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_BATCH_SIZE", "lots")
    res = runner.invoke(app, ["info", "-c", str(tmp_path)])
    assert_error(res, "LOOKALIKE_BATCH_SIZE must be a whole number, got 'lots'")


READERS = {
    "search": ["search", "PHOTO"],
    "similar": ["similar", "item-0001"],
    "info": ["info"],
    "steer": ["steer", "--like", "item-0001"],
    "feed": ["feed", "Dress"],
    "tag": ["tag"],
    "directions": ["directions"],
    "profile": ["profile", "item-0001"],
    "serve": ["serve", "--port", "1"],
}


@pytest.mark.parametrize("command", sorted(READERS))
def test_commands_that_read_a_catalog_refuse_a_missing_one_and_create_nothing(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in --catalog (or no ./catalog) used to create an empty catalog and print an
    empty table with exit code 0."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg(garment("Dress", 1)))
    args = [str(photo) if a == "PHOTO" else a for a in READERS[command]]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOKALIKE_CATALOG_DIR", raising=False)
    before = sorted(tmp_path.rglob("*"))
    res = runner.invoke(app, [*args, "--catalog", "typo"])
    assert_error(res, "no catalog at typo", "lookalike ingest")
    res = runner.invoke(app, args)  # the default: ./catalog, which does not exist here
    assert_error(res, "no catalog at catalog", "lookalike ingest")
    assert sorted(tmp_path.rglob("*")) == before  # created nothing


def test_text_in_square_brackets_is_printed_as_written(tmp_path: Path) -> None:
    """rich read `[price]` and `[new]` as markup and printed nothing for them."""
    rows = make_rows(6)
    rows[1]["title"] = "Dress [new] [bold]x[/]"
    rows[2]["price"] = "cheap"  # rejected: "row 4 item-0002 [price]: ..."
    write_images(tmp_path / "images", rows)
    write_csv(tmp_path / "items.csv", rows)
    cat = str(tmp_path / "cat")
    res = runner.invoke(app, ["ingest", str(tmp_path / "images"), "--metadata",
                              str(tmp_path / "items.csv"), "-c", cat, "-m", "fake"])
    assert res.exit_code == 0, res.output
    assert "item-0002 [price]:" in res.stdout
    res = runner.invoke(app, ["similar", "item-0005", "-c", cat, "-k", "5"])
    assert "Dress [new] [bold]x[/]" in res.stdout or "Dress [new] [bold]x…" in res.stdout


def test_filter_mistakes_are_plain_words(tmp_path: Path) -> None:
    images, meta, rows = make_dataset(tmp_path, 8)
    cat = str(tmp_path / "cat")
    runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", cat, "-m", "fake"])
    photo = str(images / rows[1]["image"])
    for expr, words in [
        ("price_max=cheap", "price_max must be a number, got 'cheap'"),
        ("kids=maybe", "kids must be true or false, got 'maybe'"),
        ("min_sustainability=9", "min_sustainability must be at most 5, got 9"),
    ]:
        res = runner.invoke(app, ["search", photo, "-c", cat, "-f", expr])
        assert_error(res, words)
        assert "pydantic" not in res.output and "http" not in res.output
    res = runner.invoke(app, ["search", photo, "-c", cat, "-f", "price_min=50",
                              "-f", "price_max=10"])
    assert_error(res, "price_min 50 is above price_max 10")


def test_an_unknown_filter_value_names_the_values_that_exist(tmp_path: Path) -> None:
    images, meta, rows = make_dataset(tmp_path, 8)
    cat = str(tmp_path / "cat")
    runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", cat, "-m", "fake"])
    res = runner.invoke(app, ["similar", rows[1]["id"], "-c", cat, "--json",
                              "-f", "category=Spacesuits"])
    assert res.exit_code == 0 and json.loads(res.stdout) == []
    assert ("no results: no item has category 'Spacesuits'; categories: Dress, Pants, Shoes, "
            "T-Shirt") in res.stderr
    # one unknown value among known ones: the results of the known, and a note on the other
    res = runner.invoke(app, ["similar", rows[1]["id"], "-c", cat, "--json",
                              "-f", "category=Dress,Spacesuits"])
    assert res.exit_code == 0 and json.loads(res.stdout)
    assert res.stderr.startswith("note: no item has category 'Spacesuits'")
    # known values that no item has together
    res = runner.invoke(app, ["similar", rows[1]["id"], "-c", cat, "-f", "category=Dress",
                              "-f", "price_min=1000"])
    assert res.exit_code == 0
    assert "no results: no item passes all of these filters together" in res.stderr


def test_help_shows_defaults_and_plain_placeholders() -> None:
    """`--help` lost "[env LOOKALIKE_CATALOG_DIR]" and defaults to rich markup, and showed
    `<bool>`, `<list[str]>`, `{images}`."""
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "Commands:" in res.stdout
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    for name, command in group.commands.items():
        res = runner.invoke(app, [name, "--help"], terminal_width=100)
        assert res.exit_code == 0, res.output
        for internal in ("<bool>", "<path>", "<list[", "<int", "<str>", "<float", "{", "}"):
            assert internal not in res.stdout, (name, internal, res.stdout)
        for param in command.params:
            assert getattr(param, "help", None), (name, param.name)  # every one says what it does
    search = runner.invoke(app, ["search", "--help"], terminal_width=100).stdout
    assert "Usage: lookalike search [OPTIONS] [PHOTO]" in search  # optional with --text
    assert "[default: ./catalog, or $LOOKALIKE_CATALOG_DIR]" in " ".join(search.split())
    assert "[default: 10; 1<=x<=1000]" in search


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["search", "-k", "abc", "x.jpg"], "for '-k': must be a whole number, got 'abc'"),
        (["search", "-k", "0", "x.jpg"], "for '-k': must be between 1 and 1000, got 0"),
        (["serve", "--port", "70000"], "'--port': must be between 1 and 65535, got 70000"),
        (["steer", "--like", "a", "--diversity", "nan"], "must be a finite number, got 'nan'"),
        (["steer", "--like", "a", "--diversity", "1.5"], "must be between 0 and 1, got 1.5"),
    ],
)
def test_bad_numbers_are_plain_usage_errors(args: list[str], words: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and words in res.stderr, res.output
    assert "Input should be" not in res.stderr  # pydantic's words, through Typer


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout == f"lookalike {lookalike.__version__}\n"


def test_tag_and_feed_say_what_they_print(tmp_path: Path) -> None:
    images, meta, _ = make_dataset(tmp_path, 16)
    cat = str(tmp_path / "cat")
    runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", cat, "-m", "fake"])
    res = runner.invoke(app, ["tag", "-c", cat, "--no-train"])
    assert res.exit_code == 0, res.output
    assert "{" not in res.stdout  # was "tagged {} of 16 items"
    assert "no item needed new tags (16 items" in res.stdout
    res = runner.invoke(app, ["tag", "-c", cat, "--no-train", "--all"])
    assert "tagged " in res.stdout and " palette of 16 items" in res.stdout, res.stdout
    res = runner.invoke(app, ["feed", "Dress", "-c", cat, "--swipes", "4", "-n", "3"],
                        terminal_width=150)
    assert res.exit_code == 0, res.output
    assert "taste" in res.stdout.split("score")[0] or " taste " in res.stdout
    assert "not the cosine similarity" in " ".join(res.stdout.split())
    res = runner.invoke(app, ["feed", "Spacesuits", "-c", cat])
    assert_error(res, "no item has category 'Spacesuits'; categories: Dress")


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["search"], ["search", "--nope", "x"], ["feed"], ["nope"],
     ["search", "--help"], ["search", "-k", "abc", "x"], ["serve", "--port", "0"]],
)
def test_help_and_argument_errors_load_no_heavy_module(args: list[str]) -> None:
    """What made every command take 1.6-4 s: the model, numpy, ONNX Runtime, FAISS... loaded
    before the arguments were even read. (Their speed: bench/bench_cli_startup.py.)"""
    code = (
        "import sys\n"
        "from lookalike.cli import app\n"
        "try:\n"
        "    app()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('numpy', 'onnxruntime', 'faiss', 'torch', 'sklearn', 'PIL', 'fastapi',\n"
        "         'uvicorn', 'pydantic', 'pydantic_settings', 'rich', 'cv2', 'matplotlib')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         timeout=300)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr


def test_result_table_fits_the_terminal_and_keeps_the_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rich squeezed the columns allowed to wrap (#, score, 2nd hand) to nothing in an 80-column
    # terminal; now the least needed columns are left out instead
    import re

    from rich.console import Console

    import lookalike.cli.output as cli_output

    images, meta, rows = make_dataset(tmp_path, 12)
    cat = str(tmp_path / "cat")
    assert runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", cat,
                               "-m", "fake", "--json"]).exit_code == 0
    wide = ["#", "score", "title", "category", "colour", "price", "brand", "2nd hand", "id"]
    for width in (80, 150):
        monkeypatch.setattr(cli_output, "console", Console(width=width, force_terminal=False))
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


def test_colour_weight_option(tmp_path: Path) -> None:
    images, meta, rows = make_dataset(tmp_path, 40)
    cat = str(tmp_path / "cat")
    runner.invoke(app, ["ingest", str(images), "--metadata", str(meta), "-c", cat, "-m", "fake"])
    found: dict[str, list[list[str]]] = {}
    for w in ("0", "1"):
        for command in (["similar", rows[2]["id"]], ["search", str(images / rows[2]["image"])],
                        ["steer", "--like", rows[2]["id"]]):
            res = runner.invoke(app, [*command, "-c", cat, "-k", "8", "--json",
                                      "--colour-weight", w])
            assert res.exit_code == 0, res.output
            found.setdefault(command[0], []).append(
                [(h["id"], h["score"]) for h in json.loads(res.stdout)])
    for command, (shape, colour) in found.items():
        assert shape != colour, command  # ranked by shape and style, or by colour alone
    res = runner.invoke(app, ["similar", rows[2]["id"], "-c", cat, "--colour-weight", "2"])
    assert res.exit_code == 2 and "colour-weight" in res.output


def test_help_defaults_that_cannot_import_settings_match_it() -> None:
    """--help stays instant by not importing Settings; the defaults it names are Settings'."""
    from lookalike.cli.catalog import ColourWeightOpt
    from lookalike.config import Settings

    option = ColourWeightOpt.__metadata__[0]
    assert str(option.show_default).startswith(f"{Settings().colour_weight}, ")
