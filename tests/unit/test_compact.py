"""`lookalike project`: the projection is learnt from the train contributors' photos only and
saved as a compact model (weights + card naming its base), with the fake encoder as the base."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clothing_factory import tiny_clothing_dataset
from lookalike import Settings, create
from lookalike.cli import app
from lookalike.errors import LookalikeError
from lookalike.evaluation.datasets import load_clothing_dataset
from lookalike.evaluation.features import cached_features
from lookalike.evaluation.splits import GroupSplit
from lookalike.training.compact import compact_fashion
from lookalike.training.projection import as_committed, learn_projection, unpack_projection


def _base(weights_dir: Path) -> None:
    """Committed files of a base model named `fake` (the registered fake encoder runs it)."""
    weights_dir.mkdir()
    np.savez(weights_dir / "fake.npz", unused=np.zeros(1, np.float32))
    card = {"name": "fake", "dim": 64, "description": "fake base",
            "preprocess": create("fake").preprocess.as_dict()}
    (weights_dir / "fake.json").write_text(json.dumps(card))


def test_project_learns_from_train_contributors_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path / "cache"))
    data_dir = tiny_clothing_dataset(tmp_path / "data")
    weights_dir = tmp_path / "models"
    _base(weights_dir)
    result = CliRunner().invoke(app, [
        "project", "--dataset", str(data_dir), "--out", str(weights_dir), "--base", "fake",
        "--dim", "8", "--power", "0.5", "--shrink", "1",
    ])
    assert result.exit_code == 0, result.output
    card = json.loads((weights_dir / "fake-8.json").read_text())
    assert (card["name"], card["dim"], card["base"]) == ("fake-8", 8, "fake")
    assert card["preprocess"] == create("fake").preprocess.as_dict()
    assert "--dim 8 --power 0.5 --shrink 1.0" in card["reproduce"]
    # the projection equals one learnt from the train contributors' vectors, not from all
    data = load_clothing_dataset(data_dir)
    test = GroupSplit(frozenset(card["split"]["test_groups"]), 0.5, 0).test_mask(data.groups)
    rows, ok = cached_features(create("fake"), data.paths, settings=Settings())
    assert card["data"]["fit_images"] == int((~test & ok).sum()) < int(ok.sum())
    with np.load(weights_dir / "fake-8.npz") as npz:
        stored = unpack_projection({k: np.array(npz[k]) for k in npz.files})
    assert stored is not None and stored.matrix.shape == (8, 64)
    train_only = as_committed(learn_projection(rows[~test & ok], 8, power=0.5, shrink=1.0))
    np.testing.assert_allclose(stored.matrix, train_only.matrix, atol=1e-6)
    everything = learn_projection(rows[ok], 8, power=0.5, shrink=1.0)
    assert not np.allclose(stored.mean, everything.mean, atol=1e-3)
    # held-out metrics of both widths are in the card
    assert 0 <= card["metrics"]["heldout/compact/precision@10"] <= 1
    assert 0 <= card["metrics"]["heldout/full/precision@10"] <= 1


def test_compact_model_needs_its_own_name_and_a_real_base(tmp_path: Path) -> None:
    weights_dir = tmp_path / "models"
    _base(weights_dir)
    data_dir = tiny_clothing_dataset(tmp_path / "data")
    settings = Settings(cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="name of its own"):
        compact_fashion(data_dir, weights_dir, base="fake", name="fake", settings=settings)
    card = json.loads((weights_dir / "fake.json").read_text())
    (weights_dir / "fake.json").write_text(json.dumps({**card, "base": "other"}))
    with pytest.raises(ValueError, match="itself a compact model"):
        compact_fashion(data_dir, weights_dir, base="fake", dim=4, settings=settings)


def test_project_saves_into_the_user_models_folder_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --out the compact model lands where `--model NAME` finds it (the shipped models
    are read-only), and its base is found beside it."""
    from lookalike.encoders.trained import user_models, user_models_dir

    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path / "cache"))
    folder = user_models_dir(Settings())
    folder.parent.mkdir(parents=True)
    _base(folder)
    data_dir = tiny_clothing_dataset(tmp_path / "data")
    result = CliRunner().invoke(app, [
        "project", "--dataset", str(data_dir), "--base", "fake", "--dim", "4", "--name", "small",
    ])
    assert result.exit_code == 0, result.output
    assert (folder / "small.npz").is_file() and "small" in user_models(Settings())
    assert json.loads((folder / "small.json").read_text())["base"] == "fake"


def test_a_users_compact_model_finds_the_shipped_base(tmp_path: Path) -> None:
    """A compact card naming `lookalike-fashion` in a user folder is keyed by the shipped base's
    weights too; a card naming itself as its base is refused."""
    from lookalike.encoders.trained import WEIGHTS_DIR, base_folder, committed_digest, source_digest

    assert base_folder("lookalike-fashion", tmp_path) == WEIGHTS_DIR
    np.savez(tmp_path / "mine.npz", unused=np.zeros(1, np.float32))
    (tmp_path / "mine.json").write_text(json.dumps({"name": "mine", "base": "lookalike-fashion"}))
    digest = source_digest(tmp_path / "mine.npz", tmp_path / "mine.json")
    assert digest != committed_digest("lookalike-fashion")
    (tmp_path / "mine.json").write_text(json.dumps({"name": "mine", "base": "mine"}))
    with pytest.raises(LookalikeError, match="its own base"):
        source_digest(tmp_path / "mine.npz", tmp_path / "mine.json")
