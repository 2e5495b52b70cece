"""Fixtures of the hostile-input suite: the corpora (made once per session) and a catalog of
the bundled sample built with the fake encoder (a registered encoder, not a mock)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lookalike import Catalog, Settings
from lookalike.demo import build_demo_catalog


@pytest.fixture(scope="session")
def sample_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """A read-only catalog to search (fake encoder): hostile queries must leave it as it is."""
    settings = Settings(catalog_dir=tmp_path_factory.mktemp("hostile-sample"), model="fake")
    catalog, report = build_demo_catalog(settings)
    assert report.added == 306
    yield catalog
    catalog.close()
