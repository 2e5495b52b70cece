"""Hostile inputs through the CLI: `lookalike ingest` with every metadata case and `lookalike
search` with every image of the corpus (as a file and on standard input). Pass: exit code 0,
or 2 with one `error: <message>` line naming the file; never a traceback; nothing stored
changes. A few runs are real processes (stderr and exit codes exactly as a user sees them)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
import typer.testing
from typer.testing import CliRunner

from hostile.image_corpus import HostileImage, light_corpus
from hostile.metadata_corpus import (
    MetadataCase,
    csv_bytes,
    make_images,
    metadata_corpus,
    write_case,
)
from hostile.support import fake_settings, stored_rows
from lookalike import Catalog
from lookalike.attributes import default_taggers
from lookalike.cli import app

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def one_command() -> Iterator[None]:
    """Typer's CliRunner builds the click command from every command's signature again at each
    invoke (2/3 of a `search` here): this module's ~900 invocations share one, the same."""
    command = typer.main.get_command(app)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", lambda _app: command)
        yield


def assert_clean(result: object, code: int, *words: str) -> None:
    output = getattr(result, "output", "")
    assert getattr(result, "exit_code", None) == code, output
    exc = getattr(result, "exception", None)
    assert exc is None or isinstance(exc, SystemExit), repr(exc)
    assert "Traceback" not in output
    if code == 2:
        errors = [line for line in output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, output
        for word in words:
            assert word in output, (word, output)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_images(tmp_path_factory.mktemp("hostile-cli"))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", metadata_corpus(), ids=lambda c: c.name)
def test_cli_ingest(case: MetadataCase, images: Path, tmp_path: Path) -> None:
    path = write_case(case, tmp_path)
    catalog = str(tmp_path / "cat")
    args = ["ingest", str(images), "--metadata", str(path), "-c", catalog, "-m", "fake",
            "--json", *(f"--map={k}={v}" for k, v in case.columns.items())]
    result = runner.invoke(app, args)
    if case.error:
        assert_clean(result, 2, str(path), case.error)
        assert stored_rows(tmp_path / "cat") == []
    else:
        assert_clean(result, 0)
        added = {row[1] for row in stored_rows(tmp_path / "cat")}
        assert case.added <= added


@pytest.fixture(scope="module")
def light() -> tuple[HostileImage, ...]:
    return light_corpus()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_cli_search_every_image_from_stdin_and_file(
    sample_catalog: Catalog, light: tuple[HostileImage, ...], tmp_path: Path
) -> None:
    folder = str(sample_catalog.settings.catalog_dir)
    before = stored_rows(Path(folder))
    for n, item in enumerate(light):
        path = tmp_path / f"q{n}.img"
        path.write_bytes(item.data)
        for source, stdin in ((str(path), None), ("-", item.data)):
            result = runner.invoke(app, ["search", source, "-c", folder, "--json", "-k", "3"],
                                   input=stdin)
            if result.exit_code == 0:
                assert item.expect != "reject", item.name
            else:
                assert item.expect != "ok", (item.name, result.output)
                assert_clean(result, 2, "<stdin>" if source == "-" else str(path))
    assert stored_rows(Path(folder)) == before


# -- real processes ------------------------------------------------------------------------------


def lookalike(*args: str, stdin: bytes | None = None, stdin_file: str | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    if stdin_file is not None:
        with open(stdin_file, "rb") as f:  # noqa: PTH123 - a real file descriptor for the child
            return subprocess.run([sys.executable, "-m", "lookalike", *args], stdin=f,
                                  capture_output=True, timeout=timeout, check=False)
    return subprocess.run([sys.executable, "-m", "lookalike", *args], input=stdin,
                          capture_output=True, timeout=timeout, check=False)


def test_real_process_missing_metadata_is_one_line_and_exit_2(images: Path,
                                                                tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    proc = lookalike("ingest", str(images), "--metadata", str(missing), "-c",
                     str(tmp_path / "cat"), "-m", "fake")
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.strip() == f"error: {missing}: metadata file not found"
    assert "Traceback" not in err


def test_real_process_excel_csv_just_works(images: Path, tmp_path: Path) -> None:
    meta = tmp_path / "export.csv"
    meta.write_bytes(csv_bytes([{"id": "x", "image": "img0.jpg", "title": "Jupe plissée"}],
                               encoding="cp1252", delimiter=";", newline="\r\n"))
    proc = lookalike("ingest", str(images), "--metadata", str(meta), "-c",
                     str(tmp_path / "cat"), "-m", "fake")
    assert proc.returncode == 0, proc.stderr.decode()
    assert "Windows-1252" in proc.stdout.decode()
    with Catalog.open(fake_settings(tmp_path / "cat"), taggers=default_taggers) as cat:
        assert cat.get("x").title == "Jupe plissée"


def test_real_process_search_reads_stdin_only_up_to_the_cap(sample_catalog: Catalog) -> None:
    proc = lookalike("search", "-", "-c", str(sample_catalog.settings.catalog_dir),
                     stdin_file="/dev/zero", timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.startswith("error: <stdin>: image is above the") and "byte cap" in err
    assert "Traceback" not in err


def test_real_process_geometry_bomb_is_a_clear_error(sample_catalog: Catalog,
                                                     tmp_path: Path) -> None:
    from PIL import Image

    from hostile.image_corpus import encode

    bomb = tmp_path / "strip.png"
    bomb.write_bytes(encode(Image.new("1", (1, 65500), 1), "PNG"))
    proc = lookalike("search", str(bomb), "-c", str(sample_catalog.settings.catalog_dir))
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.strip() == (f"error: {bomb}: 1x65500: aspect ratio 65,500:1 is beyond 20:1 "
                           "(not a photo of an item)")
