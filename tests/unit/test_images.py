"""Safe image loading: every good image becomes upright RGB, every bad one an ImageLoadError."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import imagefactory as f
from lookalike.errors import ImageLoadError, ImageTooLargeError
from lookalike.images import (
    ImageLimits,
    content_hash,
    load_image,
    read_image_bytes,
)

# --------------------------------------------------------------------------------------------
# Good inputs
# --------------------------------------------------------------------------------------------

GOOD_FORMATS: dict[str, Callable[[Image.Image], bytes]] = {
    "jpg": lambda im: f.encode(im, "JPEG", quality=95),
    "png": lambda im: f.encode(im, "PNG"),
    "webp": lambda im: f.encode(im, "WEBP", lossless=True),
    "gif": lambda im: f.encode(im.convert("P"), "GIF"),
    "bmp": lambda im: f.encode(im, "BMP"),
}


@pytest.mark.parametrize("ext", sorted(GOOD_FORMATS))
def test_good_formats_load_from_path_and_bytes(ext: str, tmp_path: Path) -> None:
    data = GOOD_FORMATS[ext](f.halves((40, 20), f.RED, f.BLUE))
    path = tmp_path / f"picture.{ext}"
    path.write_bytes(data)

    for img in (load_image(path), load_image(str(path)), load_image(data)):
        assert img.mode == "RGB"
        assert img.size == (40, 20)
        assert f.close_to(f.mean_colour(img, (2, 2, 18, 18)), f.RED)
        assert f.close_to(f.mean_colour(img, (22, 2, 38, 18)), f.BLUE)


def test_animated_gif_uses_first_frame() -> None:
    data = f.animated_gif([f.GREEN, f.RED, f.BLUE])
    assert Image.open(io.BytesIO(data)).n_frames == 3  # type: ignore[attr-defined]
    img = load_image(data)
    assert img.mode == "RGB"
    assert f.close_to(f.mean_colour(img, (0, 0, 16, 16)), f.GREEN, tol=5)


def test_animated_webp_uses_first_frame() -> None:
    frames = [f.solid((16, 16), c) for c in (f.BLUE, f.RED)]
    data = f.encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    img = load_image(data)
    assert f.close_to(f.mean_colour(img, (0, 0, 16, 16)), f.BLUE, tol=5)


def test_exif_orientation_6_is_applied() -> None:
    # Stored 64x32: left half red, right half blue. Orientation 6 = "rotate 90° clockwise to
    # display", so the upright picture is 32x64 with red on top and blue at the bottom.
    data = f.jpeg_with_orientation(f.halves((64, 32), f.RED, f.BLUE), 6)
    raw = Image.open(io.BytesIO(data))
    assert raw.size == (64, 32)
    assert raw.getexif()[0x0112] == 6

    img = load_image(data)
    assert img.mode == "RGB"
    assert img.size == (32, 64)
    assert f.close_to(f.mean_colour(img, (4, 4, 28, 28)), f.RED)
    assert f.close_to(f.mean_colour(img, (4, 36, 28, 60)), f.BLUE)


def test_exif_orientation_3_is_applied() -> None:
    data = f.jpeg_with_orientation(f.halves((64, 32), f.RED, f.BLUE), 3)  # rotate 180°
    img = load_image(data)
    assert img.size == (64, 32)
    assert f.close_to(f.mean_colour(img, (4, 4, 28, 28)), f.BLUE)
    assert f.close_to(f.mean_colour(img, (36, 4, 60, 28)), f.RED)


def test_palette_without_transparency() -> None:
    pal = f.halves((32, 16), f.RED, f.BLUE).convert("P")
    assert pal.mode == "P"
    img = load_image(f.png(pal))
    assert img.mode == "RGB"
    assert img.getpixel((2, 2)) == f.RED
    assert img.getpixel((30, 2)) == f.BLUE


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_white(fmt: str) -> None:
    pal = f.palette_with_transparency()
    data = f.encode(pal, fmt, transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"
    img = load_image(data)
    assert img.mode == "RGB"
    assert img.getpixel((2, 2)) == f.WHITE  # transparent green index -> white, not green
    assert img.getpixel((14, 2)) == f.BLUE


def test_rgba_transparency_becomes_white() -> None:
    img = load_image(f.png(f.rgba_half_transparent()))
    assert img.mode == "RGB"
    assert img.getpixel((2, 2)) == f.WHITE  # transparent black -> white, not black
    assert img.getpixel((14, 2)) == f.RED


def test_rgba_webp_transparency_becomes_white() -> None:
    data = f.encode(f.rgba_half_transparent(), "WEBP", lossless=True)
    img = load_image(data)
    assert img.getpixel((2, 2)) == f.WHITE
    assert img.getpixel((14, 2)) == f.RED


def test_la_transparency_becomes_white() -> None:
    data = f.png(f.la_half_transparent())
    assert Image.open(io.BytesIO(data)).mode == "LA"
    img = load_image(data)
    assert img.mode == "RGB"
    assert img.getpixel((2, 2)) == f.WHITE
    assert img.getpixel((14, 2)) == (64, 64, 64)


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = f.jpeg(f.solid((16, 16), f.RED, mode="CMYK"), quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    img = load_image(data)
    assert img.mode == "RGB"
    assert f.close_to(f.mean_colour(img, (0, 0, 16, 16)), f.RED)


def test_16bit_grey_is_scaled_not_clipped() -> None:
    gradient = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    data = f.png(f.grey16(gradient))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    img = load_image(data)
    assert img.mode == "RGB"
    arr = np.asarray(img)
    assert arr[0, 0].tolist() == [0, 0, 0]
    assert arr[0, -1].tolist() == [255, 255, 255]
    mid = int(arr[0, 32, 0])
    assert 120 <= mid <= 140  # ~ 32/63 * 255: scaled, not clipped to white
    assert (np.diff(arr[0, :, 0].astype(int)) >= 0).all()  # monotone gradient preserved


@pytest.mark.parametrize(("value", "expected"), [(30000, 117), (65535, 255), (200, 1), (0, 0)])
def test_16bit_grey_scale_does_not_depend_on_image_maximum(value: int, expected: int) -> None:
    # A dark 16-bit image (all values <= 255) must stay dark: 200/65535 is ~0.3% brightness.
    data = f.png(f.grey16(np.full((8, 8), value, dtype=np.uint16)))
    img = load_image(data)
    assert img.getpixel((0, 0)) == (expected, expected, expected)


def test_greyscale_l_becomes_rgb() -> None:
    data = f.png(Image.new("L", (8, 8), 77))
    img = load_image(data)
    assert img.mode == "RGB"
    assert img.getpixel((3, 3)) == (77, 77, 77)


def test_bilevel_becomes_rgb() -> None:
    data = f.png(Image.new("1", (8, 8), 1))
    img = load_image(data)
    assert img.mode == "RGB"
    assert img.getpixel((3, 3)) == f.WHITE


def test_draft_size_keeps_at_least_requested_size() -> None:
    data = f.jpeg(f.noise((400, 300)))
    img = load_image(data, draft_size=(100, 75))
    assert img.mode == "RGB"
    assert img.size[0] >= 100 and img.size[1] >= 75
    assert img.size[0] <= 400


def test_pixel_cap_inclusive_boundary() -> None:
    data = f.png(f.solid((40, 25)))  # exactly 1000 pixels: allowed
    assert load_image(data, limits=ImageLimits(max_pixels=1000)).size == (40, 25)


def test_read_image_bytes_and_content_hash(tmp_path: Path) -> None:
    data = f.png()
    path = tmp_path / "a.png"
    path.write_bytes(data)
    assert read_image_bytes(path) == data
    assert content_hash(data) == content_hash(read_image_bytes(path))
    assert len(content_hash(data)) == 64
    assert content_hash(data) != content_hash(f.png(f.noise(seed=1)))


# --------------------------------------------------------------------------------------------
# Bad inputs: each must raise ImageLoadError naming the file and the reason
# --------------------------------------------------------------------------------------------


def _corrupt_jpeg_header() -> bytes:
    # JPEG decoders shrug off garbage in the entropy-coded data, so break the SOF/DHT headers.
    data = f.jpeg()
    sof = data.index(b"\xff\xc0")
    return data[:sof] + b"\xff\xc0\x00\x03" + b"\x00" * 32 + data[sof + 36 :]


BAD_BYTES: dict[str, tuple[Callable[[], bytes], str, type[ImageLoadError]]] = {
    # name: (maker, substring expected in the reason, error class)
    "truncated.jpg": (lambda: f.truncated(f.jpeg()), "truncated", ImageLoadError),
    "truncated.png": (lambda: f.truncated(f.png()), "truncated", ImageLoadError),
    "truncated-header.jpg": (lambda: f.jpeg()[:200], "truncated", ImageLoadError),
    "corrupt.png": (lambda: f.corrupt_middle(f.png()), "corrupt", ImageLoadError),
    "corrupt-ff.png": (lambda: f.corrupt_middle(f.png(), value=0xFF), "corrupt", ImageLoadError),
    "corrupt-header.jpg": (_corrupt_jpeg_header, "", ImageLoadError),
    "text.jpg": (lambda: b"this is plain text, not a JPEG\n" * 4, "not an image", ImageLoadError),
    "document.pdf": (f.minimal_pdf, "not an image (a PDF document)", ImageLoadError),
    "scan.tiff": (f.tiff, "unsupported image format TIFF", ImageLoadError),
    "scan-renamed.jpg": (f.tiff, "unsupported image format TIFF", ImageLoadError),
    "bomb.png": (
        lambda: f.png_with_declared_size(30000, 30000),
        "decompression bomb",
        ImageTooLargeError,
    ),
    "huge-dims.png": (
        lambda: f.png_with_declared_size(2**31 - 1, 2**31 - 1),
        "",
        ImageTooLargeError,
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_BYTES))
def test_bad_file_raises_named_error(name: str, tmp_path: Path) -> None:
    maker, reason, error = BAD_BYTES[name]
    path = tmp_path / name
    path.write_bytes(maker())
    with pytest.raises(error) as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert info.value.source == str(path)
    assert reason in info.value.reason
    assert info.value.reason.strip()


@pytest.mark.parametrize("name", sorted(BAD_BYTES))
def test_bad_bytes_raise_named_error(name: str) -> None:
    maker, reason, error = BAD_BYTES[name]
    with pytest.raises(error) as info:
        load_image(maker(), name=f"upload:{name}")
    assert str(info.value).startswith(f"upload:{name}: ")
    assert reason in info.value.reason


def test_unnamed_bytes_are_labelled() -> None:
    with pytest.raises(ImageLoadError, match=r"^<bytes>: "):
        load_image(b"nope")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty") as info:
        load_image(path)
    assert str(path) in str(info.value)
    with pytest.raises(ImageLoadError, match="empty"):
        read_image_bytes(path)


def test_empty_bytes() -> None:
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(b"", name="blank")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "missing.jpg"
    with pytest.raises(ImageLoadError, match="not found") as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, ImageTooLargeError)


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "folder.jpg"
    path.mkdir()
    with pytest.raises(ImageLoadError, match="not a regular file") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_pixel_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(f.png(f.solid((50, 50))))  # 2500 pixels
    with pytest.raises(ImageTooLargeError, match=r"50x50 = 2,500 pixels.*1,000-pixel cap") as info:
        load_image(path, limits=ImageLimits(max_pixels=1000))
    assert str(path) in str(info.value)


def test_pixel_cap_checked_from_header_before_decoding() -> None:
    # 20000x20000 claimed (400 M pixels) but the pixel data is for 8x8: the cap must trip first.
    data = f.png_with_declared_size(5000, 5000)
    with pytest.raises(ImageTooLargeError, match="pixel cap"):
        load_image(data, limits=ImageLimits(max_pixels=1_000_000))


def test_byte_cap_path(tmp_path: Path) -> None:
    data = f.png()
    path = tmp_path / "heavy.png"
    path.write_bytes(data)
    cap = len(data) - 1
    with pytest.raises(ImageTooLargeError, match="byte cap") as info:
        load_image(path, limits=ImageLimits(max_bytes=cap))
    assert str(path) in str(info.value)
    with pytest.raises(ImageTooLargeError, match="byte cap"):
        read_image_bytes(path, ImageLimits(max_bytes=cap))
    assert load_image(path, limits=ImageLimits(max_bytes=len(data))).size == (64, 48)


def test_byte_cap_bytes() -> None:
    data = f.png()
    with pytest.raises(ImageTooLargeError, match="byte cap"):
        load_image(data, limits=ImageLimits(max_bytes=len(data) - 1), name="upload")


def test_pillow_bomb_warning_becomes_error_even_with_a_generous_cap() -> None:
    # Between Pillow's MAX_IMAGE_PIXELS (warning) and 2x that (hard error): Pillow only *warns*,
    # and our own cap is set far higher, so only the warning->error conversion stops it.
    limit = Image.MAX_IMAGE_PIXELS
    assert limit is not None
    side = int((limit * 1.2) ** 0.5)
    assert limit < side * side < 2 * limit
    data = f.png_with_declared_size(side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # even if the caller does not turn warnings into errors
        with pytest.raises(ImageTooLargeError, match="decompression bomb"):
            load_image(data, limits=ImageLimits(max_pixels=10**12), name="bomb")


def test_pillow_bomb_error_with_a_generous_cap() -> None:
    data = f.png_with_declared_size(30000, 30000)  # 900 M pixels, > 2x Pillow's limit
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        load_image(data, limits=ImageLimits(max_pixels=10**12))


def test_bomb_warning_filter_does_not_leak() -> None:
    data = f.png_with_declared_size(30000, 30000)
    before = list(warnings.filters)
    with pytest.raises(ImageTooLargeError):
        load_image(data)
    assert list(warnings.filters) == before


# --------------------------------------------------------------------------------------------
# Fuzzing: load as RGB or raise ImageLoadError, never anything else
# --------------------------------------------------------------------------------------------

_FUZZ_LIMITS = ImageLimits(max_pixels=4_000_000, max_bytes=1_000_000)
_SEEDS = {
    "jpeg": f.jpeg(f.noise((24, 16))),
    "png": f.png(f.noise((24, 16))),
    "gif": f.animated_gif([f.RED, f.BLUE], (12, 12)),
    "webp": f.encode(f.noise((16, 16)), "WEBP", quality=80),
    "bmp": f.encode(f.solid((8, 8)), "BMP"),
    "exif-jpeg": f.jpeg_with_orientation(f.solid((16, 8)), 6),
}


def _check(data: bytes) -> None:
    try:
        img = load_image(data, limits=_FUZZ_LIMITS, name="fuzz")
    except ImageLoadError as exc:
        assert str(exc).startswith("fuzz: ")
        return
    assert img.mode == "RGB"
    assert img.size[0] > 0 and img.size[1] > 0


# Pillow warns (UserWarning) about corrupt EXIF it then ignores; that is fine here.
_quiet = pytest.mark.filterwarnings("ignore::UserWarning")

_FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


@_quiet
@_FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data: bytes) -> None:
    _check(data)


@_quiet
@_FUZZ
@given(
    st.sampled_from(sorted(_SEEDS)),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_fuzz_mutated_images(kind: str, edits: list[tuple[int, int]], cut: float | None) -> None:
    data = bytearray(_SEEDS[kind])
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: int(len(data) * cut)]
    _check(bytes(data))


@_quiet
@_FUZZ
@given(st.sampled_from(sorted(_SEEDS)), st.integers(0, 64), st.binary(min_size=1, max_size=64))
def test_fuzz_header_splices(kind: str, pos: int, junk: bytes) -> None:
    # Mutations concentrated in the first bytes, where headers (sizes, modes, EXIF) live.
    seed = _SEEDS[kind]
    _check(seed[:pos] + junk + seed[pos + len(junk) :])


def test_decoding_in_threads_leaves_the_warning_filters_alone() -> None:
    # warnings.catch_warnings() swaps the process-wide filter list: two threads decoding at
    # once restored each other's copies, leaving a filter behind (or dropping the caller's).
    import threading

    photo = f.jpeg(f.noise((600, 400)))
    before = list(warnings.filters)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(150):
                load_image(photo, draft_size=(224, 224))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert list(warnings.filters) == before
