"""Encoders: registry, preprocessing from the config, the fake encoder, the threaded pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imagefactory import BLUE, RED, halves, solid
from lookalike.config import Settings
from lookalike.encoders import Preprocess, available, create, encode_stream, l2_normalise
from lookalike.errors import ImageLoadError, UnknownEncoderError


def test_registry_lists_and_rejects_unknown() -> None:
    assert {"fake", "efficientnet-lite0"} <= set(available())
    with pytest.raises(UnknownEncoderError, match="no encoder named 'nope'"):
        create("nope", Settings())


def test_preprocess_keeps_aspect_and_normalises() -> None:
    pre = Preprocess(image_size=8, resize_size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    img = halves((32, 16), left=(255, 255, 255), right=(0, 0, 0))  # wide image: width cropped
    out = pre(img)
    assert out.shape == (3, 8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :, 0], 1.0)  # white → (1 - .5) / .5
    np.testing.assert_allclose(out[:, :, -1], -1.0)  # black → (0 - .5) / .5


def test_fake_encoder_is_deterministic_normalised_and_visual() -> None:
    enc = create("fake")
    a, b, c = enc.encode_images([solid((40, 40), RED), solid((50, 30), RED), solid((40, 40), BLUE)])
    np.testing.assert_allclose(np.linalg.norm([a, b, c], axis=1), 1.0, rtol=1e-5)
    # the same image gets the same vector alone as inside a batch (ingest batches, search not)
    again = create("fake").encode_images([solid((40, 40), RED)])[0]
    np.testing.assert_array_equal(a, again)
    batch = [solid((40, 40), (i * 40, 255 - i * 30, i * 7)) for i in range(7)]
    together = enc.encode_images(batch)
    alone = np.stack([enc.encode_images([img])[0] for img in batch])
    np.testing.assert_array_equal(together, alone)
    assert float(a @ b) > float(a @ c)


def test_l2_normalise_zero_row_stays_zero() -> None:
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


@pytest.mark.parametrize("pixels", ["float tensor", "uint8 crop"])
@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize(("batch_size", "chunk_size"), [(8, 8), (3, 8)])
def test_encode_stream_keeps_order_and_reports_failures(
    workers: int, pixels: str, batch_size: int, chunk_size: int
) -> None:
    enc = create("fake")
    colours = [(i * 9 % 256, i * 37 % 256, i * 71 % 256) for i in range(50)]

    def prepare(i: int) -> tuple[np.ndarray, int]:
        if i % 7 == 3:  # failures inside batches: the next image takes the free batch row
            raise ImageLoadError(f"img{i}", "corrupt image")
        img = Image.new("RGB", (32, 32), colours[i])
        if pixels == "uint8 crop":
            return enc.preprocess.resize_crop(img), i * 10
        return enc.preprocess(img), i * 10

    batches = list(encode_stream(enc, range(50), prepare, batch_size=batch_size,
                                 chunk_size=chunk_size, decode_threads=workers))
    assert [len(b.items) + len(b.failures) for b in batches] == [8] * 6 + [2]  # one per chunk
    got = [i for b in batches for i in b.items]
    failed = [i for b in batches for i, _ in b.failures]
    assert got == [i for i in range(50) if i % 7 != 3]
    assert failed == [i for i in range(50) if i % 7 == 3]
    assert [p for b in batches for p in b.payloads] == [i * 10 for i in got]
    vectors = np.concatenate([b.vectors for b in batches])
    expected = enc.encode_images([Image.new("RGB", (32, 32), colours[i]) for i in got])
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)
