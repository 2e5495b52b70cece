"""`lookalike train`: every --loss is trained, the trained model is used by name afterwards
(it lives in the user models folder), and the shipped model is never overwritten."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lookalike import Settings, UnknownEncoderError, available, create
from lookalike.cli import app
from lookalike.demo import sample_images, sample_metadata
from lookalike.encoders.trained import WEIGHTS_DIR, user_models, user_models_dir

runner = CliRunner()


def clothing_subset(root: Path, categories: tuple[str, ...]) -> Path:
    """The bundled sample's photos of `categories` as a clothing-dataset folder (images.csv:
    image, sender_id, label, kids), and their catalog metadata (items.csv)."""
    root.mkdir(parents=True)
    (root / "images").symlink_to(sample_images(), target_is_directory=True)
    with sample_metadata().open() as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r["category"] in categories]
    with (root / "images.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "sender_id", "label", "kids"])
        writer.writerows([r["image"], r["sender_id"], r["category"], r["kids"]] for r in rows)
    with (root / "items.csv").open("w", newline="") as f:
        items = csv.DictWriter(f, fieldnames=list(rows[0]))
        items.writeheader()
        items.writerows(rows)
    return root


def shipped() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(WEIGHTS_DIR.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--out", str(WEIGHTS_DIR)], "read-only"),
        (["--out", str(WEIGHTS_DIR.parent)], "read-only"),
        (["--name", "lookalike-fashion"], "built-in encoder"),
        (["--name", "fake"], "built-in encoder"),
        (["--name", "../escape"], "model name '../escape'"),
        (["--name", "mine-int8"], "model name 'mine-int8'"),
    ],
)
def test_what_train_refuses_before_any_work(
    args: list[str], words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path / "cache"))
    before = shipped()
    res = runner.invoke(app, ["train", "--dataset", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and words in res.stderr, res.stderr
    assert shipped() == before
    assert not (tmp_path / "cache").exists()  # nothing trained, nothing cached


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--loss", "proxy-anchor"], "--w-head"), (["--loss", "nope", "--w-head", "1"], "nope")],
)
def test_loss_argument_errors(args: list[str], words: str, tmp_path: Path) -> None:
    res = runner.invoke(app, ["train", "--dataset", str(tmp_path), *args])
    assert res.exit_code == 2 and words in res.stderr, res.output


def test_user_models_are_found_by_name(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    assert user_models(settings) == []
    folder = user_models_dir(settings)
    folder.mkdir(parents=True)
    (folder / "mine.npz").write_bytes(b"")
    (folder / "mine.json").write_text("{}")
    (folder / "half.npz").write_bytes(b"")  # no card: not a model
    assert user_models(settings) == ["mine"]
    assert {"mine", "mine-int8"} <= set(available(settings))
    assert "mine" not in available()  # without settings: the built-in encoders only
    with pytest.raises(UnknownEncoderError, match=str(folder)):
        create("theirs", settings)


@pytest.mark.slow
def test_trained_model_has_every_loss_and_is_used_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--loss proxy-anchor` was ignored (the heads were always triplet + multi-similarity),
    and `--model NAME` then said "no encoder named NAME"."""
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    for cached in Settings().models_dir.glob("efficientnet-lite0.*"):  # spares an export
        shutil.copy2(cached, cache / "models" / cached.name)
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(cache))
    dataset = clothing_subset(tmp_path / "clothes", ("Dress", "Shoes", "Hat", "Pants"))
    before = shipped()
    res = runner.invoke(app, [
        "train", "--dataset", str(dataset), "--name", "tiny", "--loss", "proxy-anchor",
        "--w-head", "1", "--epochs", "1", "--hidden", "0", "--out-dim", "8",
        "--finetune-blocks", "0", "--w-imagenet", "0", "--views", "1",
    ])
    assert res.exit_code == 0, res.output
    assert "use it with --model tiny" in res.stdout
    card = json.loads((cache / "models" / "trained" / "tiny.json").read_text())
    assert card["head_losses"] == ["proxy-anchor"]
    assert shipped() == before

    cat = str(tmp_path / "cat")
    res = runner.invoke(app, ["ingest", str(dataset / "images"), "--metadata",
                              str(dataset / "items.csv"), "-c", cat, "-m", "tiny", "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["info", "-c", cat, "--json"])
    assert json.loads(res.stdout)["model"] == "tiny"
