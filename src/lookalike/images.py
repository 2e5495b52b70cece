"""Safe image decoding.

Every image is untrusted input: it may be corrupt, truncated, empty, not an image at all, a
decompression bomb, a geometry bomb (40,000 x 1 pixels) or built to make the decoder work for
minutes (a JPEG of thousands of scans, a PNG of millions of chunks). `load_image` turns any of
those into one `ImageLoadError` naming the source and the reason, and every good image into an
upright RGB picture.

The cost of one image is bounded by design, before any pixel is decoded (`ImageLimits`):

1. the byte cap, then the format from its magic bytes (only JPEG, PNG, WebP, GIF, BMP are
   handed to Pillow, and only to that format's plugin);
2. the container walked in C-speed steps with a cap on the segments, chunks, blocks and JPEG
   scans that Pillow or libjpeg would otherwise parse one by one (`_inspect`);
3. from the header: the pixel cap, the aspect-ratio cap, and the number of pixels that would be
   decoded: a sequential JPEG asked for a small `draft_size` decodes at 1/2..1/8 scale, every
   other image at full size, which must stay under `max_full_decode_pixels`;
4. after decoding, an image larger than `draft_size` is box-reduced at once, so orientation,
   mode conversion and the encoder's preprocessing only ever touch a small picture.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from struct import error as struct_error
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from lookalike.errors import ImageLoadError, ImageTooLargeError

__all__ = [
    "ALLOWED_FORMATS",
    "ImageLimits",
    "ImageSource",
    "content_hash",
    "load_image",
    "read_image_bytes",
    "read_image_stream",
]

# Formats we accept (MPO is how Pillow names a JPEG with extra frames). Anything else (PDF,
# TIFF, HEIC...) is rejected before Pillow sees it.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "MPO"})

# Pillow must never silently accept a truncated file.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class ImageLimits:
    """Caps applied before and during decoding (see the module docstring and the security
    guide, docs/guide/security.md).

    With the defaults one image costs at most about 1 s of one core and 300 MB of memory to
    decode and preprocess (`bench/bench_hostile_images.py` measures the worst case).
    """

    #: pixels (width x height, from the header) of any image
    max_pixels: int = 40_000_000
    #: bytes of an image file or upload
    max_bytes: int = 30 * 1024 * 1024
    #: pixels actually decoded: every image but a sequential JPEG decoded in draft mode is
    #: decoded at full size (4 bytes a pixel, and the decoders' time grows with it)
    max_full_decode_pixels: int = 16_000_000
    #: longer side / shorter side: a garment photo is never a 1-pixel-high strip
    max_aspect_ratio: float = 20.0
    #: scans of a progressive JPEG: libjpeg runs over the whole image once per scan
    max_jpeg_scans: int = 64
    #: bytes of a JPEG that is not single-scan Huffman-sequential (progressive, arithmetic,
    #: lossless): it is decoded at full size, its scans at up to ~45 ms of CPU per MB
    max_progressive_jpeg_bytes: int = 8 * 1024 * 1024
    #: JPEG segments, PNG chunks or GIF blocks before the pixels, which Pillow parses one by one
    max_segments: int = 20_000


ImageSource = str | Path | bytes


def _name(source: ImageSource, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, bytes):
        return "<bytes>"
    return str(source)


def read_image_bytes(
    path: str | Path, limits: ImageLimits = ImageLimits(), *, follow_symlinks: bool = True
) -> bytes:
    """Read a file's bytes, refusing missing, empty, oversized and special files clearly.

    The file is opened without blocking (a FIFO is refused, never waited on) and checked on the
    open descriptor, so what is checked is what is read. `follow_symlinks=False` refuses a file
    that is a symbolic link (callers that resolved the path first: a link swapped in later).
    """
    p = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise ImageLoadError(str(p), "file not found") from None
    except ValueError:  # a NUL byte in the path
        raise ImageLoadError(str(p), "invalid file name (NUL byte)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise ImageLoadError(str(p), "is a symbolic link") from None
        if exc.errno == errno.EISDIR:
            raise ImageLoadError(str(p), "not a regular file (a folder)") from None
        raise ImageLoadError(str(p), f"cannot read file ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
            raise ImageLoadError(str(p), f"not a regular file ({kind})")
        if info.st_size == 0:
            raise ImageLoadError(str(p), "file is empty (0 bytes)")
        if info.st_size > limits.max_bytes:
            raise ImageTooLargeError(
                str(p), f"file is {info.st_size:,} bytes, above the {limits.max_bytes:,}-byte cap"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limits.max_bytes + 1)  # a file growing meanwhile stays capped
    except OSError as exc:
        raise ImageLoadError(str(p), f"cannot read file ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if not data:
        raise ImageLoadError(str(p), "file is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(str(p), f"file is above the {limits.max_bytes:,}-byte cap")
    return data


def read_image_stream(
    stream: BinaryIO, limits: ImageLimits = ImageLimits(), name: str = "<stdin>"
) -> bytes:
    """Read an image from a stream (standard input), at most the byte cap: a longer stream is
    refused after `max_bytes` + 1 bytes, never read to its end."""
    try:
        data = stream.read(limits.max_bytes + 1)
    except OSError as exc:
        raise ImageLoadError(name, f"cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ImageLoadError(name, "image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(name, f"image is above the {limits.max_bytes:,}-byte cap")
    return data


def content_hash(data: bytes) -> str:
    """SHA-256 of an image's bytes: the catalog's duplicate key."""
    return hashlib.sha256(data).hexdigest()


# -- format and container ----------------------------------------------------------------------

#: Formats recognised only to name them in the error (they are never decoded).
_OTHER_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"8BPS", "PSD"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"qoif", "QOI"),
    (0, b"\xff\x0a", "JPEG XL"),
    (4, b"jP  ", "JPEG 2000"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
)
#: Files that are no image at all, named in the error.
_NOT_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
)


def _sniff(data: bytes) -> str | None:
    """The allowed format `data` claims by its magic bytes (Pillow's own tests), else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM":
        return "BMP"
    return None


def _other_format(data: bytes) -> str | None:
    for offset, magic, fmt in _OTHER_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return fmt
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096]):
        return "SVG"
    return None


