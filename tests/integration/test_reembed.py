"""`lookalike reembed`: a catalog re-encoded with another model (the fake encoders "fake",
64-d, and "fake-32", 32-d with another projection) keeps every account, swipe and like, on
SQLite and on PostgreSQL; it resumes after an interruption; a photo that cannot be encoded
stops the switch; processes serving the catalog follow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from catalog_factory import make_dataset
from databases import settings_for
from imagefactory import png
from lookalike.attributes import default_taggers
from lookalike.attributes.probe import load_probe, save_probe, train_probe
from lookalike.catalog import Catalog, ItemIn
from lookalike.catalog.catalog import open_store
from lookalike.catalog.duplicates import DuplicateFinder
from lookalike.catalog.reembed import ReembedProgress, reembed
from lookalike.catalog.sketch import vector_sketches
from lookalike.catalog.store import CatalogStore, NewItem
from lookalike.cli import app
from lookalike.demo import build_demo_catalog
from lookalike.encoders import create
from lookalike.errors import CatalogMismatchError, LookalikeError
from lookalike.recommend import Feed
from lookalike.recommend.feed import update_preference
from lookalike.users import Users

runner = CliRunner()


@pytest.fixture
def catalog(tmp_path: Path, database_url: str | None) -> Iterator[Catalog]:
    """40 generated photos ingested with the 64-d fake encoder, on the test's database."""
    images, meta, _ = make_dataset(tmp_path / "data")
    settings = settings_for(tmp_path / "cat", database_url, model="fake", auto_tag=False,
                            commit_every=8)
    with Catalog.open(settings, taggers=default_taggers) as cat:
        cat.ingest(images, meta)
        yield cat


def expected_vectors(catalog: Catalog, model: str) -> dict[str, np.ndarray]:
    """Each item's photo encoded with `model` directly (the reference)."""
    encoder = create(model, catalog.settings)
    items = catalog.items(limit=1000)
    vectors = encoder.encode_images([Image.open(i.image_path) for i in items])
    return {i.id: v for i, v in zip(items, vectors, strict=True)}


def test_reembed_switches_the_model_and_keeps_accounts_swipes_and_likes(
    catalog: Catalog,
) -> None:
    users = Users(catalog.store)
    feed = Feed(catalog, users)
    account, _ = users.register("keeper", "a long password")
    guest, guest_token = users.create_guest()
    for user, verdicts in ((account, [True, False, True, True]), (guest, [False, True])):
        for i, liked in enumerate(verdicts):
            feed.swipe(user, f"item-{3 * i + user.id:04d}", liked)
    feed.next(account, 5)
    before = {u.id: (users.swipes(u), users.shown(u), [i.id for i in feed.likes(u)])
              for u in (account, guest)}
    probe, _ = train_probe(catalog, "category")
    save_probe(catalog.store, probe)
    follower = Catalog.open(catalog.settings, create=False,
                            taggers=default_taggers)  # another serving process
    stale = open_store(catalog.settings)  # a writer that never looks again
    version = catalog.store.vectors_version()
    seen: list[ReembedProgress] = []

    report = reembed(catalog, "fake-32", progress=seen.append)

    assert report.switched and report.encoded == 40 and report.resumed == 0
    assert (report.model, report.dim, report.previous_model, report.previous_dim) == \
        ("fake-32", 32, "fake", 64)
    assert report.preferences == 2 and report.failed == []
    assert seen and seen[-1].done == 40 and seen[-1].total == 40
    assert catalog.store.model_name == "fake-32" and catalog.store.dim == 32
    assert catalog.store.vectors_version() == version + 40
    reference = expected_vectors(catalog, "fake-32")
    ids, vectors = catalog.store.vectors()
    items = catalog.store.get_many(ids.tolist())
    for item, vector in zip(items, vectors, strict=True):
        assert np.allclose(vector, reference[item.id], atol=1e-6)
    hit = catalog.search_vector(reference["item-0007"], k=1)
    assert hit[0].item.id == "item-0007" and catalog.index.dim == 32
    # every account, session, swipe, shown item and like is still there
    assert users.login("keeper", "a long password") is not None
    assert users.by_token(guest_token) == guest
    for user in (account, guest):
        assert (users.swipes(user), users.shown(user),
                [i.id for i in feed.likes(user)]) == before[user.id]
    # the preference is the same swipes replayed over the new vectors
    pref = None
    for s in users.swipes(account):
        if pref is None and not s.liked:
            continue
        pref = update_preference(pref, reference[s.item_id], s.liked, 0.3, 0.5)
    stored = users.preference(account)
    assert stored is not None and pref is not None and np.allclose(stored, pref, atol=1e-5)
    assert len(feed.next(account, 3)) == 3
    assert load_probe(catalog.store, "category") is None  # trained on the old vectors
    # a serving process follows at its next request, and adds with the new model
    assert follower.refresh() and follower.index.dim == 32 and len(follower) == 40
    added = follower.add_item(ItemIn(id="after", image="after.png"),
                              png(Image.new("RGB", (48, 64), (10, 200, 90))),
                              catalog.settings.catalog_dir / "after.png")
    assert catalog.vector_of(added.id).shape == (32,)
    follower.close()
    # a writer still holding the old model's vectors is refused
    old = create("fake").encode_images([Image.new("RGB", (48, 64), (1, 2, 3))])
    item = NewItem("stale", catalog.get("item-0001").model_copy(), "x.png", "stale-hash")
    with pytest.raises(CatalogMismatchError, match="re-encoded with model 'fake-32'"):
        stale.add([item], old)
    stale.close()
    with pytest.raises(LookalikeError, match="already those of 'fake-32'"):
        reembed(catalog, "fake-32")


