"""Index files carry a checksum of their content and a fingerprint of the rows they were built
from: a damaged or out-of-step file is never used, it is rebuilt from SQLite."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.index import CatalogIndex, HnswIndex
from lookalike.index.catalog_index import INDEX_FILE, INDEX_META
from lookalike.index.files import (
    IndexFileError,
    read_files,
    remove_files,
    verify_files,
    write_files,
)
from lookalike.index.fingerprint import Fingerprint, row_hashes


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def settings(tmp: Path) -> Settings:
    return Settings(catalog_dir=tmp, exact_max_items=10)


# -- files ------------------------------------------------------------------------------------


def write_two(folder: Path, a: bytes = b"alpha" * 100, b: bytes = b"beta") -> None:
    write_files(folder, "m.json", {"a.bin": lambda p: p.write_bytes(a),
                                   "b.bin": lambda p: p.write_bytes(b)}, {"dim": 3})


def test_written_files_verify_and_carry_their_meta(tmp_path: Path) -> None:
    write_two(tmp_path)
    with read_files(tmp_path, "m.json") as meta:
        assert meta["dim"] == 3 and set(meta["files"]) == {"a.bin", "b.bin"}
    assert not list(tmp_path.glob("*.tmp")), "no temp file is left behind"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: (d / "a.bin").write_bytes(b"alphA" + b"alpha" * 99), "does not match"),
        (lambda d: (d / "b.bin").write_bytes(b"bet"), "3 bytes"),
        (lambda d: (d / "b.bin").unlink(), "missing"),
        (lambda d: (d / "m.json").unlink(), "missing"),
        (lambda d: (d / "m.json").write_text("{not json"), "unreadable"),
        (lambda d: (d / "m.json").write_text('{"dim": 3}'), "not an index manifest"),
    ],
    ids=["flipped-byte", "truncated", "file-missing", "manifest-missing", "manifest-garbage",
         "old-manifest"],
)
def test_every_kind_of_damage_is_named(tmp_path: Path, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    write_two(tmp_path)
    damage(tmp_path)
    with pytest.raises(IndexFileError, match=reason):
        verify_files(tmp_path, "m.json")


def test_a_save_killed_between_data_and_manifest_is_detected(tmp_path: Path) -> None:
    write_two(tmp_path)
    manifest = (tmp_path / "m.json").read_text()
    write_two(tmp_path, a=b"new content" * 50)
    (tmp_path / "m.json").write_text(manifest)  # as if killed before the manifest's rename
    with pytest.raises(IndexFileError, match=r"a\.bin"):
        verify_files(tmp_path, "m.json")


def test_remove_files_deletes_the_set_and_leftover_temp_files(tmp_path: Path) -> None:
    write_two(tmp_path)
    (tmp_path / "a.bin.4242.tmp").write_bytes(b"killed mid-save")
    (tmp_path / "other.txt").write_text("kept")
    removed = remove_files(tmp_path, "m.json")
    assert {p.name for p in removed} == {"m.json", "a.bin", "b.bin", "a.bin.4242.tmp"}
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["other.txt"]


# -- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_is_order_free_incremental_and_sees_every_bit() -> None:
    ids, vecs = np.arange(1, 201, dtype=np.int64), unit_rows(200, 16)
    whole = Fingerprint.of(ids, vecs)
    order = np.random.default_rng(1).permutation(200)
    assert Fingerprint.of(ids[order], vecs[order]) == whole
    assert Fingerprint.of(ids[:50], vecs[:50]).add(ids[50:], vecs[50:]) == whole
    assert Fingerprint.parse(str(whole)) == whole
    assert whole.remove(ids[:10], vecs[:10]) == Fingerprint.of(ids[10:], vecs[10:])
    base = row_hashes(ids, vecs)
    for bit in (0, 13, 31):  # lowest mantissa bit, a middle one, the sign
        flipped = vecs.copy()
        flipped.view(np.uint32)[7, 3] ^= np.uint32(1 << bit)
        assert (row_hashes(ids, flipped) != base).sum() == 1
    swapped = vecs.copy()
    swapped[[3, 4]] = swapped[[4, 3]]  # same vectors, other owners
    assert Fingerprint.of(ids, swapped) != Fingerprint.of(ids, vecs)


# -- the catalog index --------------------------------------------------------------------------


def payload_offset(path: Path, vector: np.ndarray) -> int:
    data = path.read_bytes()
    at = data.find(vector.astype(np.float32).tobytes())
    assert at >= 0, "the vector's bytes are stored as they are"
    return at


def test_a_changed_vector_payload_is_detected_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids, vecs = np.arange(1, 101, dtype=np.int64), unit_rows(100, 8)
    CatalogIndex(tmp_path, 8, settings(tmp_path)).load(ids, vecs)
    # what an attacker (or a bad disk) does: item 6's stored vector becomes item 61's
    path = tmp_path / INDEX_FILE
    data = bytearray(path.read_bytes())
    at = payload_offset(path, vecs[5])
    data[at : at + 32] = vecs[60].tobytes()
    path.write_bytes(bytes(data))
    assert len(HnswIndex.load(path)) == 100, "faiss reads the changed file without complaint"

    with caplog.at_level(logging.WARNING):
        index = CatalogIndex(tmp_path, 8, settings(tmp_path))
        index.load(ids, vecs)
    assert "does not match the checksum" in caplog.text
    assert index.ann is not None
    _, got, plan = index.search(vecs[5:6], 1)
    assert plan.method == "hnsw" and got[0, 0] == 6
    verify_files(tmp_path, INDEX_META)  # the rebuilt file is saved with its checksum


def test_an_index_built_from_other_vectors_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Same ids, other vectors (a rowid reused by a new item while the index was not saved, or
    vectors re-embedded): the file's checksum holds, its fingerprint does not."""
    ids, vecs = np.arange(1, 101, dtype=np.int64), unit_rows(100, 8)
    CatalogIndex(tmp_path, 8, settings(tmp_path)).load(ids, vecs)
    changed = vecs.copy()
    changed[41] = unit_rows(1, 8, seed=9)[0]
    with caplog.at_level(logging.WARNING):
        index = CatalogIndex(tmp_path, 8, settings(tmp_path))
        index.load(ids, changed)
    assert "built from other vectors" in caplog.text
    _, got, _ = index.search(changed[41:42], 1)
    assert got[0, 0] == 42


