"""Colour tagger on drawn garments, palettes, probes and tagging rules (fake encoder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lookalike.attributes import (
    COLOUR_NAMES,
    ColourTagger,
    ProbeTagger,
    colour_palette,
    colour_similarity,
    default_taggers,
    format_palette,
    parse_palette,
    tag_catalog,
    train_probes,
)
from lookalike.catalog import Catalog, Filters, ItemIn, Tag
from lookalike.config import Settings
from lookalike.demo import sample_images, sample_metadata
from lookalike.encoders import create


def garment(fg: tuple[int, int, int], bg: tuple[int, int, int], size: int = 200) -> Image.Image:
    """A T-shirt-ish shape of colour fg on a backdrop of colour bg, with a little noise."""
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    s = size
    d.polygon([(0.3 * s, 0.15 * s), (0.7 * s, 0.15 * s), (0.9 * s, 0.35 * s), (0.75 * s, 0.45 * s),
               (0.72 * s, 0.9 * s), (0.28 * s, 0.9 * s), (0.25 * s, 0.45 * s), (0.1 * s, 0.35 * s)],
              fill=fg)
    arr = np.asarray(img).astype(np.int16)
    noise = np.random.default_rng(0).integers(-6, 7, arr.shape)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))


@pytest.mark.parametrize(
    ("fg", "bg", "name"),
    [
        ((200, 25, 35), (245, 245, 245), "red"),
        ((245, 245, 245), (60, 45, 35), "white"),  # white shirt on a dark wooden floor
        ((40, 90, 200), (215, 200, 170), "blue"),  # blue on a beige carpet
        ((20, 20, 20), (235, 235, 235), "black"),
        ((30, 40, 85), (140, 140, 140), "navy"),
        ((240, 150, 180), (250, 250, 250), "pink"),
        ((50, 140, 60), (20, 20, 20), "green"),
    ],
)
def test_dominant_colour_ignores_the_backdrop(fg: tuple[int, int, int],
                                              bg: tuple[int, int, int], name: str) -> None:
    tags = ColourTagger()(garment(fg, bg))
    assert tags["colour"].value == name
    assert 0.4 <= tags["colour"].confidence <= 1
    assert parse_palette(tags["palette"].value)[COLOUR_NAMES.index(name)] > 0.4


def test_garment_the_colour_of_its_backdrop_still_gets_a_colour() -> None:
    tags = ColourTagger()(Image.new("RGB", (100, 100), (245, 245, 245)))
    assert tags["colour"].value == "white"


def test_palette_round_trip_and_similarity() -> None:
    hist, fraction = colour_palette(garment((200, 25, 35), (245, 245, 245)))
    assert abs(float(hist.sum()) - 1) < 1e-5 and 0 < fraction <= 1
    back = parse_palette(format_palette(hist, min_share=0.0))
    np.testing.assert_allclose(back, hist / hist.sum(), atol=0.01)
    assert parse_palette("").sum() == 0
    assert parse_palette("nonsense:x,red:1")[COLOUR_NAMES.index("red")] == 1
    blue, _ = colour_palette(garment((40, 90, 200), (245, 245, 245)))
    sims = colour_similarity(hist, np.stack([hist, blue]))
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and sims[1] < 0.3


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample ingested (and tagged) once for the module; each test gets a copy."""
    root = tmp_path_factory.mktemp("ingested")
    s = Settings(catalog_dir=root / "cat", model="fake", cache_dir=root / "cache")
    with Catalog.open(s, encoder=create("fake", s), taggers=default_taggers) as cat:
        cat.ingest(sample_images(), sample_metadata())
    return root


@pytest.fixture
def catalog(ingested: Path, tmp_path: Path) -> Catalog:
    shutil.copytree(ingested, tmp_path, dirs_exist_ok=True)  # the catalog (and any cache)
    s = Settings(catalog_dir=tmp_path / "cat", model="fake", cache_dir=tmp_path / "cache")
    return Catalog.open(s, encoder=create("fake", s), create=False, taggers=default_taggers)