@dataclass(frozen=True)
class _Container:
    """What the container walk learnt: for JPEG, whether it decodes sequentially."""

    sequential_jpeg: bool = False


# a marker after entropy-coded data: 0xFF followed by neither a stuffed 0x00, a restart marker
# (0xD0-0xD7, part of the data) nor a fill byte
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SEQUENTIAL = frozenset({0xC0, 0xC1})  # baseline and extended sequential, Huffman-coded
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _too_many(label: str, what: str, cap: int) -> ImageTooLargeError:
    return ImageTooLargeError(label, f"more than {cap:,} {what}: refused before decoding")


def _inspect_jpeg(data: bytes, limits: ImageLimits, label: str) -> _Container:
    """Walk the first JPEG image's markers, skipping entropy-coded data at C speed."""
    pos, segments, scans, sof = 2, 0, 0, 0
    end_of_data = len(data)
    while pos + 4 <= end_of_data:
        if data[pos] != 0xFF:  # stray bytes: libjpeg skips to the next marker too
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of the first image (an MPO's other frames are never decoded)
            break
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        segments += 1
        if segments > limits.max_segments:
            raise _too_many(label, "JPEG segments", limits.max_segments)
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            break  # corrupt: the decoder says so
        pos += 2 + length
        if marker in _JPEG_SOF and not sof:
            sof = marker
        elif marker == 0xDA:
            scans += 1
            if scans > limits.max_jpeg_scans:
                raise _too_many(label, "JPEG scans", limits.max_jpeg_scans)
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    sequential = sof in _JPEG_SEQUENTIAL and scans <= 1
    if not sequential and len(data) > limits.max_progressive_jpeg_bytes:
        raise ImageTooLargeError(
            label,
            f"a progressive JPEG of {len(data):,} bytes, above the "
            f"{limits.max_progressive_jpeg_bytes:,}-byte cap for JPEGs decoded scan by scan "
            "(a baseline JPEG may be larger)",
        )
    return _Container(sequential_jpeg=sequential)


def _inspect_png(data: bytes, limits: ImageLimits, label: str) -> _Container:
    pos, chunks = 8, 0
    while pos + 8 <= len(data):
        chunks += 1
        if chunks > limits.max_segments:
            raise _too_many(label, "PNG chunks", limits.max_segments)
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IEND":
            break
        pos += 12 + length
    return _Container()


def _inspect_gif(data: bytes, limits: ImageLimits, label: str) -> _Container:
    """Count the extension sub-blocks before the first frame (Pillow reads them one by one)."""
    pos = 13
    if len(data) > 10 and data[10] & 0x80:  # global colour table
        pos += 3 * (2 ** ((data[10] & 7) + 1))
    blocks = 0
    while pos < len(data) and data[pos] == 0x21:  # extension: label, then sub-blocks
        pos += 2
        while pos < len(data) and data[pos]:
            blocks += 1
            if blocks > limits.max_segments:
                raise _too_many(label, "GIF blocks before the first frame", limits.max_segments)
            pos += 1 + data[pos]
        pos += 1
    return _Container()


def _inspect_bmp(data: bytes, limits: ImageLimits, label: str) -> _Container:
    header = int.from_bytes(data[14:18], "little")
    compression = int.from_bytes(data[30:34], "little") if header >= 40 else 0
    if compression in (1, 2):  # Pillow decodes RLE in Python: ~0.15 s per MB
        raise ImageLoadError(label, "RLE-compressed BMP is not supported (save it as PNG)")
    return _Container()


_INSPECT = {
    "JPEG": _inspect_jpeg,
    "PNG": _inspect_png,
    "GIF": _inspect_gif,
    "BMP": _inspect_bmp,
}


# -- pixels ----------------------------------------------------------------------------------


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode to RGB; transparency composited on white, 16-bit scaled down, CMYK converted."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale (PNG is the only allowed source; older Pillows open it as "I"):
        # scale the full 0..65535 range to 8 bits instead of clipping to white. The scale must
        # not depend on the image's own maximum, or a dark 16-bit picture (all values <= 255)
        # would come out ~257 times too bright. round(v * 255 / 65535), in integers.
        arr = np.clip(np.asarray(img), 0, 65535).astype(np.uint32)
        grey = ((arr * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "F":
        farr = np.asarray(img, dtype=np.float64)
        lo, hi = float(farr.min()), float(farr.max())
        fgrey = ((farr - lo) / ((hi - lo) or 1.0) * 255.0).astype(np.uint8)
        return Image.fromarray(fgrey, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img if mode == "RGBA" else img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return img.convert("RGB")


def _reducible(img: Image.Image) -> Image.Image:
    """`img` in a mode `Image.reduce` averages correctly (palette indices cannot be)."""
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("P", "PA"):
        has_alpha = img.mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB")
    if img.mode.startswith("I;16"):
        return img.convert("I")
    return img


#: Decoded images above this many pixels are box-reduced before anything else touches them.
REDUCE_ABOVE_PIXELS = 4_000_000


def _reduce_to(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """A large decoded image box-reduced by the largest integer factor that keeps both sides
    above twice the larger target side: large enough whatever the EXIF orientation, and for
    the final resize to still average (area filter) as it would from the full-size picture.
    Images up to `REDUCE_ABOVE_PIXELS` are left alone (their vectors stay exactly as before)."""
    if img.width * img.height <= REDUCE_ABOVE_PIXELS:
        return img
    need = 2 * max(1, *target) + 1
    factor = min(img.width // need, img.height // need)
    if factor < 2:
        return img
    return _reducible(img).reduce(factor)


def _check_geometry(img: Image.Image, limits: ImageLimits, label: str) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(label, f"invalid image size {width}x{height}")
    pixels = width * height
    bomb = Image.MAX_IMAGE_PIXELS
    if bomb is not None and pixels > bomb:
        raise ImageTooLargeError(
            label,
            f"decompression bomb refused ({width}x{height} = {pixels:,} pixels, "
            f"above Pillow's {bomb:,})",
        )
    if pixels > limits.max_pixels:
        raise ImageTooLargeError(
            label,
            f"{width}x{height} = {pixels:,} pixels, above the {limits.max_pixels:,}-pixel cap",
        )
    ratio = max(width, height) / min(width, height)
    if ratio > limits.max_aspect_ratio:
        raise ImageLoadError(
            label,
            f"{width}x{height}: aspect ratio {ratio:,.0f}:1 is beyond "
            f"{limits.max_aspect_ratio:g}:1 (not a photo of an item)",
        )


def _check_decode_size(
    decoded: tuple[int, int], full: tuple[int, int], fmt: str, limits: ImageLimits, label: str
) -> None:
    """The pixels the decoder works on (after any draft) must fit the full-decode cap."""
    if decoded[0] * decoded[1] > limits.max_full_decode_pixels:
        raise ImageTooLargeError(
            label,
            f"{full[0]}x{full[1]} {fmt} = {full[0] * full[1]:,} pixels decoded at full size, "
            f"above the {limits.max_full_decode_pixels:,}-pixel cap (only a sequential JPEG "
            f"may have up to {limits.max_pixels:,}, decoded at reduced scale)",
        )


def load_image(
    source: ImageSource,
    *,
    limits: ImageLimits = ImageLimits(),
    name: str | None = None,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode `source` (path or bytes) into an upright RGB image, or raise `ImageLoadError`.

    `draft_size` is the smallest size the caller needs: a sequential JPEG is decoded at a
    power-of-two fraction of its size (much faster for large photos) and any larger image is
    box-reduced right after decoding. The result is never smaller than `draft_size` (unless
    the image is). Without it the image keeps its full size.
    """
    label = _name(source, name)
    if isinstance(source, bytes):
        data = source
        if not data:
            raise ImageLoadError(label, "image is empty (0 bytes)")
        if len(data) > limits.max_bytes:
            raise ImageTooLargeError(
                label, f"image is {len(data):,} bytes, above the {limits.max_bytes:,}-byte cap"
            )
    else:
        data = read_image_bytes(source, limits)
    fmt = _sniff(data)
    if fmt is None:
        other = _other_format(data)
        if other is not None:
            raise ImageLoadError(label, f"unsupported image format {other}")
        what = next((w for magic, w in _NOT_IMAGES if data.startswith(magic)), None)
        raise ImageLoadError(label, f"not an image ({what or 'format not recognised'})")
    try:
        inspect = _INSPECT.get(fmt)
        container = inspect(data, limits, label) if inspect is not None else _Container()
        # Pillow *warns* between MAX_IMAGE_PIXELS and twice that (and raises above): the
        # warning is an error here, checked in _check_geometry. Not with
        # warnings.catch_warnings(): it swaps the process-wide filter list, and two threads
        # decoding at once restored each other's.
        img: Image.Image = Image.open(io.BytesIO(data), formats=[fmt])
        opened = img.format or fmt
        if opened not in ALLOWED_FORMATS:
            raise ImageLoadError(label, f"unsupported image format {opened}")
        _check_geometry(img, limits, label)
        full = decoded = img.size
        if opened == "GIF":
            img.seek(0)
        if draft_size is not None and opened in ("JPEG", "MPO"):
            img.draft("RGB", draft_size)  # smaller output; less work only if sequential
            if container.sequential_jpeg:
                decoded = img.size
        _check_decode_size(decoded, full, opened, limits, label)
        img.load()
        if draft_size is not None:
            img = _reduce_to(img, draft_size)
        ImageOps.exif_transpose(img, in_place=True)  # a copy of every image otherwise
        return _to_rgb(img)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLargeError(label, f"decompression bomb refused ({exc})") from None
    except UnidentifiedImageError:
        raise ImageLoadError(label, "not an image (format not recognised)") from None
    except MemoryError:
        raise ImageTooLargeError(label, "not enough memory to decode") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError,
            ZeroDivisionError, OverflowError, struct_error) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text.lower():
            raise ImageLoadError(label, f"truncated image ({text})") from None
        raise ImageLoadError(label, f"corrupt image ({text})") from None