def test_removed_items_are_remembered_not_rebuilt_and_a_reused_rowid_is_added(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids, vecs = np.arange(1, 101, dtype=np.int64), unit_rows(100, 8)
    index = CatalogIndex(tmp_path, 8, settings(tmp_path))
    index.load(ids, vecs)
    index.remove(ids[-3:])
    assert json.loads((tmp_path / INDEX_META).read_text())["removed"] == [98, 99, 100]
    saved = (tmp_path / INDEX_FILE).stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        again = CatalogIndex(tmp_path, 8, settings(tmp_path))
        again.load(ids[:-3], vecs[:-3])
    assert "rebuilding" not in caplog.text and (tmp_path / INDEX_FILE).stat().st_mtime_ns == saved
    assert again.ann is not None and len(again.ann) == 97
    # SQLite gives a new item the rowid of the last one deleted: it gets found, not refused
    fresh = unit_rows(1, 8, seed=5)
    again.add(np.asarray([100]), fresh)
    _, got, _ = again.search(fresh, 1)
    assert got[0, 0] == 100
    reopened = CatalogIndex(tmp_path, 8, settings(tmp_path))
    reopened.load(np.append(ids[:-3], 100), np.vstack([vecs[:-3], fresh]))
    _, got, _ = reopened.search(fresh, 1)
    assert got[0, 0] == 100


def test_a_file_holding_deleted_items_is_brought_in_step_not_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Items deleted in SQLite while no process saved the index (a kill between the two): the
    file's own vectors of those rows enter the fingerprint check, then they are removed."""
    ids, vecs = np.arange(1, 101, dtype=np.int64), unit_rows(100, 8)
    CatalogIndex(tmp_path, 8, settings(tmp_path)).load(ids, vecs)
    with caplog.at_level(logging.INFO):
        index = CatalogIndex(tmp_path, 8, settings(tmp_path))
        index.load(ids[5:], vecs[5:])
    assert "rebuilding" not in caplog.text and "5 removed" in caplog.text
    assert index.ann is not None and sorted(index.ann.ids().tolist()) == ids[5:].tolist()
    meta = json.loads((tmp_path / INDEX_META).read_text())
    assert meta["count"] == 95 and meta["removed"] == [1, 2, 3, 4, 5]
    _, got, _ = index.search(vecs[:1], 3)
    assert not set(got[0].tolist()) & set(ids[:5].tolist())


def test_temp_files_of_killed_saves_do_not_pile_up(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above the kernel's default pid_max: no process has it
    (tmp_path / f"a.bin.{dead}.tmp").write_bytes(b"x" * 1000)
    (tmp_path / f"m.json.{dead}.tmp").write_text("{")
    (tmp_path / f"a.bin.{os.getppid()}.tmp").write_bytes(b"a live process's save")
    write_two(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.tmp")) == [f"a.bin.{os.getppid()}.tmp"]