class StopError(Exception):
    pass


def test_an_interrupted_reembed_resumes_where_it_stopped(catalog: Catalog) -> None:
    def stop_midway(p: ReembedProgress) -> None:
        if p.done >= 20:
            raise StopError

    with pytest.raises(StopError):
        reembed(catalog, "fake-32", progress=stop_midway)
    assert catalog.store.model_name == "fake" and catalog.index.dim == 64  # nothing switched
    with catalog.store.transaction() as conn:
        staged = int(conn.execute("SELECT count(*) FROM reembed_vectors").fetchone()[0])
        # as staged by code before the vectors' sketches: they are made after the switch
        conn.execute("ALTER TABLE reembed_vectors DROP COLUMN sketch")
    assert 8 <= staged < 40
    report = reembed(catalog, "fake-32")
    assert report.switched and report.resumed == staged and report.encoded == 40 - staged
    reference = expected_vectors(catalog, "fake-32")
    assert all(np.allclose(catalog.vector_of(i), v, atol=1e-6) for i, v in reference.items())
    rowids, _, sketches, has = catalog.store.repost_keys_after(0)
    ids, vectors = catalog.store.vectors()
    assert np.array_equal(rowids, ids) and has.all()
    assert np.array_equal(sketches, vector_sketches(vectors))
    with catalog.store.connection() as conn:
        assert int(conn.execute("SELECT count(*) FROM reembed_vectors").fetchone()[0]) == 0


def test_reembed_gives_the_items_sketches_of_their_new_vectors(catalog: Catalog) -> None:
    """The repost check's sketches follow the vectors: made from the new model's in the
    switch, and a finder holding the old ones drops them at its next sync."""
    finder = DuplicateFinder()
    finder.sync(catalog.store)
    assert len(finder) == 40 and finder._sketched[:40].all()
    old = catalog.store.repost_keys_after(0)[2]
    assert reembed(catalog, "fake-32").switched
    rowids, _, sketches, has = catalog.store.repost_keys_after(0)
    ids, vectors = catalog.store.vectors()
    assert np.array_equal(rowids, ids) and has.all() and vectors.shape[1] == 32
    assert np.array_equal(sketches, vector_sketches(vectors))
    assert not np.array_equal(sketches, old)
    finder.sync(catalog.store)
    assert not finder._sketched[:40].any()  # (never screened out: read and compared)


def test_a_missing_photo_stops_the_switch_until_it_is_dealt_with(catalog: Catalog) -> None:
    gone = catalog.get("item-0005")
    Path(gone.image_path).unlink()
    report = reembed(catalog, "fake-32")
    assert not report.switched and [i for i, _ in report.failed] == ["item-0005"]
    assert "item-0005" in report.failed[0][0] and catalog.store.model_name == "fake"
    assert catalog.search_vector(catalog.vector_of("item-0006"), k=1)[0].item.id == "item-0006"
    catalog.delete_item("item-0005")
    again = reembed(catalog, "fake-32")
    assert again.switched and again.resumed == 39 and again.encoded == 0 and again.items == 39


