"""`lookalike evaluate` on a shop's own catalog, through the CLI: any subset of labels (category,
colour, pattern, a group column), tiny catalogs, JSONL with renamed columns, bad rows and files.

Metrics whose labels are missing, or with too few examples, must be skipped with their reason
(in the output and in metrics.json), never fail; the report must say what it evaluated."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from imagefactory import jpeg
from lookalike.cli import app
from lookalike.evaluation.scoring import METRICS

SAMPLE = Path(__file__).parents[2] / "src" / "lookalike" / "data" / "sample"  # catalog.csv
USER_CACHE = os.environ.get("LOOKALIKE_CACHE_DIR")  # before the fixture below replaces it
COLOURS = {"Red": (200, 30, 30), "Blue": (30, 60, 200), "Green": (40, 160, 60)}
SHAPES = {"Dress": (10, 30, 86, 50), "Shirt": (25, 10, 60, 70), "Hat": (40, 20, 56, 60)}


def garment(category: str, colour: str, striped: bool, seed: int) -> Image.Image:
    """A block of `colour` shaped by `category` on a noisy floor, black stripes if `striped`."""
    rng = np.random.default_rng(seed)
    img = rng.integers(90, 140, (96, 80, 3), dtype=np.uint8)
    top, left, bottom, right = SHAPES[category]
    img[top:bottom, left:right] = COLOURS[colour]
    if striped:
        img[top:bottom:6, left:right] = 0
    return Image.fromarray(img)


def make_catalog(
    root: Path,
    n: int,
    labels: tuple[str, ...] = ("category", "colour", "pattern"),
    *,
    categories: int = 2,
    group: str | None = None,
    group_size: int = 5,
) -> Path:
    """items.csv + images/ with the given label columns (and `group` column, if any)."""
    (root / "images").mkdir(parents=True)
    fields = ["id", "image", "title", "price", *labels] + ([group] if group else [])
    rows: list[dict[str, Any]] = []
    for i in range(n):
        cat = list(SHAPES)[i % categories]
        colour = list(COLOURS)[(i // 2) % 2]
        striped = i % 3 == 0
        (root / "images" / f"p{i:03d}.jpg").write_bytes(
            jpeg(garment(cat, colour, striped, i), quality=92)
        )
        row = {"id": f"sku-{i}", "image": f"p{i:03d}.jpg", "title": f"item {i}", "price": "9.90",
               "category": cat, "colour": colour, "pattern": "striped" if striped else "solid"}
        if group:
            row[group] = f"shop-{i // group_size}"
        rows.append({k: row[k] for k in fields})
    with (root / "items.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return root


def evaluate(data: Path, out: Path, *extra: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(
        app,
        ["evaluate", "--dataset", str(data), "--model", "fake", "--out", str(out), *extra],
    )
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "metrics.json").read_text())


def computed_families(report: dict[str, Any]) -> set[str]:
    return set(report["examples"]["fake"])


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path / "cache"))


def test_category_without_colour_column(tmp_path: Path) -> None:
    """The issue's case: a shop's items.csv with a category column and no colour column."""
    data = make_catalog(tmp_path / "shop", 40, ("category",))
    result, report = evaluate(data, tmp_path / "out")
    m = report["metrics"]["fake"]
    assert m["category/precision@10"] > 0.7  # chance: 0.5; the fake encoder sees the shapes
    assert 0.0 <= m["category_tagger/micro_f1"] <= 1.0
    assert not any(k.startswith(("colour", "pattern")) for k in m)
    skipped = report["skipped"]["fake"]
    for family in ("colour", "pattern", "colour/top10_majority_agreement", "colour_tagger"):
        assert "items.csv has no" in skipped[family]
        assert f"skipped {family}: needs a" in result.output
    assert report["split"]["kind"] == "whole"
    assert report["split"]["evaluated_items"] == 40
    assert "no group column" in report["split"]["reason"]
    # the title states what was evaluated (not "held-out part" on the whole set)
    assert "held-out" not in result.output
    assert "the whole set: 40 items" in result.output
    assert "shop: the whole set, 40 items" in result.output  # the table's title
    for png in ("precision-at-k.png", "map-fake.png", "contacts-fake.png", "confusion-fake.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000


@pytest.mark.parametrize("missing", ["colour", "pattern", "group"])
def test_catalog_without_one_optional_label(tmp_path: Path, missing: str) -> None:
    """Every metric whose labels are there is computed; every other one says which is missing."""
    labels = tuple(c for c in ("category", "colour", "pattern") if c != missing)
    group = None if missing == "group" else "sender_id"
    data = make_catalog(tmp_path / "shop", 48, labels, group=group, group_size=6)
    result, report = evaluate(data, tmp_path / "out", "--no-plots")
    expected = {s.name for s in METRICS if set(s.needs) <= set(labels)}
    assert computed_families(report) == expected
    skipped = report["skipped"]["fake"]
    assert set(skipped) == {s.name for s in METRICS} - expected
    for family, why in skipped.items():
        assert f"no {missing} column" in why, (family, why)
        assert f"skipped {family}:" in result.output
    split = report["split"]
    if group is None:
        assert split["kind"] == "whole" and split["evaluated_items"] == 48
        assert "the whole set: 48 items" in result.output
    else:
        assert split["kind"] == "group" and split["column"] == "sender_id"
        assert split["evaluated_groups"] == 4 and split["evaluated_items"] == 24
        assert "held-out sender_id groups: 24 of 48 items (4 of 8 groups)" in result.output
        assert "shop: held-out sender_id groups, 24 of 48 items" in result.output  # the title
        assert report["split_file"] and Path(report["split_file"]).is_file()


@pytest.mark.parametrize("group", [None, "contributor"])
def test_tiny_catalog_20_items_2_categories(tmp_path: Path, group: str | None) -> None:
    data = make_catalog(tmp_path / "tiny", 20, categories=2, group=group, group_size=5)
    plots = [] if group else ["--no-plots"]  # plots of 10 items: drawn or skipped, not failed
    result, report = evaluate(data, tmp_path / "out", *plots)
    m, skipped, examples = (report[k]["fake"] for k in ("metrics", "skipped", "examples"))
    evaluated = 20 if group is None else 10
    assert report["split"]["evaluated_items"] == evaluated
    # results lists as long as the evaluated part are not asked for
    assert "precision@20" not in " ".join(m)
    why = skipped["category/precision@20, category/map@20"]
    assert why == f"20 results need more than 20 items with a category; {evaluated} evaluated"
    assert m["category/precision@1"] > 0.5
    # every computed family stands on at least its minimum of examples
    minimum = {s.name: s.min_examples for s in METRICS}
    assert examples and all(n >= minimum[f] for f, n in examples.items())
    for f in minimum:
        assert (f in examples) != (f in skipped)  # each family: computed or skipped with a reason
    if group is not None:
        # 10 evaluated items: P@10 would need an 11th, the tagger trains on the other 10
        assert "category/precision@10, category/map@10" in skipped
        assert examples["category_tagger"] == 10
        assert "held-out contributor groups: 10 of 20 items (2 of 4 groups)" in result.output
        assert (tmp_path / "out" / "map-fake.png").is_file()
    else:
        assert 0.0 <= m["category/precision@10"] <= 0.9  # 9 of 19 candidates are relevant
        assert "background-swap" in examples
    assert "Traceback" not in result.output


def test_catalog_too_small_for_any_metric(tmp_path: Path) -> None:
    data = make_catalog(tmp_path / "six", 6, categories=2)
    result, report = evaluate(data, tmp_path / "out")
    assert report["metrics"]["fake"] == {}
    assert set(report["skipped"]["fake"]) >= {s.name for s in METRICS}
    skipped = report["skipped"]["fake"]
    assert skipped["synthetic_pairs"] == "only 6 pairs (needs 10); 6 items evaluated"
    assert skipped["background-swap"].startswith("only 6 photos")
    assert "precision-at-k.png" in report["plots_skipped"]
    # the tagger takes every other item of each category: 2 + 2 to train on, 1 + 1 to score
    assert "skipped category_tagger: only 4 items to train on and 2 to score" in result.output
    assert "no metric could be computed on six: the whole set, 6 items" in result.output


def test_jsonl_catalog_with_renamed_column_bad_rows_and_a_corrupt_photo(tmp_path: Path) -> None:
    """items.jsonl beside its photos (no images/ folder), the category under another name."""
    data = tmp_path / "shop"
    data.mkdir()
    lines = []
    for i in range(30):
        cat = list(SHAPES)[i % 3]
        garment(cat, "Red", False, i).save(data / f"{i}.png")
        lines.append(json.dumps({"image": str(i), "type": cat, "sender_id": i % 6}))
    (data / "7.png").write_bytes(b"not a png at all")  # decodes nowhere
    lines.append(json.dumps({"image": "gone.jpg", "type": "Hat"}))  # no such file
    lines.append(json.dumps({"type": "Hat"}))  # no image
    lines.append("[1, 2]")  # not an object
    (data / "items.jsonl").write_text("\n".join(lines) + "\n")
    result, report = evaluate(data, tmp_path / "out", "--map", "type=category", "--no-plots")
    assert report["labels"] == ["category"]
    assert report["group_column"] == "sender_id"
    assert report["missing_images"] == [{"row": 31, "image": "gone.jpg"}]
    assert {r["row"] for r in report["rejected_rows"]} == {32, 33}
    assert "1 rows without an image file skipped" in result.output
    assert "2 rows rejected" in result.output
    assert report["split"]["items"] == 30
    assert "category/precision@1" in report["metrics"]["fake"]
    # without --map the same file has no category: those metrics are skipped, not failed
    _, plain = evaluate(data, tmp_path / "out2", "--no-plots")
    assert "no category column" in plain["skipped"]["fake"]["category"]
    assert "synthetic_pairs/top1" in plain["metrics"]["fake"]


def test_catalog_csv_with_an_empty_colour_column(tmp_path: Path) -> None:
    """The bundled sample's layout: catalog.csv with a colour column nobody filled in."""
    data = make_catalog(tmp_path / "shop", 24, ("category", "colour"))
    with (data / "items.csv").open() as f:
        rows = list(csv.DictReader(f))
    (data / "items.csv").unlink()
    with (data / "catalog.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "colour": ""} for r in rows)
    _, report = evaluate(data, tmp_path / "out", "--no-plots")
    assert report["metadata"].endswith("catalog.csv")
    assert report["labels"] == ["category", "colour"]
    skipped = report["skipped"]["fake"]
    for family in ("colour", "colour/top10_majority_agreement", "colour_tagger"):
        assert skipped[family] == "needs a colour label: the colour column of catalog.csv is empty"
    assert "category" in report["examples"]["fake"]


def test_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["evaluate", "--dataset", str(empty), "--model", "fake"])
    assert res.exit_code == 2 and "no metadata file" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    data = make_catalog(tmp_path / "shop", 12, ("category",))
    split = tmp_path / "split.json"
    split.write_text('{"test_groups": ["x"], "test_fraction": 0.5, "seed": 0}')
    res = CliRunner().invoke(
        app, ["evaluate", "--dataset", str(data), "--model", "fake", "--split", str(split)]
    )
    assert res.exit_code == 2 and "no group column" in res.output
    for bad in (["--map", "category"], ["--test-fraction", "1.5"]):
        res = CliRunner().invoke(
            app, ["evaluate", "--dataset", str(data), "--model", "fake", *bad]
        )
        assert res.exit_code == 2 and "error:" in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.mark.slow
