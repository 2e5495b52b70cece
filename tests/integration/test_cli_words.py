"""`lookalike search --text` and the attribute taggers from the CLI (Typer runner, generated
images, fake encoder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog_factory import make_rows, write_csv, write_images
from lookalike.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("cli-words")
    rows = make_rows(60)
    for i, row in enumerate(rows):
        row["usage"] = {"Dress": "Party", "Shoes": "Formal"}.get(row["category"], "Casual")
        row["colour"] = "Navy Blue" if row["category"] == "Pants" and i % 2 else ""
    write_images(root / "images", rows)
    write_csv(root / "items.csv", rows)
    cat = str(root / "cat")
    res = runner.invoke(app, ["ingest", str(root / "images"), "--metadata",
                              str(root / "items.csv"), "-c", cat, "-m", "fake"])
    assert res.exit_code == 0, res.output
    return cat, root / "images" / rows[1]["image"]


def test_text_alone_filters_and_reports_what_it_understood(shop: tuple[str, Path]) -> None:
    cat, _ = shop
    res = runner.invoke(app, ["search", "--text", "second hand dresses under 60 sparkly", "-c",
                              cat, "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["results"] and all(
        r["category"] == "Dress" and r["second_hand"] and r["price"] <= 60
        for r in body["results"])
    assert body["understood"]["ignored"] == ["sparkly"]
    assert "ignored: 'sparkly'" in res.stderr
    assert "understood 'dresses' → category=Dress (plural)" in res.stderr


def test_colour_synonyms_and_attribute_words(shop: tuple[str, Path]) -> None:
    cat, _ = shop
    res = runner.invoke(app, ["search", "-t", "dark blue trousers", "-c", cat, "--json"])
    body = json.loads(res.stdout)
    assert body["understood"]["filters"] == {"category": ["Pants"], "colour": ["navy"]}
    assert body["results"] and all(r["colour"] == "Navy Blue" or r["predicted"]["colour"][
        "value"] == "navy" for r in body["results"])
    res = runner.invoke(app, ["search", "-t", "party", "-c", cat, "--json"])
    assert json.loads(res.stdout)["understood"]["filters"] == {"attributes": {"usage": ["Party"]}}
    res = runner.invoke(app, ["search", "-t", "casual", "-f", "usage=Party", "-c", cat, "--json"])
    notes = json.loads(res.stdout)["understood"]["notes"]
    assert any("usage" in n and "kept over the words" in n for n in notes)


def test_photo_and_text_together(shop: tuple[str, Path]) -> None:
    cat, photo = shop
    res = runner.invoke(app, ["search", str(photo), "--text", "this, but party", "-k", "5",
                              "-c", cat], terminal_width=150)
    assert res.exit_code == 0, res.output
    assert "look-alikes of" in res.stdout and "understood 'party' → usage=Party" in res.stderr


def test_text_mistakes_are_plain_errors(shop: tuple[str, Path]) -> None:
    cat, _ = shop
    res = runner.invoke(app, ["search", "--text", "zzkx", "-c", cat])
    assert res.exit_code == 2 and "none of the words matched" in res.stderr
    assert "'zzkx'" in res.stderr and "Traceback" not in res.output
    res = runner.invoke(app, ["search", "--text", "x" * 201, "-c", cat])
    assert res.exit_code == 2 and "at most 200 characters, got 201" in res.stderr
    res = runner.invoke(app, ["search", "-c", cat])
    assert res.exit_code == 2 and "give a PHOTO, --text WORDS, or both" in res.stderr


def test_tag_trains_a_tagger_per_labelled_attribute(shop: tuple[str, Path]) -> None:
    cat, _ = shop
    res = runner.invoke(app, ["tag", "-c", cat, "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert {"category", "usage"} <= set(body["probes"]) and "pattern" in body["skipped"]
    res = runner.invoke(app, ["tag", "-c", cat])
    assert "tagger usage: 3 values" in res.stdout and "macro F1" in res.stdout
    assert "no tagger for pattern" in res.stdout
    res = runner.invoke(app, ["directions", "-c", cat, "--json"])
    assert {"usage:Party", "colour:navy"} <= set(json.loads(res.stdout))
    res = runner.invoke(app, ["search", "-t", "formal", "-f", "usage=Formal", "-c", cat])
    assert res.exit_code == 0, res.output


def test_text_search_sorts_and_pages(shop: tuple[str, Path]) -> None:
    cat, _ = shop
    args = ["search", "-t", "dresses", "--sort", "price_asc", "-k", "3", "-c", cat]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    caption = " ".join(res.stdout.split())  # the table's caption wraps at its width
    assert "sorted by price_asc (the 200 closest); next page: --offset 3" in caption
    first = json.loads(runner.invoke(app, [*args, "--json"]).stdout)["results"]
    second = json.loads(runner.invoke(app, [*args, "--offset", "3", "--json"]).stdout)["results"]
    prices = [r["base_price"] for r in first + second]
    assert len(prices) == 6 and prices == sorted(prices)
    assert all(r["category"] == "Dress" for r in first + second)
    past = runner.invoke(app, [*args, "--offset", "200"])
    assert past.exit_code == 2 and "sort_depth" in past.stderr
