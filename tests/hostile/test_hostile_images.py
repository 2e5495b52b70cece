"""Hostile images through the library: every input of the generated corpus (about 420: geometry
and pixel bombs, images at the caps, container CPU bombs, other formats, corrupt files, every
mode) is either encoded or rejected with one clear `ImageLoadError`; the memory of the worst is
bounded; fuzzing finds nothing else. Time per input is measured by
bench/bench_hostile_images.py (timings belong in benchmarks, not in tests)."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hostile.image_corpus import (
    FULL_DECODE,
    HostileImage,
    encode,
    image_corpus,
    jpeg_segments,
    png_raw,
    seeds,
)
from hostile.measure import measure
from lookalike import create
from lookalike.encoders.base import Preprocess
from lookalike.errors import ImageLoadError
from lookalike.images import REDUCE_ABOVE_PIXELS, ImageLimits, load_image

ENCODER = create("fake")
PRE = ENCODER.preprocess
DRAFT = (PRE.resize_size, PRE.resize_size)
_quiet = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def encode_or_reject(data: bytes, name: str) -> str:
    """The path of a photo through the library: decode at the encoder's size, preprocess,
    encode. "encoded", or "rejected: <reason>"; anything else raises."""
    try:
        img = load_image(data, name=name, draft_size=DRAFT)
    except ImageLoadError as exc:
        assert str(exc) == f"{name}: {exc.reason}"
        assert exc.reason.strip() and "\n" not in exc.reason and len(exc.reason) < 300
        return f"rejected: {exc.reason}"
    assert img.mode == "RGB"
    # a large image is reduced right after decoding, whatever its size
    assert img.width * img.height <= REDUCE_ABOVE_PIXELS or min(img.size) < 4 * max(DRAFT) + 2
    crop = PRE.resize_crop(img)
    assert crop.shape == (PRE.image_size, PRE.image_size, 3) and crop.dtype == np.uint8
    vector = ENCODER.encode_batch(PRE(img)[None])
    assert vector.shape == (1, ENCODER.dim) and np.isfinite(vector).all()
    return "encoded"


def test_the_corpus_has_every_kind_and_enough_inputs() -> None:
    corpus = image_corpus()
    kinds = {i.kind for i in corpus}
    assert kinds == {"geometry", "pixels", "full-decode", "container", "format", "corrupt",
                     "modes", "tiny"}
    assert len(corpus) >= 300


@_quiet
@pytest.mark.parametrize("item", image_corpus(), ids=lambda i: f"{i.kind}:{i.name}")
def test_every_input_is_encoded_or_rejected_clearly(item: HostileImage) -> None:
    outcome = encode_or_reject(item.data, item.name)
    if item.expect == "ok":
        assert outcome == "encoded"
    elif item.expect == "reject":
        assert outcome.startswith("rejected: ")


def test_geometry_bombs_are_refused_from_the_header() -> None:
    data = encode(Image.new("RGB", (65500, 1), (200, 30, 40)), "PNG")
    assert len(data) < 1000
    with pytest.raises(ImageLoadError, match=r"65500x1: aspect ratio 65,500:1 is beyond 20:1"):
        load_image(data, draft_size=DRAFT)
    # a 1-bit strip crashed OpenCV's resize (HTTP 500): refused the same way
    with pytest.raises(ImageLoadError, match="aspect ratio"):
        load_image(encode(Image.new("1", (1, 30000), 1), "PNG"), draft_size=DRAFT)


@pytest.mark.parametrize(("size", "expected"), [((2000, 1), "wide"), ((1, 3000), "tall"),
                                                 ((60000, 3), "wide"), ((5, 5), "square")])
def test_preprocessing_allocates_a_bounded_amount_whatever_the_shape(
    size: tuple[int, int], expected: str
) -> None:
    # Resizing the short side of a 2000 x 1 strip to 224 first allocated 448,000 x 224 x 3
    # bytes (300 MB); 60,000 x 3 took 9 GB. numpy and OpenCV's arrays are traced.
    img = Image.new("RGB", size, (10, 200, 30))
    tracemalloc.start()
    try:
        crop = Preprocess().resize_crop(img)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert crop.shape == (224, 224, 3)
    assert (crop == (10, 200, 30)).all(), expected
    assert peak < 2_000_000, f"{peak:,} bytes traced for a {size} image"


def test_preprocessing_is_unchanged_for_ordinary_shapes() -> None:
    # crop-first is only for strips: a photo's pixels (and the stored vectors) stay the same
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (533, 400, 3), dtype=np.uint8))
    pre = Preprocess(image_size=224, resize_size=256)
    import cv2

    arr = np.asarray(img)
    scale = 256 / 400
    resized = cv2.resize(arr, (256, round(533 * scale)), interpolation=cv2.INTER_LINEAR)
    top, left = (resized.shape[0] - 224) // 2, (256 - 224) // 2
    assert np.array_equal(pre.resize_crop(img), resized[top : top + 224, left : left + 224])


def test_images_over_the_full_decode_cap_are_refused_before_decoding() -> None:
    data = png_raw(4100, 4000, 8, 2, lambda n: b"\x01\x02\x03" * n)
    result = measure(lambda: encode_or_reject(data, "big.png"))
    assert result["outcome"].startswith("rejected: 4100x4000 PNG = 16,400,000 pixels")
    assert result["growth_mb"] < 5  # nothing was decoded


def test_a_sequential_jpeg_over_the_full_decode_cap_decodes_in_draft_mode() -> None:
    data = encode(Image.new("RGB", (6000, 4000), (1, 2, 3)), "JPEG")
    assert FULL_DECODE < 6000 * 4000
    img = load_image(data, draft_size=DRAFT)
    assert img.size == (750, 500)  # 1/8 scale
    with pytest.raises(ImageLoadError, match="decoded at full size"):
        load_image(data)  # without a draft size it would be decoded whole


@pytest.mark.parametrize("scans", [40, 70])
def test_progressive_jpeg_scans_are_counted(scans: int) -> None:
    solid = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG", progressive=True)
    sos = [(s, e) for m, s, e in jpeg_segments(solid) if m == 0xDA]
    s, e = sos[2]
    data = solid[:e] + solid[s:e] * (scans - len(sos)) + solid[e:]
    if scans <= ImageLimits().max_jpeg_scans:
        assert load_image(data).size == (64, 64)
    else:
        with pytest.raises(ImageLoadError, match="more than 64 JPEG scans"):
            load_image(data)


def test_the_heaviest_inputs_stay_under_300_mb() -> None:
    """Peak resident memory each of the largest valid inputs adds to a process (measured in
    a forked child, the kernel's own high-water mark): the memory half of the bound, which,
    unlike time, a shared machine does not disturb."""
    heavy = [i for i in image_corpus() if i.heavy]
    assert len(heavy) >= 20
    results = {i.name: measure(lambda i=i: encode_or_reject(i.data, i.name))  # type: ignore[misc]
               for i in heavy}
    for name, r in results.items():
        assert r["outcome"].startswith(("encoded", "rejected")), (name, r)
        assert r["growth_mb"] < 300, (name, r)


# -- fuzzing ------------------------------------------------------------------------------------

_FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_SMALL = [i for i in image_corpus() if not i.heavy and len(i.data) < 200_000]


@_quiet
@_FUZZ
@given(st.sampled_from(_SMALL), st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)),
                                          min_size=1, max_size=12), st.integers(0, 10**7))
def test_fuzz_mutated_corpus(item: HostileImage, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(item.data or b"\x00")
    for pos, value in edits:
        data[pos % len(data)] = value
    encode_or_reject(bytes(data[: max(1, cut % (len(data) + 1))]), "fuzz")


@_quiet
@_FUZZ
@given(st.sampled_from(sorted(seeds())), st.integers(0, 40), st.binary(min_size=1, max_size=24),
       st.integers(0, 3))
def test_fuzz_header_fields(kind: str, pos: int, junk: bytes, copies: int) -> None:
    # headers (sizes, modes, segment lengths) and repeated structures
    seed = seeds()[kind]
    data = seed[:pos] + junk + seed[pos + len(junk) :]
    if copies:
        mid = len(data) // 2
        data = data[:mid] + data[mid : mid + 64] * copies * 50 + data[mid:]
    encode_or_reject(data, "fuzz")


@_quiet
@_FUZZ
@given(st.integers(1, 3000), st.integers(1, 3000), st.sampled_from(["1", "L", "P", "RGB", "RGBA",
                                                                    "LA", "I;16"]),
       st.sampled_from(["PNG", "GIF", "BMP", "WEBP", "JPEG"]))
def test_fuzz_geometry(width: int, height: int, mode: str, fmt: str) -> None:
    if width * height > 1_500_000:
        width = max(1, 1_500_000 // height)
    writable = {"GIF": ("P",), "BMP": ("1", "L", "P", "RGB", "RGBA"), "JPEG": ("L", "RGB"),
                "WEBP": ("RGB", "RGBA"), "PNG": ("1", "L", "P", "RGB", "RGBA", "LA", "I;16")}
    if mode not in writable[fmt]:
        mode = writable[fmt][-1] if fmt != "GIF" else "P"
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, fmt)
    outcome = encode_or_reject(buf.getvalue(), "shape")
    if max(width, height) <= 20 * min(width, height):
        assert outcome == "encoded"
    else:
        assert "aspect ratio" in outcome