def test_the_cli_reembeds_and_says_what_it_did(catalog: Catalog) -> None:
    env = {"LOOKALIKE_DATABASE_URL": catalog.settings.database_url or ""}
    folder = str(catalog.settings.catalog_dir)
    Path(catalog.get("item-0009").image_path).write_bytes(b"not a photo")
    res = runner.invoke(app, ["reembed", "--model", "fake-32", "-c", folder], env=env)
    assert res.exit_code == 1, res.output
    assert "not switched: 1 photos" in res.stdout and "item-0009" in res.stdout
    catalog.delete_item("item-0009")
    res = runner.invoke(app, ["reembed", "-m", "fake-32", "-c", folder, "--json"], env=env)
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout)
    assert done["switched"] and done["model"] == "fake-32" and done["items"] == 39
    assert done["resumed"] == 39 and done["previous_model"] == "fake"
    res = runner.invoke(app, ["reembed", "-m", "nonexistent-model", "-c", folder], env=env)
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and \
        len(res.stderr.strip().splitlines()) == 1


def test_maintenance_commands_say_they_work_on_sqlite_files(
    catalog: Catalog, database_url: str | None,
) -> None:
    if database_url is None:
        pytest.skip("PostgreSQL only")
    folder = str(catalog.settings.catalog_dir)
    for command in (["check"], ["repair"], ["backup", folder + "-backup"]):
        res = runner.invoke(app, [*command, "-c", folder],
                            env={"LOOKALIKE_DATABASE_URL": database_url})
        assert res.exit_code == 2, res.output
        assert "pg_dump --schema" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def staged(store: CatalogStore) -> int:
    with store.connection() as conn:
        tables = store.dialect.columns(conn, "reembed_vectors")
        if not tables:
            return 0
        return int(conn.execute("SELECT count(*) FROM reembed_vectors").fetchone()[0])


@pytest.mark.slow
def test_a_reembed_killed_midway_resumes_when_run_again(
    tmp_path: Path, database_url: str | None,
) -> None:
    """The bundled sample (306 photos, fake encoder) re-encoded with the real default model by
    `lookalike reembed`, SIGKILLed once some batches are committed, then run again."""
    folder = tmp_path / "cat"
    settings = settings_for(folder, database_url, model="fake", auto_tag=False)
    built, _ = build_demo_catalog(settings)
    built.close()
    env = {**os.environ, "LOOKALIKE_DATABASE_URL": database_url or "",
           "LOOKALIKE_COMMIT_EVERY": "8", "LOOKALIKE_DECODE_THREADS": "1"}
    cmd = [sys.executable, "-m", "lookalike", "reembed", "--model", "lookalike-fashion-int8",
           "-c", str(folder), "--json"]
    store = open_store(settings)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while staged(store) < 40 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    done_before = staged(store)
    assert 40 <= done_before < 306 and store.reread_model() is None
    assert store.model_name == "fake"  # nothing switched
    store.close()
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["switched"] and report["items"] == 306
    assert report["resumed"] == done_before and report["encoded"] == 306 - done_before
    with Catalog.open(settings_for(folder, database_url), create=False,
                      taggers=default_taggers) as catalog:
        assert catalog.store.model_name == "lookalike-fashion-int8"
        for item in catalog.items(limit=300)[::60]:  # as a photo search encodes it
            vector = catalog.embed(Path(item.image_path))
            assert float(vector @ catalog.vector_of(item.id)) > 0.999
            assert catalog.search_vector(vector, k=1)[0].item.id == item.id


def test_reembed_reads_photos_stored_relative_to_the_catalog(tmp_path: Path) -> None:
    """Photos copied into the catalog are stored relative to its folder (a catalog that can be
    moved): re-embedding finds them wherever the catalog now is."""
    images, meta, _ = make_dataset(tmp_path / "data", 6)
    folder = tmp_path / "cat"
    settings = settings_for(folder, None, model="fake", auto_tag=False, copy_images=True)
    with Catalog.open(settings, taggers=default_taggers) as cat:
        assert cat.ingest(images, meta).added == 6
        assert all(not Path(i.image_path).is_absolute() for i in cat.items(limit=10))
    moved = tmp_path / "moved"
    folder.rename(moved)
    with Catalog.open(settings.model_copy(update={"catalog_dir": moved}),
                      taggers=default_taggers) as cat:
        report = reembed(cat, "fake-32")
        assert report.switched and report.encoded == 6 and not report.failed
        assert cat.store.dim == 32
