"""Make test images on the fly with Pillow: no binary fixtures are committed.

Every helper returns encoded bytes (or a Pillow image) so tests can write them to `tmp_path`
or feed them straight to `load_image`.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)

Colour = tuple[int, int, int]


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    """Encode `img` in format `fmt` (Pillow name: "JPEG", "PNG"...)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def solid(size: tuple[int, int] = (32, 24), colour: Colour = RED, mode: str = "RGB") -> Image.Image:
    """A one-colour RGB image, converted to `mode`."""
    img = Image.new("RGB", size, colour)
    return img if mode == "RGB" else img.convert(mode)


def halves(
    size: tuple[int, int] = (64, 32), left: Colour = RED, right: Colour = BLUE
) -> Image.Image:
    """RGB image whose left half is `left` and right half is `right`."""
    width, height = size
    img = Image.new("RGB", size, right)
    img.paste(left, (0, 0, width // 2, height))
    return img


def noise(size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    """Random RGB noise: compresses badly, so truncation really cuts pixel data."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr, mode="RGB")


def jpeg(img: Image.Image | None = None, quality: int = 90, **params: Any) -> bytes:
    return encode(img if img is not None else noise(), "JPEG", quality=quality, **params)


def png(img: Image.Image | None = None, **params: Any) -> bytes:
    return encode(img if img is not None else noise(), "PNG", **params)


def jpeg_with_orientation(img: Image.Image, orientation: int) -> bytes:
    """JPEG of `img` (stored as is) carrying EXIF orientation tag 0x0112 = `orientation`."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


def animated_gif(colours: list[Colour], size: tuple[int, int] = (16, 16)) -> bytes:
    """Animated GIF, one solid frame per colour."""
    frames = [Image.new("RGB", size, c).convert("P") for c in colours]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def palette_with_transparency(size: tuple[int, int] = (16, 16)) -> Image.Image:
    """Mode P image: left half index 0 (transparent), right half index 1 (opaque blue)."""
    img = Image.new("P", size, 0)
    img.putpalette([0, 255, 0, 0, 0, 255] + [0, 0, 0] * 254)
    img.paste(1, (size[0] // 2, 0, size[0], size[1]))
    img.info["transparency"] = 0
    return img


def rgba_half_transparent(size: tuple[int, int] = (16, 16)) -> Image.Image:
    """RGBA: left half fully transparent black, right half opaque red."""
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    return img


def la_half_transparent(size: tuple[int, int] = (16, 16)) -> Image.Image:
    """LA: left half fully transparent black, right half opaque dark grey (64)."""
    img = Image.new("LA", size, (0, 0))
    img.paste((64, 255), (size[0] // 2, 0, size[0], size[1]))
    return img


def grey16(values: np.ndarray[Any, np.dtype[np.uint16]]) -> Image.Image:
    """16-bit greyscale (mode I;16) image from a 2-D uint16 array."""
    return Image.fromarray(values.astype(np.uint16))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with_declared_size(width: int, height: int, img: Image.Image | None = None) -> bytes:
    """A real small PNG whose IHDR is patched to claim `width` x `height` (CRC fixed up).

    Cheap to make and tiny; only decoding it would be expensive, so loaders must refuse it from
    the header alone.
    """
    data = png(img if img is not None else solid((8, 8), BLACK))
    assert data[12:16] == b"IHDR"
    body = bytearray(data[16:29])
    body[0:8] = struct.pack(">II", width, height)
    return data[:8] + _chunk(b"IHDR", bytes(body)) + data[33:]


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    """The first `fraction` of `data`."""
    return data[: max(1, int(len(data) * fraction))]


def corrupt_middle(data: bytes, length: int = 64, value: int = 0x00) -> bytes:
    """`data` with `length` bytes in the middle overwritten by `value`."""
    mid = len(data) // 2
    return data[:mid] + bytes([value]) * length + data[mid + length :]


def tiff(img: Image.Image | None = None) -> bytes:
    return encode(img if img is not None else solid(), "TIFF")


def minimal_pdf() -> bytes:
    """A tiny but well-formed one-page PDF (no image in it)."""
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 10 10]>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )


def mean_colour(img: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    """Mean RGB of `box` (left, top, right, bottom) of an RGB image."""
    arr = np.asarray(img.crop(box), dtype=np.float64)
    r, g, b = arr.reshape(-1, 3).mean(axis=0)
    return float(r), float(g), float(b)


def close_to(actual: tuple[float, ...], expected: tuple[float, ...], tol: float = 40.0) -> bool:
    """Every channel of `actual` within `tol` of `expected` (JPEG is lossy)."""
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))
