"""Rowids are never handed out twice: deleting the newest item and adding another must not
give the new item the old one's rowid (an index may keep removed rowids as tombstones). On
SQLite and on PostgreSQL (an identity sequence there)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from lookalike import Catalog, ItemIn, Settings
from lookalike.attributes import default_taggers


def png(n: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (n * 40 % 256, 90, 200)).save(buf, "PNG")
    return buf.getvalue()


def test_a_deleted_rowid_is_never_given_to_a_new_item(tmp_path: Path,
                                                     database_url: str | None) -> None:
    settings = Settings(catalog_dir=tmp_path, model="fake", auto_tag=False, exact_max_items=3,
                        database_url=database_url)
    with Catalog.open(settings, taggers=default_taggers) as cat:
        for n in range(5):
            cat.add_item(ItemIn(id=f"x{n}", image=f"{n}.png"), png(n), tmp_path / f"{n}.png")
        generation = cat.index.describe()["generation"]
        assert cat.index.describe()["method"] == "ivf"
        last = cat.get("x4").rowid
        cat.delete_item("x4")
        new = cat.add_item(ItemIn(id="y", image="y.png"), png(9), tmp_path / "y.png")
        assert new.rowid == last + 1
        assert cat.index.describe()["generation"] == generation, "appended, not rebuilt"
        assert cat.search_vector(cat.vector_of("y"), k=1)[0].item.id == "y"
    # the mark survives a reopen, and a delete of the top
    with Catalog.open(settings, taggers=default_taggers) as cat:
        cat.delete_item("y")
        again = cat.add_item(ItemIn(id="z", image="z.png"), png(7), tmp_path / "z.png")
        assert again.rowid == last + 2
