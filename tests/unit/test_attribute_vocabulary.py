"""Colour names merged by synonyms; taggers, filters and directions for every labelled attribute
(usage, gender... from extra metadata columns), on generated garments and the fake encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from catalog_factory import garment, make_rows, write_csv, write_images
from imagefactory import png
from lookalike.attributes import COLOUR_NAMES, default_taggers, tag_catalog, train_probes
from lookalike.attributes.directions import directions_for
from lookalike.attributes.probe import heldout_metrics, load_probe
from lookalike.catalog import Catalog, Filters, ItemIn
from lookalike.colour_names import CANONICAL_COLOURS, canonical_colour, colour_variants
from lookalike.config import Settings
from lookalike.encoders import create
from lookalike.errors import FilterError
from lookalike.recommend import Query, UnknownDirectionError, recommend

# -- colour names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("navy", "navy"), ("Navy Blue", "navy"), ("navy-blue", "navy"), ("NavyBlue", "navy"),
        ("dark blue", "navy"), ("gray", "grey"), ("Grey Melange", "grey"),
        ("Off White", "off white"), ("off-white", "off white"), ("OFFWHITE", "off white"),
        ("Crème", "cream"), ("burgundy", "maroon"), ("red colour", "red"),
        ("Multicolour", "multi"), ("Coral", "coral"), ("  Blue ", "blue"),
    ],
)
def test_colour_names_merge_by_synonym(name: str, canonical: str) -> None:
    assert canonical_colour(name) == canonical


def test_the_taggers_names_are_canonical_and_shades_stay_apart() -> None:
    assert all(canonical_colour(n) == n for n in COLOUR_NAMES)
    assert set(COLOUR_NAMES) <= set(CANONICAL_COLOURS)
    assert canonical_colour("maroon") != canonical_colour("red")  # shades are not families
    assert colour_variants("navy blue")[0] == "navy" and "navy blue" in colour_variants("navy")


# -- a catalog with labelled attributes in extra columns ------------------------------------------

USAGE = {"Dress": "Party", "Shoes": "Formal", "T-Shirt": "Casual", "Pants": "Casual"}
GENDER = {"Dress": "Women", "Shoes": "Men", "T-Shirt": "Unisex", "Pants": "Men"}


def labelled_rows(n: int) -> list[dict[str, Any]]:
    rows = make_rows(n)
    for i, row in enumerate(rows):
        row["usage"] = USAGE[row["category"]] if i % 10 else ""  # every 10th unlabelled
        row["gender"] = GENDER[row["category"]]
        row["colour"] = {"Pants": "Navy Blue", "Dress": "Red"}.get(row["category"], "")
    return rows


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    rows = labelled_rows(80)
    write_images(tmp_path / "images", rows)
    write_csv(tmp_path / "items.csv", rows)
    s = Settings(catalog_dir=tmp_path / "cat", model="fake", cache_dir=tmp_path / "cache")
    cat = Catalog.open(s, encoder=create("fake", s), taggers=default_taggers)
    cat.ingest(tmp_path / "images", tmp_path / "items.csv")
    return cat


def test_colour_filter_facets_and_notes_merge_synonyms(catalog: Catalog) -> None:
    given = catalog.items(Filters(colour=["navy blue"]), limit=200)
    assert given and all(i.colour == "Navy Blue" for i in given)
    assert len(catalog.items(Filters(colour=["NAVY"]), limit=200)) == len(given)
    assert len(catalog.items(Filters(colour=["dark-blue"]), limit=200)) == len(given)
    # the tagger's own name for an untagged item and the catalog's spelling are one facet
    values = dict(catalog.store.values("colour"))
    assert "navy" in values and "Navy Blue" not in values and "navy blue" not in values
    assert values["navy"] >= len(given)
    assert catalog.unknown_filter_values(Filters(colour=["Navy-Blue"])) == []
    assert "no item has colour 'chartreuse'" in catalog.unknown_filter_values(
        Filters(colour=["chartreuse"]))[0]


def test_probes_train_for_every_labelled_attribute_with_honest_metrics(catalog: Catalog) -> None:
    metrics = train_probes(catalog)
    assert {"category", "usage", "gender"} <= set(metrics)
    assert "pattern" not in metrics  # no labels: skipped, not an error
    usage = metrics["usage"]
    assert usage["classes"] == 3 and usage["train_items"] == 72  # the 8 unlabelled left out
    assert usage["heldout_items"] == pytest.approx(0.2 * 72, abs=1)
    for key in ("heldout_accuracy", "macro_f1", "majority_accuracy", "coverage", "recall"):
        assert 0 <= usage[key] <= 1, key
    assert usage["recall"] <= usage["coverage"] and usage["threshold"] == 0.5
    # the fake encoder sees colour layout, which the labels follow here: well above majority
    assert usage["heldout_accuracy"] > usage["majority_accuracy"]
    assert load_probe(catalog.store, "usage") is not None


def test_tags_fill_only_attributes_an_item_leaves_empty(catalog: Catalog, tmp_path: Path) -> None:
    train_probes(catalog)
    report = tag_catalog(catalog, colour=False)
    assert report.tagged.get("usage", 0) <= 8  # only the unlabelled ones could get a usage
    for item in catalog.items(limit=200):
        if item.extra.get("usage"):
            assert "usage" not in item.predicted
            assert item.attribute("usage") == item.extra["usage"]
        elif "usage" in item.predicted:
            tag = item.predicted["usage"]
            assert tag.value in {"Party", "Formal", "Casual"} and 0.5 <= tag.confidence <= 1
    # a new item: the probes run at add time; a given extra field is kept as given
    path = tmp_path / "new.png"
    path.write_bytes(png(garment("Dress", 999)))
    new = catalog.add_item(ItemIn(id="new", image=str(path)), path.read_bytes(), path)
    if "usage" in new.predicted:
        assert new.attribute("usage") == new.predicted["usage"].value
    given = catalog.add_item(ItemIn(id="given", image=str(path), extra={"usage": "Sports"}),
                             path.read_bytes() + b"\0", path)
    assert "usage" not in given.predicted and given.attribute("usage") == "Sports"


def test_attribute_filters_see_given_and_predicted_values(catalog: Catalog) -> None:
    train_probes(catalog)
    tag_catalog(catalog, colour=False)
    party = catalog.items(Filters(attributes={"usage": ["party"]}), limit=200)
    assert party and all((i.attribute("usage") or "").lower() == "party" for i in party)
    assert any("usage" in i.predicted for i in party) or all(i.extra.get("usage") for i in party)
    parsed = Filters.parse(["usage=Party,Formal", "gender=Men"], attributes=["usage", "gender"])
    assert parsed.attributes == {"usage": ["Party", "Formal"], "gender": ["Men"]}
    assert catalog.store.count(parsed) == len(catalog.items(parsed, limit=200)) > 0
    with pytest.raises(FilterError, match="unknown field 'usage'"):
        Filters.parse(["usage=Party"])  # not a configured attribute: still an unknown field
    note = catalog.unknown_filter_values(Filters(attributes={"usage": ["Gala"]}))
    assert note and "no item has usage 'Gala'" in note[0] and "Party" in note[0]
    for bad in ({"bad name": ["x"]}, {"category": ["Dress"]}, {"x'); --": ["y"]}):
        with pytest.raises(ValidationError):
            Filters(attributes=bad)


def test_directions_for_every_attribute_and_names_resolve(catalog: Catalog) -> None:
    names = directions_for(catalog).names()
    assert {"usage:Party", "usage:Formal", "usage:Casual", "gender:Men"} <= set(names)
    assert "colour:navy" in names and not any(n.lower() == "colour:navy blue" for n in names)
    dirs = directions_for(catalog)
    assert dirs.resolve("colour:Navy Blue") == "colour:navy"
    assert dirs.resolve("USAGE:party") == "usage:Party"
    assert dirs.resolve("usage:gala") is None
    # the fake encoder makes each category one near-duplicate cluster (diversity collapses it;
    # the default is 0), so judge where the first party item ranks, with and without steering
    # towards party
    item = catalog.items(Filters(category=["T-Shirt"]), limit=1)[0]
    first_party = []
    for steer in ({}, {"usage:party": 1.0}):
        query = Query(steer=dict(steer), diversity=0.5).add_item(catalog, item.id)
        res = recommend(catalog, query, 10)
        usages = [r.item.attribute("usage") for r in res]
        first_party.append(usages.index("Party") if "Party" in usages else len(usages))
    assert first_party[1] < first_party[0], first_party
    with pytest.raises(UnknownDirectionError):
        recommend(catalog, Query(steer={"usage:gala": 1.0}).add_item(catalog, item.id), 10)


def test_heldout_metrics_by_hand() -> None:
    proba = np.asarray([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]], dtype=np.float32)
    truth = np.asarray([0, 1, 1, 0])
    m = heldout_metrics(proba, truth, threshold=0.6)
    assert m["heldout_accuracy"] == 0.5  # rows 0 and 2 right
    assert m["coverage"] == 0.75  # row 3's top probability 0.55 < 0.6: not tagged
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == 0.5
    assert m["macro_f1"] == pytest.approx(0.5) and m["majority_accuracy"] == 0.5


def test_tag_attribute_names_are_checked() -> None:
    assert Settings(tag_attributes=["usage", "usage", "gender"]).tag_attributes == ["usage",
                                                                                   "gender"]
    with pytest.raises(ValidationError, match="not an attribute name"):
        Settings(tag_attributes=["usage'); drop table items; --"])
