"""The real ONNX encoder: export once, checksum-verified cache, parity with torch, retrieval."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageOps

from lookalike import Catalog, Settings, available, create, load_image
from lookalike.attributes import default_taggers
from lookalike.demo import sample_images, sample_metadata
from lookalike.encoders.efficientnet import (
    cached_model_path,
    preprocess_for,
    torch_feature_model,
)
from lookalike.encoders.onnx import read_card
from lookalike.encoders.quantized import RECIPE
from lookalike.errors import LookalikeError
from lookalike.recommend import search_image

pytestmark = pytest.mark.slow

SAMPLE = sorted(sample_images().glob("*.jpg"))


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache with the fp32 export and its int8 model, built once for this module (each
    takes tens of seconds): the tests that change a cache start from a copy of it."""
    folder = tmp_path_factory.mktemp("model-cache")
    create("efficientnet-lite0-int8", Settings(cache_dir=folder))
    return folder


def copied_cache(built: Path, to: Path) -> Settings:
    shutil.copytree(built, to / "cache")  # copy2: the files' times too
    return Settings(cache_dir=to / "cache")


@pytest.mark.parametrize("name", available())
def test_every_registered_encoder_gives_unit_vectors(name: str) -> None:
    try:
        enc = create(name, Settings())
    except LookalikeError as exc:  # a variant whose weight package is not installed
        pytest.skip(str(exc))
    imgs = [load_image(p) for p in SAMPLE[:3]]
    vecs = enc.encode_images(imgs)
    assert vecs.shape == (3, enc.dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-4)
    batch_one = enc.encode_images(imgs[:1])
    np.testing.assert_allclose(batch_one[0], vecs[0], atol=1e-5)


def test_export_is_cached_with_checksum_and_redone_when_corrupt(
    tmp_path: Path, built_cache: Path
) -> None:
    settings = copied_cache(built_cache, tmp_path)
    enc = create("efficientnet-lite0", settings)
    path = cached_model_path("efficientnet-lite0", settings)
    card = read_card(path)
    assert card["dim"] == enc.dim == 1280 and len(card["sha256"]) == 64
    mtime = path.stat().st_mtime_ns
    create("efficientnet-lite0", settings)
    assert path.stat().st_mtime_ns == mtime, "a valid cached export must be reused"
    path.write_bytes(path.read_bytes()[:1000])  # corrupt the cache
    again = create("efficientnet-lite0", settings)
    assert read_card(path)["sha256"] != card["sha256"] or path.stat().st_size > 1000
    assert again.encode_images([load_image(SAMPLE[0])]).shape == (1, 1280)


def test_int8_model_is_built_from_the_fp32_export_deterministically(
    tmp_path: Path, built_cache: Path
) -> None:
    settings = copied_cache(built_cache, tmp_path)
    int8 = create("efficientnet-lite0-int8", settings)
    fp32 = create("efficientnet-lite0", settings)
    path = settings.models_dir / "efficientnet-lite0-int8.onnx"
    card = read_card(path)
    fp32_path = cached_model_path("efficientnet-lite0", settings)
    assert card["quantized_from"]["sha256"] == read_card(fp32_path)["sha256"]
    assert path.stat().st_size < fp32_path.stat().st_size / 2  # int8 weights
    imgs = [load_image(p) for p in SAMPLE[::20]]
    cos = np.sum(int8.encode_images(imgs) * fp32.encode_images(imgs), axis=1)
    assert cos.mean() >= 0.97 and cos.min() >= 0.9, cos
    path.unlink()  # rebuilt from the same calibration photos: the same bytes
    create("efficientnet-lite0-int8", settings)
    assert read_card(path)["sha256"] == card["sha256"]


def test_int8_model_does_not_saturate_without_vnni(built_cache: Path) -> None:
    """ONNX Runtime's "precise" mode runs u8 x s8 products without 16-bit pair sums. The int8
    model must give the same features in both modes, or CPUs without VNNI (AVX2) get others
    than VNNI CPUs: the plain recipe differed by cosine 0.92 on average on an AVX2 EPYC."""

    settings = Settings(cache_dir=built_cache)
    create("efficientnet-lite0-int8", settings)  # the cached one
    path = settings.models_dir / "efficientnet-lite0-int8.onnx"
    prep = preprocess_for("efficientnet-lite0")
    _same_in_precise_mode(path, np.stack([prep(load_image(p)) for p in SAMPLE[::25]]))


def _same_in_precise_mode(path: Path, batch: np.ndarray) -> None:
    """The int8 model at `path` gives `batch` the same outputs in both u8 x s8 modes."""
    import onnxruntime as ort

    outs = []
    for precise in ("0", "1"):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.add_session_config_entry("session.x64quantprecision", precise)
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {sess.get_inputs()[0].name: batch})[0].reshape(len(batch), -1))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-4)


