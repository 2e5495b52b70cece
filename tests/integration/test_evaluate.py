"""`lookalike evaluate` end to end: a tiny generated data set with the fake encoder (fast), and
a subset of the shared clothing-dataset with the real baseline and trained encoders (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clothing_factory import tiny_clothing_dataset
from lookalike.cli import app
from lookalike.config import Settings

SHARED = Path(__file__).parents[2].parent / "shared"
CLOTHING = SHARED / "datasets" / "clothing-dataset"


def test_evaluate_fake_encoder_writes_metrics_and_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path / "cache"))
    data = tiny_clothing_dataset(tmp_path / "data")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["evaluate", "--dataset", str(data), "--model", "fake", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "row 7" in result.output  # the missing image is reported by row
    assert "SYNTHETIC" in result.output
    report = json.loads((out / "metrics.json").read_text())
    split = report["split"]
    assert split["kind"] == "group" and split["column"] == "sender_id"
    assert split["items"] == 35 and split["evaluated_items"] + split["train_items"] == 35
    title = f"held-out sender_id groups, {split['evaluated_items']} of 35 items"
    assert title in result.output and "held-out part" not in result.output
    assert "skipped colour: needs a colour label: images.csv has no colour column" in (
        result.output
    )
    m = report["metrics"]["fake"]
    # colour blocks: the fake encoder sees colour layout, so labels are easy
    assert m["category/precision@1"] > 0.9
    for key in (
        "category/map@10",
        "synthetic_pairs/top1",
        "background-swap/top1",
        "crop-zoom-50/top1",
        "category_tagger/micro_f1",
    ):
        assert 0.0 <= m[key] <= 1.0
    assert report["model_cards"]["fake"]["name"] == "fake"
    for png in ("precision-at-k.png", "map-fake.png", "contacts-fake.png", "confusion-fake.png"):
        assert (out / png).stat().st_size > 1000
    # second run: features come from the cache, same numbers
    again = CliRunner().invoke(
        app,
        ["evaluate", "--dataset", str(data), "--model", "fake", "--out", str(out), "--no-plots"],
    )
    assert again.exit_code == 0, again.output
    assert json.loads((out / "metrics.json").read_text())["metrics"]["fake"] == m


@pytest.mark.slow
@pytest.mark.skipif(not CLOTHING.is_dir(), reason="shared clothing-dataset not available")
def test_trained_beats_baseline_on_clothing_subset(tmp_path: Path) -> None:
    from lookalike.evaluation.report import evaluate_models

    # 400 rows of the real data set (a few dozen contributors), real encoders
    subset = tmp_path / "clothing"
    subset.mkdir()
    (subset / "images").symlink_to(CLOTHING / "images")
    with (CLOTHING / "images.csv").open() as f:
        lines = f.readlines()[:401]
    (subset / "images.csv").write_text("".join(lines))
    run = evaluate_models(
        subset,
        ["efficientnet-lite0", "lookalike-fashion"],
        tmp_path / "out",
        settings=Settings(),
        plots_enabled=False,
    )
    base, trained = run.metrics["efficientnet-lite0"], run.metrics["lookalike-fashion"]
    assert trained["category/precision@10"] > base["category/precision@10"]
    assert trained["synthetic_pairs/top1"] >= base["synthetic_pairs/top1"] - 0.05
