"""Reading a shop's catalog for evaluation: label and group columns, renames, bad rows, and
whether its photos are catalogue shots on white."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagefactory import jpeg, noise, solid
from lookalike.catalog.schema import OUTSIDE
from lookalike.errors import LookalikeError
from lookalike.evaluation.augment import on_white_background
from lookalike.evaluation.datasets import load_catalog, load_dataset
from lookalike.evaluation.splits import group_split


def _photos(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i}.jpg").write_bytes(jpeg(noise(seed=i)))


def test_csv_catalog_labels_groups_and_bad_rows(tmp_path: Path) -> None:
    _photos(tmp_path / "images", 4)
    (tmp_path / "items.csv").write_text(
        "image,kind,colour,group,sender_id,price\n"
        "0,Dress,Red,ann,s1,10\n"  # suffix omitted, as ingest allows
        "1.jpg,Shirt,,,s1,12\n"  # no group: a group of its own
        "missing.jpg,Dress,Blue,bob,s2,9\n"
        ",Dress,Blue,bob,s2,9\n"
        "3.jpg,Shirt,Blue,bob,s2,8\n"
    )
    data = load_catalog(tmp_path, columns={"kind": "category"})
    assert [p.name for p in data.paths] == ["0.jpg", "1.jpg", "3.jpg"]
    assert data.label_columns == ("category", "colour")  # no pattern column
    assert data.values("pattern") is None
    assert data.values("category") == ["Dress", "Shirt", "Shirt"]
    assert data.values("colour") == ["Red", "", "Blue"]
    assert data.group_column == "group"  # before sender_id
    assert data.groups == ["ann", "item:1", "bob"]  # ids default to the image path's stem
    assert data.columns["sender_id"] == ["s1", "s1", "s2"]  # kept as a plain column
    assert data.missing == [(4, "missing.jpg")]
    assert data.rejected == [(5, "no image")]
    assert data.name == tmp_path.name and data.metadata == tmp_path / "items.csv"


def test_a_catalog_named_by_a_relative_path(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`lookalike evaluate ../shop` reads the same rows as the absolute path (a relative
    images folder once put every photo "outside the images folder")."""
    shop = tmp_path / "shop"
    _photos(shop / "images", 2)
    (tmp_path / "x.jpg").write_bytes(jpeg(noise(seed=9)))
    (shop / "images" / "out.jpg").symlink_to(tmp_path / "x.jpg")  # a link out of the folder
    (shop / "items.csv").write_text("image,category\n0.jpg,Dress\n1.jpg,Shirt\n"
                                    "out.jpg,Dress\n")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    data = load_catalog(Path("../shop"))
    assert [p.name for p in data.paths] == ["0.jpg", "1.jpg"]
    assert data.rejected == [(4, OUTSIDE)]
    (shop / "items.csv").write_text("image,category\nout.jpg,Dress\n")
    with pytest.raises(LookalikeError, match=r"1 rows rejected; row 2: .*outside"):
        load_catalog(Path("../shop"))


def test_jsonl_catalog_beside_its_photos_without_labels(tmp_path: Path) -> None:
    _photos(tmp_path, 3)
    rows = [{"id": "a", "image": "0.jpg"}, {"id": "b", "image": "1.jpg", "pattern": "dots"},
            {"id": "c", "image": "2.jpg", "colour": None}]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_dataset(tmp_path)
    assert data.group_column is None and data.groups == ["a", "b", "c"]
    assert data.values("category") is None and data.labels == ["", "", ""]
    assert data.values("pattern") == ["", "dots", ""]
    assert data.values("colour") == ["", "", ""]


def test_clothing_layout_and_errors(tmp_path: Path) -> None:
    _photos(tmp_path / "images", 2)
    (tmp_path / "images.csv").write_text("image,sender_id,label,kids\n0,7,Dress,False\n")
    assert load_dataset(tmp_path).name == "clothing-dataset"
    # renamed columns: the same file read as a catalog (label -> category, sender_id groups)
    as_catalog = load_dataset(tmp_path, columns={"label": "category"})
    assert as_catalog.labels == ["Dress"] and as_catalog.group_column == "sender_id"
    with pytest.raises(LookalikeError, match="not a folder"):
        load_dataset(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LookalikeError, match=r"empty: no metadata file \(images.csv, items.csv"):
        load_dataset(empty)
    (empty / "items.csv").write_text("image,category\ngone.jpg,Dress\n")
    with pytest.raises(LookalikeError, match=r"items.csv: no row names an image file .*1 rows"):
        load_dataset(empty)
    (empty / "items.csv").write_text("category\nDress\n")
    with pytest.raises(LookalikeError, match="'image' column"):
        load_dataset(empty)


def test_white_background_detection(tmp_path: Path) -> None:
    studio, floor = tmp_path / "studio", tmp_path / "floor"
    studio.mkdir()
    _photos(floor, 6)
    for i in range(6):
        img = solid((80, 96), (255, 255, 255))
        img.paste(Image.fromarray(np.full((60, 40, 3), 40 * i, np.uint8)), (20, 18))
        img.save(studio / f"{i}.png")
    (studio / "broken.png").write_bytes(b"not an image")  # left out, not fatal
    assert on_white_background(sorted(studio.iterdir()))
    assert not on_white_background(sorted(floor.iterdir()))


def test_group_split_holds_out_one_and_keeps_one() -> None:
    assert len(group_split(["a", "b"], 0.1).test_groups) == 1
    assert len(group_split(["a", "b", "c"], 0.9).test_groups) == 2
    assert len(group_split([str(i) for i in range(300)], 0.5).test_groups) == 150
