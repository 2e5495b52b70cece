"""Backup while another process writes, restore into a fresh folder, compare: the items, users
and swipes of one moment of the writer's history, and the same search results. Real SQLite,
real FAISS files, a real second process; the fake encoder."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catalog_factory import make_dataset
from lookalike import Catalog, Settings
from lookalike.attributes import default_taggers
from lookalike.catalog.backup import MANIFEST, BackupError, backup, restore
from lookalike.catalog.maintenance import check
from lookalike.index.embedded import FOLDER as VECTORS
from lookalike.recommend import search_image, similar
from lookalike.users import Users

TESTS = Path(__file__).resolve().parents[1]
N = 40

# The writer: adds items (each followed by a guest user and a swipe), deletes every third one
# it added, one transaction per step, and prints each step once it is committed.
WRITER = """
import io, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from catalog_factory import garment
from lookalike import Catalog, ItemIn, Settings
from lookalike.users import Users

folder, stop = Path(sys.argv[1]), Path(sys.argv[2])
settings = Settings(catalog_dir=folder, model="fake", auto_tag=False, exact_max_items=10)
with Catalog.open(settings) as cat:
    users = Users(cat.store)
    pictures = folder.parent / "writer-images"
    pictures.mkdir(exist_ok=True)
    i = 0
    while not stop.exists() and i < 400:
        buf = io.BytesIO()
        garment(("Dress", "Shoes", "Pants")[i % 3], 1000 + i).save(buf, "PNG")
        path = pictures / f"w{i}.png"
        path.write_bytes(buf.getvalue())
        cat.add_item(ItemIn(id=f"w-{i}", image=path.name, title=f"written {i}"),
                     buf.getvalue(), path)
        print(f"item w-{i}", flush=True)
        user, _ = users.create_guest()
        print(f"user {user.id}", flush=True)
        users.record_swipe(user, f"w-{i}", True)
        print(f"swipe {user.id} w-{i}", flush=True)
        if i % 3 == 2:
            cat.delete_item(f"w-{i - 2}")
            print(f"delete w-{i - 2}", flush=True)
        i += 1
