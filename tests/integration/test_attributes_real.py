"""Attribute taggers, colour synonyms and words with the real encoder on 600 items of the
product-catalogue sample (needs ../shared/datasets). Marked slow."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike.attributes import default_taggers, train_probes
from lookalike.attributes.directions import directions_for
from lookalike.catalog import Catalog, Filters
from lookalike.config import Settings
from lookalike.recommend.words import search_text

pytestmark = pytest.mark.slow

# ../shared beside the repository (a worktree may sit one level deeper)
PRODUCTS = next((p / "shared" / "datasets" / "fashion-product-images-sample"
                 for p in Path(__file__).resolve().parents[2:]
                 if (p / "shared" / "datasets").is_dir()), Path("missing"))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    if not (PRODUCTS / "items.csv").is_file():
        pytest.skip("needs ../shared/datasets/fashion-product-images-sample")
    root = tmp_path_factory.mktemp("products")
    with (PRODUCTS / "items.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))[:600]
    with (root / "items.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cat = Catalog.open(Settings(catalog_dir=root / "cat"),
                       taggers=default_taggers)  # the default, real encoder
    report = cat.ingest(PRODUCTS / "images", root / "items.csv")
    assert report.added == 600 and not report.rejected
    yield cat
    cat.close()


def test_taggers_beat_the_majority_guess_on_held_out_items(catalog: Catalog) -> None:
    metrics = train_probes(catalog)
    assert {"category", "gender", "usage", "season", "sub_category", "pattern"} <= set(metrics)
    for name in ("category", "gender", "usage", "sub_category"):
        m = metrics[name]
        assert m["heldout_accuracy"] > m["majority_accuracy"], (name, m)
        assert m["precision"] >= m["heldout_accuracy"] - 0.02, (name, m)  # the threshold helps
    assert metrics["category"]["heldout_accuracy"] >= 0.7, metrics["category"]
    assert metrics["gender"]["heldout_accuracy"] >= 0.85, metrics["gender"]


def test_navy_blue_is_navy_and_every_attribute_steers(catalog: Catalog) -> None:
    navy = catalog.items(Filters(colour=["navy"]), limit=1000)
    assert navy and {i.colour for i in navy} == {"Navy Blue"}
    assert catalog.store.count(Filters(colour=["dark blue"])) == len(navy)
    names = set(directions_for(catalog).names())
    assert {"usage:Formal", "usage:Ethnic", "gender:Women", "colour:navy"} <= names
    assert not any(n.startswith("colour:") and n != n.lower() for n in names)


def test_words_find_formal_shirts_for_men(catalog: Catalog) -> None:
    found = search_text(catalog, "formal shirts for men", 10)
    assert found.filters.category == ["Shirts"]
    assert found.filters.attributes == {"usage": ["Formal"], "gender": ["Men"]}
    assert len(found.results) == 10
    for r in found.results:
        assert r.item.category == "Shirts" and r.item.attribute("usage") == "Formal"
        assert r.item.attribute("gender") == "Men"
