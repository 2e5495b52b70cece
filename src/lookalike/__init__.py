"""lookalike: recommend fashion items by how they look."""

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
from lookalike.errors import (
    CatalogMismatchError,
    FilterError,
    ImageLoadError,
    ImageTooLargeError,
    ItemNotFoundError,
    LookalikeError,
    UnknownEncoderError,
)
from lookalike.images import ImageLimits, load_image

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "CatalogMismatchError",
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
]
