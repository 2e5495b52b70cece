"""Stage (b) of an ingest as an engine: the local engine's contract (every photo once, in
order), the engine chosen by Settings, a photo's preparation that travels to another process
intact, and the re-embedding of stored photos (changed or missing files are failures)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from imagefactory import jpeg, noise
from lookalike import Catalog, Settings, create
from lookalike.attributes import default_taggers
from lookalike.attributes.colour import ColourTagger
from lookalike.catalog.engines import engine_for
from lookalike.catalog.ingest import (
    CHANGED_PHOTO,
    DuplicateImageError,
    ImagePreparer,
    LocalEngine,
    encode_stored,
)
from lookalike.errors import ImageLoadError
from lookalike.images import ImageLimits


def photos(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        (folder / f"p{i}.jpg").write_bytes(jpeg(noise(seed=i)))
        names.append(f"p{i}.jpg")
    return names


def test_local_engine_yields_every_photo_once_in_order_failures_included(tmp_path: Path) -> None:
    names = photos(tmp_path, 10)
    (tmp_path / "p3.jpg").write_bytes(b"not a photo")
    names.insert(5, "missing.jpg")
    encoder = create("fake")
    prepare = ImagePreparer(tmp_path.resolve(), ImageLimits(), encoder.preprocess)
    batches = list(LocalEngine(batch_size=2, chunk_size=4, decode_threads=2).encode(
        encoder, names, prepare))
    seen = sorted([i for b in batches for i in b.items] + [i for b in batches
                                                          for i, _ in b.failures])
    assert seen == list(range(len(names)))
    firsts = [min([*b.items, *(i for i, _ in b.failures)]) for b in batches]
    assert firsts == sorted(firsts)
    failed = {names[i]: exc for b in batches for i, exc in b.failures}
    assert set(failed) == {"p3.jpg", "missing.jpg"}
    assert all(isinstance(exc, ImageLoadError) for exc in failed.values())
    for b in batches:
        assert b.vectors.shape == (len(b.items), encoder.dim)


def test_a_photo_whose_bytes_were_seen_exits_early_as_a_duplicate(tmp_path: Path) -> None:
    names = photos(tmp_path, 2)
    encoder = create("fake")
    prepare = ImagePreparer(tmp_path.resolve(), ImageLimits(), encoder.preprocess)
    _, (digest, *_) = prepare(names[0])
    seen_prepare = ImagePreparer(tmp_path.resolve(), ImageLimits(), encoder.preprocess,
                                 seen={digest})
    with pytest.raises(DuplicateImageError):
        seen_prepare(names[0])
    assert seen_prepare(names[1])[1][0] != digest


def test_the_preparation_travels_to_another_process_intact(tmp_path: Path) -> None:
    names = photos(tmp_path, 1)
    encoder = create("fake")
    prepare = ImagePreparer(tmp_path.resolve(), ImageLimits(max_pixels=10_000),
                            encoder.preprocess, (ColourTagger(),))
    copy = pickle.loads(pickle.dumps(prepare))
    assert (copy.root, copy.limits, copy.preprocess) == (
        prepare.root, prepare.limits, prepare.preprocess)
    assert [type(t) for t in copy.pixel_taggers] == [ColourTagger]
    crop, (digest, tags, path, hashes) = copy(names[0])
    want_crop, want = prepare(names[0])
    assert np.array_equal(crop, want_crop) and (digest, tags, path, hashes) == want
    assert "colour" in tags and Path(path) == (tmp_path / names[0]).resolve()


def test_engine_for_follows_the_settings() -> None:
    local = engine_for(Settings(batch_size=8, chunk_size=64, decode_threads=3))
    assert local == LocalEngine(8, 64, 3)
    from lookalike.catalog.ray_engine import RayEngine  # imports Ray only when it runs

    ray = engine_for(Settings(engine="ray", ray_address="10.0.0.1:6379", ray_actors=5,
                              ray_cpus_per_actor=0.5, ray_batch_size=16, ray_read="bytes",
                              ray_retries=1, batch_size=8))
    assert ray == RayEngine("10.0.0.1:6379", 5, 0.5, 16, 8, "bytes", 1)


def test_encode_stored_gives_the_ingested_vectors_and_fails_changed_or_missing_photos(
    tmp_path: Path,
) -> None:
    names = photos(tmp_path / "photos", 8)
    with Catalog.open(Settings(catalog_dir=tmp_path / "cat", model="fake"),
                      taggers=default_taggers) as cat:
        cat.ingest(tmp_path / "photos")
        ids, vectors = cat.store.vectors()
        items = cat.store.get_many(ids.tolist())
        stored = [(it.rowid, it.image_path, it.image_hash) for it in items]
        encoder = cat.encoder
    Path(stored[2][1]).write_bytes(jpeg(noise(seed=99)))  # changed since the ingest
    Path(stored[5][1]).unlink()  # gone
    batches = list(encode_stored(LocalEngine(2, 3, 2), encoder, stored))
    rowids = [r for b in batches for r in b.rowids]
    failures = dict(f for b in batches for f in b.failures)
    assert rowids == [r for i, (r, _, _) in enumerate(stored) if i not in (2, 5)]
    assert failures[stored[2][0]] == CHANGED_PHOTO
    assert "missing" in failures[stored[5][0]] or "not found" in failures[stored[5][0]]
    got = np.concatenate([b.vectors for b in batches])
    want = vectors[[i for i in range(len(names)) if i not in (2, 5)]]
    np.testing.assert_allclose(got, want, atol=1e-6)