"""


def settings(folder: Path) -> Settings:
    return Settings(catalog_dir=folder, model="fake", auto_tag=False, exact_max_items=10)


State = tuple[frozenset[str], frozenset[int], frozenset[tuple[int, str]]]


def state_of(folder: Path) -> State:
    with contextlib.closing(sqlite3.connect(folder / "catalog.sqlite")) as conn:
        items = frozenset(r[0] for r in conn.execute("SELECT id FROM items"))
        users = frozenset(r[0] for r in conn.execute("SELECT id FROM users"))
        rows = conn.execute("SELECT user_id, item_id FROM swipes")
        swipes = frozenset((r[0], r[1]) for r in rows)
    return items, users, swipes


def history(start: State, log: list[str]) -> list[State]:
    """The state after each committed step of the writer."""
    items, users, swipes = set(start[0]), set(start[1]), set(start[2])
    states = [start]
    for line in log:
        what, *args = line.split()
        if what == "item":
            items.add(args[0])
        elif what == "delete":
            items.discard(args[0])
        elif what == "user":
            users.add(int(args[0]))
        elif what == "swipe":
            swipes.add((int(args[0]), args[1]))
        states.append((frozenset(items), frozenset(users), frozenset(swipes)))
    return states


def vectors_of(folder: Path) -> dict[str, bytes]:
    with contextlib.closing(sqlite3.connect(folder / "catalog.sqlite")) as conn:
        return {r[0]: r[1] for r in conn.execute(
            "SELECT i.id, e.vector FROM items i JOIN embeddings e ON e.item_rowid = i.rowid")}


def exact_scores(vectors: dict[str, bytes], item_id: str) -> dict[str, float]:
    """Cosine of every other item to `item_id`, by a plain matrix product."""
    query = np.frombuffer(vectors[item_id], dtype=np.float32)
    return {k: float(np.frombuffer(v, dtype=np.float32) @ query)
            for k, v in vectors.items() if k != item_id}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    images, meta, _ = make_dataset(tmp_path, N)
    with Catalog.open(settings(tmp_path / "shop"), taggers=default_taggers) as cat:
        cat.ingest(images, meta)
        assert cat.index.describe()["method"] == "ivf"
        users = Users(cat.store)
        shopper, _ = users.create_guest()
        users.record_swipe(shopper, "item-0001", True)
    return tmp_path / "shop"


def test_backup_while_another_process_writes_restores_one_consistent_moment(
    source: Path, tmp_path: Path
) -> None:
    start = state_of(source)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source), str(stop), str(TESTS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert writer.stdout is not None
        before: list[str] = []
        while len(before) < 12:  # the writer is well under way
            line = writer.stdout.readline()
            assert line, writer.stderr.read() if writer.stderr else "writer died"
            before.append(line.strip())
        made = backup(settings(source), tmp_path / "backup")
        next_step = writer.stdout.readline()  # the writer goes on after the backup
    finally:
        stop.touch()
        # read through the same buffered stream as readline (communicate() would read the
        # pipe itself, behind the buffer, and lose the lines readline had already fetched)
        out = writer.stdout.read() if writer.stdout else ""
        err = writer.stderr.read() if writer.stderr else ""
        writer.wait(timeout=300)
    assert writer.returncode == 0, err
    assert next_step, "the writer kept writing after the backup ran"
    log = [line for line in [*before, next_step.strip(), *out.split("\n")] if line]
    assert made.index and (tmp_path / "backup" / VECTORS / "manifest.json").is_file()

    report = restore(tmp_path / "backup", settings(tmp_path / "restored"))
    restored = tmp_path / "restored"
    moments = history(start, log)
    got = state_of(restored)
    assert got in moments, "the backup is the catalog of one moment: no half-done step"
    moment = moments.index(got)
    assert len(before) <= moment, (len(before), moment, "taken after the steps done before")
    assert (report.items, report.users, report.swipes) == (len(got[0]), len(got[1]),
                                                           len(got[2]))
    assert report.index_reused, "the backup's vector files matched its snapshot: no rebuild"
    assert check(settings(restored)).ok, check(settings(restored)).problems

    # the same items with the same vectors as the source, and the same look-alikes
    restored_vectors, source_vectors = vectors_of(restored), vectors_of(source)
    for item_id, vector in restored_vectors.items():
        if item_id in source_vectors:
            assert source_vectors[item_id] == vector
    with Catalog.open(settings(restored), taggers=default_taggers) as cat:
        assert cat.index.describe()["method"] == "ivf"
        for item_id in sorted(restored_vectors)[::5]:
            found = [r.item.id for r in similar(cat, item_id, 5)]
            assert cat.last_plan is not None and cat.last_plan.method == "ivf"
            exact = exact_scores(restored_vectors, item_id)
            best = sorted(exact.values(), reverse=True)[:5]
            # the exact top 5 (ids may swap only where two scores tie to float rounding)
            np.testing.assert_allclose([exact[f] for f in found], best, atol=1e-5)


def test_a_backup_with_images_restores_elsewhere_without_the_originals(
    source: Path, tmp_path: Path
) -> None:
    made = backup(settings(source), tmp_path / "backup", images=True)
    assert made.images == N and made.images_missing == []
    shutil.rmtree(tmp_path / "images")  # the shop's own image folder is gone
    assert len(check(settings(source)).of("image")) == N

    report = restore(tmp_path / "backup", settings(tmp_path / "elsewhere"))
    assert report.images == N
    assert check(settings(tmp_path / "elsewhere")).ok
    with Catalog.open(settings(tmp_path / "elsewhere"), taggers=default_taggers) as cat:
        item = cat.get("item-0003")
        assert not Path(item.image_path).is_absolute()  # stored relative: the folder may move
        assert cat.image_file(item).is_relative_to((tmp_path / "elsewhere").resolve())
        assert search_image(cat, cat.image_file(item), k=1)[0].item.id == "item-0003"
    # the restored folder is self-contained: moved again, its photos are still found
    (tmp_path / "elsewhere").rename(tmp_path / "moved")
    assert check(settings(tmp_path / "moved")).ok
    with Catalog.open(settings(tmp_path / "moved"), taggers=default_taggers) as cat:
        item = cat.get("item-0003")
        assert search_image(cat, cat.image_file(item), k=1)[0].item.id == "item-0003"


def test_backup_and_restore_refuse_what_they_must(source: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("something")
    with pytest.raises(BackupError, match="not empty"):
        backup(settings(source), tmp_path / "full")
    backup(settings(source), tmp_path / "backup")

    with pytest.raises(BackupError, match="holds a catalog"):
        restore(tmp_path / "backup", settings(source))
    report = restore(tmp_path / "backup", settings(source), force=True)
    assert report.replaced is not None and (report.replaced / "catalog.sqlite").is_file()
    again = restore(tmp_path / "backup", settings(source), force=True)  # within the second
    assert again.replaced is not None and again.replaced != report.replaced
    assert (again.replaced / "catalog.sqlite").is_file()
    assert (report.replaced / "catalog.sqlite").is_file()

    damaged = bytearray((tmp_path / "backup" / "catalog.sqlite").read_bytes())
    damaged[5000] ^= 0x01
    (tmp_path / "backup" / "catalog.sqlite").write_bytes(bytes(damaged))
    with pytest.raises(BackupError, match=r"catalog\.sqlite: does not match its checksum"):
        restore(tmp_path / "backup", settings(tmp_path / "fresh"))
    assert not (tmp_path / "fresh" / "catalog.sqlite").exists()

    (tmp_path / "backup" / MANIFEST).unlink()
    with pytest.raises(BackupError, match="not a finished backup"):
        restore(tmp_path / "backup", settings(tmp_path / "fresh"))