def test_int8_model_of_another_recipe_is_rebuilt(tmp_path: Path, built_cache: Path) -> None:
    settings = copied_cache(built_cache, tmp_path)
    create("efficientnet-lite0-int8", settings)
    path = settings.models_dir / "efficientnet-lite0-int8.onnx"
    card = read_card(path)
    assert card["recipe"] == RECIPE
    stale = {k: v for k, v in card.items() if k != "recipe"}  # as cached before recipes
    path.with_suffix(".json").write_text(json.dumps(stale))
    create("efficientnet-lite0-int8", settings)
    assert read_card(path)["recipe"] == RECIPE


def test_trained_int8_default_is_the_quantised_trained_export() -> None:
    """The default encoder (`lookalike-fashion-int8`) is built from the fp32 trained export,
    quantises only its convolution trunk (its colour branch on the raw pixels, the stem and
    everything after the pooling stay fp32), stays close to the fp32 export (measured on the
    306 sample photos: cosine 0.982 mean, 0.887 min; 0.980 / 0.922 on the 31 used here) and
    gives the same features with and without ONNX Runtime's precise u8 x s8 mode."""
    settings = Settings()
    assert settings.model == "lookalike-fashion-int8"
    int8, fp32 = create("lookalike-fashion-int8", settings), create("lookalike-fashion", settings)
    assert int8.card.extra["quantized_from"]["sha256"] == fp32.card.extra["sha256"]
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(int8.model_path)).graph
    made_by = {out: node for node in graph.node for out in node.output}
    assert not [n.name for n in graph.node if "images" in n.input
                and n.op_type == "QuantizeLinear"], "the raw pixels are quantised"
    # what reads int8 values: the trunk's own nodes and the poolings (which run in fp32)
    readers = {n.op_type for n in graph.node for i in n.input
               if i in made_by and made_by[i].op_type == "DequantizeLinear"}
    assert readers <= {"Conv", "Add", "Clip", "Reshape", "ReduceMean"}, readers
    imgs = [load_image(p) for p in SAMPLE[::10]]
    cos = np.sum(int8.encode_images(imgs) * fp32.encode_images(imgs), axis=1)
    assert cos.mean() >= 0.95 and cos.min() >= 0.75, cos
    _same_in_precise_mode(int8.model_path, np.stack([int8.preprocess(img) for img in imgs[:8]]))


def test_onnx_matches_torch_eager() -> None:
    torch = pytest.importorskip("torch")
    enc = create("efficientnet-lite0", Settings())
    batch = np.stack([enc.preprocess(load_image(p)) for p in SAMPLE[:4]])
    with torch.no_grad():
        ref = torch_feature_model("efficientnet-lite0")(torch.from_numpy(batch)).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(enc.encode_batch(batch), ref, atol=1e-4)


def test_flipped_and_recompressed_photo_finds_its_original(tmp_path: Path) -> None:
    with Catalog.open(Settings(catalog_dir=tmp_path / "cat"), taggers=default_taggers) as cat:
        report = cat.ingest(sample_images(), sample_metadata())
        assert report.added == len(SAMPLE) and not report.rejected
        found = 0
        for path in SAMPLE[:40:4]:
            query = ImageOps.mirror(load_image(path))
            query.save(tmp_path / "q.jpg", quality=70)
            hits = search_image(cat, tmp_path / "q.jpg", k=1)
            found += hits[0].item.image_path == str(path.resolve())
        assert found >= 9, found


def test_catalog_keeps_the_model_it_was_built_with(tmp_path: Path) -> None:
    """A catalog built with the full-width `lookalike-fashion-int8` opens, searches and ingests
    with that model when the configured model is another (the compact one): old catalogs need
    no re-embedding when the default model changes."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in SAMPLE[:6]:
        (photos / p.name).write_bytes(p.read_bytes())
    old = Settings(catalog_dir=tmp_path / "cat", model="lookalike-fashion-int8", auto_tag=False)
    with Catalog.open(old, taggers=default_taggers) as cat:
        assert cat.ingest(photos).added == 6
    new = old.model_copy(update={"model": "lookalike-fashion-512-int8"})
    with Catalog.open(new, taggers=default_taggers) as cat:
        assert cat.info()["model"] == "lookalike-fashion-int8" and cat.info()["dim"] == 2624
        hits = search_image(cat, SAMPLE[3], k=1)
        assert Path(hits[0].item.image_path).name == SAMPLE[3].name
        assert cat.encoder.name == "lookalike-fashion-int8"
        (photos / SAMPLE[6].name).write_bytes(SAMPLE[6].read_bytes())
        assert cat.ingest(photos).added == 1
        assert len(cat) == 7
    with pytest.raises(LookalikeError, match="lookalike-fashion-int8"):
        Catalog.open(new, encoder=create("lookalike-fashion-512-int8", new),
                     taggers=default_taggers)
