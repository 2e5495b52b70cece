"""The bundled sample catalog (a few hundred CC0 photos) and the demo built on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lookalike.catalog import Catalog, IngestProgress, IngestReport
from lookalike.config import Settings

SAMPLE_DIR = Path(__file__).parent / "data" / "sample"


def sample_images() -> Path:
    return SAMPLE_DIR / "images"


def sample_metadata() -> Path:
    return SAMPLE_DIR / "catalog.csv"


def build_demo_catalog(
    settings: Settings, progress: Callable[[IngestProgress], None] | None = None
) -> tuple[Catalog, IngestReport]:
    """Open `settings.catalog_dir` and ingest the bundled sample into it (idempotent)."""
    catalog = Catalog.open(settings)
    report = catalog.ingest(
        sample_images(),
        sample_metadata(),
        report_path=Path(settings.catalog_dir) / "rejected.csv",
        progress=progress,
    )
    return catalog, report
