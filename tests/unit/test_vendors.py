"""Vendor keys and ownership (`lookalike.users.vendors`) and stored photo paths
(`lookalike.catalog.imagefiles`) on a real catalog: an SQLite file, and a schema on a real
PostgreSQL server (`database_url`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from databases import store_for
from lookalike.catalog import CatalogStore, ItemIn, NewItem
from lookalike.catalog.imagefiles import StoredPaths, image_file, stored_path
from lookalike.errors import ImageLoadError
from lookalike.users.vendors import KEY_PREFIX, VendorError, Vendors, key_digest


@pytest.fixture
def store(tmp_path: Path, database_url: str | None) -> CatalogStore:
    s = store_for(tmp_path, database_url)
    s.bind_model("fake", 4)
    s.add([NewItem(f"i{n}", ItemIn(image=f"{n}.jpg"), f"{n}.jpg", f"hash{n}")
           for n in range(3)], np.eye(3, 4, dtype=np.float32))
    return s


def test_keys_are_random_shown_once_and_checked_by_digest(store: CatalogStore) -> None:
    vendors = Vendors(store)
    acme, key = vendors.add("Acme")  # names are lowercased
    assert acme.name == "acme" and key.startswith(KEY_PREFIX) and len(key) > 40
    assert vendors.add("birch")[1] != key
    assert vendors.authenticate(key) == acme
    with store.connection() as conn:
        stored = [r[0] for r in conn.execute("SELECT key_digest FROM vendors")]
    assert key_digest(key) in stored and key not in stored
    for wrong in ("", key[:-1], key + "x", key[len(KEY_PREFIX):], KEY_PREFIX + "x" * 500):
        assert vendors.authenticate(wrong) is None
    vendors.revoke("acme")
    assert vendors.authenticate(key) is None
    for bad in ("", "a b", "x" * 41, "-lead", "ünï"):
        with pytest.raises(VendorError):
            vendors.add(bad)
    with pytest.raises(VendorError, match="exists"):
        vendors.add("acme")  # a revoked vendor keeps its name


def test_ownership_goes_with_the_item(store: CatalogStore) -> None:
    vendors = Vendors(store)
    acme, _ = vendors.add("acme")
    birch, _ = vendors.add("birch")
    vendors.set_owner(acme, "i1", "one")
    assert vendors.may_change(acme, "i1") and not vendors.may_change(birch, "i1")
    assert vendors.may_change(None, "i1") and vendors.may_change(None, "i0")  # the admin
    assert not vendors.may_change(acme, "i0")  # no owner: the admin's alone
    old, new = store.replace_image("i1", NewItem("i1", ItemIn(image="n.jpg"), "n.jpg", "hn"),
                                   np.ones(4, dtype=np.float32))
    assert new > old and vendors.owner("i1") == acme  # followed the item to its new rowid
    store.delete("i1")
    assert vendors.owners() == {} and vendors.list()[0][1] == 0


def test_a_replaced_photo_moves_the_item_and_its_owner_to_a_new_rowid(
    store: CatalogStore,
) -> None:
    vendors = Vendors(store)
    acme, _ = vendors.add("acme")
    vendors.set_owner(acme, "i1", "sku-1")
    old, new = store.replace_image("i1", NewItem("i1", ItemIn(image="n.jpg"), "n.jpg", "hashn"),
                                   np.ones(4, dtype=np.float32))
    assert (old, new) == (2, 4)  # never a rowid given before
    assert store.rowid_of("i1") == 4 and store.get("i1").image_path == "n.jpg"
    assert vendors.owners() == {"i1": "acme"}  # followed the rowid
    assert store.vector(4).tolist() == [1.0] * 4 and store.vector_rowids().tolist() == [1, 3, 4]
    (added,) = store.add([NewItem("i9", ItemIn(image="9.jpg"), "9.jpg", "hash9")],
                         np.ones((1, 4), dtype=np.float32))
    assert added == 5


def test_stored_paths_are_relative_inside_the_folder_and_never_lead_out(tmp_path: Path) -> None:
    folder = tmp_path / "cat"
    (folder / "images").mkdir(parents=True)
    inside = folder / "images" / "a.jpg"
    inside.write_bytes(b"x")
    outside = tmp_path / "b.jpg"
    outside.write_bytes(b"y")
    assert stored_path(folder, inside) == "images/a.jpg"
    assert stored_path(folder, outside) == str(outside.resolve())
    assert image_file(folder, "images/a.jpg") == inside.resolve()
    assert image_file(folder, str(outside)) == outside  # absolute: as before
    (folder / "link.jpg").symlink_to(outside)
    for escape in ("../b.jpg", "images/../../b.jpg", "link.jpg", "a\x00.jpg"):
        with pytest.raises(ImageLoadError):
            image_file(folder, escape)


def test_stored_paths_of_an_ingest_trust_only_paths_that_look_resolved(tmp_path: Path) -> None:
    """An ingest's paths come resolved from its engine: compared as text, without touching the
    disk; anything that does not look resolved is resolved, so nothing stored leads out."""
    folder = tmp_path / "cat"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"y")
    (tmp_path / "alias").symlink_to(folder)  # the folder by another name
    paths = StoredPaths(tmp_path / "alias")
    root = str(folder.resolve())
    assert paths.root == folder.resolve()
    assert paths(f"{root}/images/a.jpg", resolved=True) == "images/a.jpg"
    assert paths(f"{root}/images/missing.jpg", resolved=True) == "images/missing.jpg"  # no disk
    outside = str((tmp_path / "b.jpg").resolve())
    for escape in (f"{root}/images/../../b.jpg", f"{root}/./../b.jpg", f"{root}//../b.jpg"):
        assert paths(escape, resolved=True) == outside  # not resolved after all: resolved here
    assert paths(f"{root}-other/x.jpg", resolved=True) == f"{root}-other/x.jpg"  # a prefix only
    assert paths(root, resolved=True) == root
    assert paths(tmp_path / "alias" / "images" / "a.jpg") == "images/a.jpg"
    assert paths(Path("relative.jpg"), resolved=True) == str(Path("relative.jpg").resolve())