def test_ingest_tags_colour_and_colour_filters_use_it(catalog: Catalog) -> None:
    items = catalog.items(limit=400)
    assert all("palette" in i.predicted and "colour" in i.predicted for i in items)
    red = catalog.items(Filters(colour=["red"]), limit=400)
    assert red and all(i.attribute("colour") == "red" for i in red)


def test_a_catalog_tags_with_what_its_opener_hands_it(ingested: Path, tmp_path: Path) -> None:
    shutil.copytree(ingested, tmp_path, dirs_exist_ok=True)
    s = Settings(catalog_dir=tmp_path / "cat", model="fake", cache_dir=tmp_path / "cache")
    with Catalog.open(s, create=False) as bare:  # no taggers handed: none run
        assert (bare.pixel_taggers, bare.vector_taggers, bare.taggers) == ([], [], None)
    with Catalog.open(s.model_copy(update={"auto_tag": False}), create=False,
                      taggers=default_taggers) as off:
        assert (off.pixel_taggers, off.vector_taggers) == ([], [])
    with Catalog.open(s, create=False, taggers=default_taggers) as cat:
        def mine(img: Image.Image) -> dict[str, Tag]:
            return {}

        cat.pixel_taggers.append(mine)  # put on by hand: stays
        given = list(cat.pixel_taggers)
        assert [type(t) for t in given] == [ColourTagger, type(mine)]
        train_probes(cat)  # asks the source again: the new probes tag from now on
        assert [type(t) for t in cat.vector_taggers] and all(
            isinstance(t, ProbeTagger) for t in cat.vector_taggers)
        assert mine in cat.pixel_taggers and len(cat.pixel_taggers) == 2
        cat.use_taggers(None)
        assert cat.pixel_taggers == [mine] and cat.vector_taggers == []


def test_tags_never_overwrite_given_values(catalog: Catalog, tmp_path: Path) -> None:
    img = garment((200, 25, 35), (245, 245, 245))
    path = tmp_path / "red.png"
    img.save(path)
    item = catalog.add_item(ItemIn(id="given-blue", image=str(path), colour="blue"),
                            path.read_bytes(), path)
    assert item.colour == "blue" and "colour" not in item.predicted
    assert item.attribute("colour") == "blue" and "palette" in item.predicted
    tag_catalog(catalog, only_missing=False)
    again = catalog.get("given-blue")
    assert again.attribute("colour") == "blue" and "colour" not in again.predicted


def test_category_probe_fills_only_missing_categories(catalog: Catalog, tmp_path: Path) -> None:
    metrics = train_probes(catalog)
    assert "category" in metrics and metrics["category"]["classes"] >= 5
    # a new item without a category gets a predicted one, with a confidence
    img = garment((20, 20, 20), (240, 240, 240))
    path = tmp_path / "x.png"
    img.save(path)
    new = catalog.add_item(ItemIn(id="uncategorised", image=str(path)), path.read_bytes(), path)
    if "category" in new.predicted:  # the fake encoder may be unsure (below 0.5): no tag then
        assert 0.5 <= new.predicted["category"].confidence <= 1
    given = catalog.add_item(
        ItemIn(id="categorised", image=str(path), category="Hat"),
        path.read_bytes() + b"\x00", path,
    )
    assert given.category == "Hat" and "category" not in given.predicted


def test_nearest_prototype_per_colour_name_takes_each_names_own_prototypes() -> None:
    from lookalike.attributes import colour

    d = np.random.default_rng(0).random((50, len(colour._PROTO_NAME))).astype(np.float32)
    per_name = np.minimum.reduceat(d, colour._NAME_START, axis=1)
    want = np.stack([d[:, np.equal(colour._PROTO_NAME, k)].min(axis=1)
                     for k in range(len(colour.COLOUR_NAMES))], axis=1)
    np.testing.assert_array_equal(per_name, want)
