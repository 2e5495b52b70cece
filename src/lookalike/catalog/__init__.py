"""The catalog: item schema, SQLite store, ingest, filters and the `Catalog` front door."""

from lookalike.catalog.catalog import Catalog, DuplicateItemError, Result
from lookalike.catalog.filters import Filters
from lookalike.catalog.ingest import IngestProgress, IngestReport, Rejection, ingest
from lookalike.catalog.schema import Item, ItemIn, ItemUpdate, Tag
from lookalike.catalog.store import CatalogStore, NewItem

__all__ = [
    "Catalog",
    "CatalogStore",
    "DuplicateItemError",
    "Filters",
    "IngestProgress",
    "IngestReport",
    "Item",
    "ItemIn",
    "ItemUpdate",
    "NewItem",
    "Rejection",
    "Result",
    "Tag",
    "ingest",
]
