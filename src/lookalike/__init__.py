"""lookalike: recommend fashion items by how they look.

The public names below load on first use (`lookalike.Catalog` imports numpy, ONNX Runtime,
FAISS...), so that `import lookalike` — and `lookalike --help` — stay fast. The error types
are light and load at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lookalike.errors import (
    CatalogMismatchError,
    CatalogNotFoundError,
    FilterError,
    ImageLoadError,
    ImageTooLargeError,
    ItemNotFoundError,
    LookalikeError,
    UnknownEncoderError,
)

if TYPE_CHECKING:
    from lookalike.catalog import (
        Catalog,
        Filters,
        IngestReport,
        Item,
        ItemIn,
        ItemUpdate,
        Result,
        Tag,
    )
    from lookalike.config import Settings
    from lookalike.encoders import Encoder, available, create
    from lookalike.images import ImageLimits, load_image
    from lookalike.recommend import search_image, similar

__version__ = "0.1.0"

#: Where each lazily loaded public name lives.
_LAZY = {
    **dict.fromkeys(
        ("Catalog", "Filters", "IngestReport", "Item", "ItemIn", "ItemUpdate", "Result", "Tag"),
        "lookalike.catalog",
    ),
    "Settings": "lookalike.config",
    **dict.fromkeys(("Encoder", "available", "create"), "lookalike.encoders"),
    **dict.fromkeys(("ImageLimits", "load_image"), "lookalike.images"),
    **dict.fromkeys(("search_image", "similar"), "lookalike.recommend"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:  # a subpackage, as `import lookalike; lookalike.catalog` once gave
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module 'lookalike' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Catalog",
    "CatalogMismatchError",
    "CatalogNotFoundError",
    "Encoder",
    "FilterError",
    "Filters",
    "ImageLimits",
    "ImageLoadError",
    "ImageTooLargeError",
    "IngestReport",
    "Item",
    "ItemIn",
    "ItemNotFoundError",
    "ItemUpdate",
    "LookalikeError",
    "Result",
    "Settings",
    "Tag",
    "UnknownEncoderError",
    "__version__",
    "available",
    "create",
    "load_image",
    "search_image",
    "similar",
]
