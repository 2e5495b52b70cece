"""Safe image decoding.

Every image is untrusted input: it may be corrupt, truncated, empty, not an image at all, a
decompression bomb or simply huge. `load_image` turns any of those into one `ImageLoadError`
naming the source and the reason, and turns every good image into an upright RGB picture.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from lookalike.errors import ImageLoadError, ImageTooLargeError

# Formats we accept. Anything else (PDF, TIFF stacks, EPS...) is rejected before decoding.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "MPO"})

# Pillow must never silently accept a truncated file.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class ImageLimits:
    """Caps applied before and during decoding."""

    max_pixels: int = 40_000_000
    max_bytes: int = 30 * 1024 * 1024


ImageSource = str | Path | bytes


def _name(source: ImageSource, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, bytes):
        return "<bytes>"
    return str(source)


def read_image_bytes(path: str | Path, limits: ImageLimits = ImageLimits()) -> bytes:
    """Read a file's bytes, refusing missing, empty and oversized files with a clear error."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ImageLoadError(str(p), "file not found") from None
    except OSError as exc:
        raise ImageLoadError(str(p), f"cannot read file ({exc.strerror or exc})") from None
    if not p.is_file():
        raise ImageLoadError(str(p), "not a regular file")
    if size == 0:
        raise ImageLoadError(str(p), "file is empty (0 bytes)")
    if size > limits.max_bytes:
        raise ImageTooLargeError(
            str(p), f"file is {size:,} bytes, above the {limits.max_bytes:,}-byte cap"
        )
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ImageLoadError(str(p), f"cannot read file ({exc.strerror or exc})") from None


def content_hash(data: bytes) -> str:
    """SHA-256 of an image's bytes: the catalog's duplicate key."""
    return hashlib.sha256(data).hexdigest()


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
        # would come out ~257 times too bright.
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        grey = np.clip(np.rint(arr * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "F":
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        grey = ((arr - lo) / ((hi - lo) or 1.0) * 255.0).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return img.convert("RGB")


def load_image(
    source: ImageSource,
    *,
    limits: ImageLimits = ImageLimits(),
    name: str | None = None,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode `source` (path or bytes) into an upright RGB image, or raise `ImageLoadError`.

    `draft_size` lets JPEG decoding scale down by a power of two while decoding (much faster for
    large photos); the result is never smaller than `draft_size`.
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
    try:
        # Pillow *warns* between MAX_IMAGE_PIXELS and twice that (and raises above): the warning
        # is an error here, checked below. Not with warnings.catch_warnings(): it swaps the
        # process-wide filter list, and two threads decoding at once restored each other's.
        img: Image.Image = Image.open(io.BytesIO(data))
        fmt = img.format or "unknown"
        if fmt not in ALLOWED_FORMATS:
            raise ImageLoadError(label, f"unsupported image format {fmt}")
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageLoadError(label, f"invalid image size {width}x{height}")
        bomb = Image.MAX_IMAGE_PIXELS
        if bomb is not None and width * height > bomb:
            raise ImageTooLargeError(
                label,
                f"decompression bomb refused ({width}x{height} = {width * height:,} pixels, "
                f"above Pillow's {bomb:,})",
            )
        if width * height > limits.max_pixels:
            raise ImageTooLargeError(
                label,
                f"{width}x{height} = {width * height:,} pixels, above the "
                f"{limits.max_pixels:,}-pixel cap",
            )
        if fmt == "GIF":
            img.seek(0)
        if draft_size is not None and fmt in ("JPEG", "MPO"):
            img.draft("RGB", draft_size)
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # a copy of every image otherwise
        return _to_rgb(img)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLargeError(label, f"decompression bomb refused ({exc})") from None
    except UnidentifiedImageError:
        raise ImageLoadError(label, "not an image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text.lower():
            raise ImageLoadError(label, f"truncated image ({text})") from None
        raise ImageLoadError(label, f"corrupt image ({text})") from None
    except MemoryError:
        raise ImageTooLargeError(label, "not enough memory to decode") from None