def test_real_default_encoder_on_a_shop_catalog(tmp_path: Path) -> None:
    """The real default model, through the installed command, on 68 photos of the bundled
    sample as a shop without colour or group columns would give them."""
    data = tmp_path / "shop"
    (data / "images").mkdir(parents=True)
    with (SAMPLE / "catalog.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["category"] in ("Dress", "Shoes", "Pants", "Hat")]
    with (data / "items.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "image", "category"])
        for r in rows:
            # copies, not links: a link leaving the images folder is refused (issue 17)
            shutil.copyfile(SAMPLE / "images" / r["image"], data / "images" / r["image"])
            w.writerow([r["id"], r["image"], r["category"]])
    out = tmp_path / "out"
    # the real model's ONNX export is cached where the user's runs keep it
    env = {k: v for k, v in os.environ.items() if k != "LOOKALIKE_CACHE_DIR"}
    if USER_CACHE:
        env["LOOKALIKE_CACHE_DIR"] = USER_CACHE
    proc = subprocess.run(
        [sys.executable, "-m", "lookalike", "evaluate", "--dataset", str(data),
         "--out", str(out), "--no-plots"],
        capture_output=True, text=True, env={**env, "COLUMNS": "160"}, timeout=1800, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "metrics.json").read_text())
    model = next(iter(report["metrics"]))
    assert model == "lookalike-fashion-int8"
    m = report["metrics"][model]
    assert m["category/precision@10"] > 0.6  # 4 categories: chance is about 0.25
    assert "no colour column" in report["skipped"][model]["colour"]
    assert f"the whole set: {len(rows)} items" in proc.stdout
