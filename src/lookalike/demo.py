"""The bundled sample catalog (a few hundred CC0 photos) and the demo built on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lookalike.attributes import default_taggers
from lookalike.catalog import Catalog, Filters, IngestProgress, IngestReport, Item
from lookalike.config import Settings

SAMPLE_DIR = Path(__file__).parent / "data" / "sample"


def sample_images() -> Path:
    return SAMPLE_DIR / "images"


def sample_metadata() -> Path:
    return SAMPLE_DIR / "catalog.csv"


def sample_brand_ratings() -> Path:
    """The sample's brand ratings: invented for the demo, like its brands."""
    return SAMPLE_DIR / "brand_ratings.csv"


def build_demo_catalog(
    settings: Settings, progress: Callable[[IngestProgress], None] | None = None
) -> tuple[Catalog, IngestReport]:
    """Open `settings.catalog_dir` and ingest the bundled sample into it, with its (invented)
    brand ratings (idempotent)."""
    catalog = Catalog.open(settings, taggers=default_taggers)
    report = catalog.ingest(
        sample_images(),
        sample_metadata(),
        report_path=Path(settings.catalog_dir) / "rejected.csv",
        progress=progress,
    )
    catalog.import_brand_ratings(sample_brand_ratings(), replace=True)
    return catalog, report


def demo_queries(
    catalog: Catalog, categories: tuple[str, ...] = ("Dress", "Shoes", "Hat")
) -> list[Item]:
    """One catalog item of each of a few categories, to show "more like this" on."""
    found: list[Item] = []
    for category in categories:
        items = catalog.items(Filters(category=[category]), limit=1)
        found.extend(items)
    return found
