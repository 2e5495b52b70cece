"""Filter mistakes in plain words, the same from the CLI, the API and the library; the values
that exist for a filter value no item has. (Pydantic's own text — "Input should be a valid
number, unable to parse string as a number [type=float_parsing ...] For further information
visit https://errors.pydantic.dev/..." — is for developers.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from catalog_factory import make_dataset
from lookalike import Catalog, FilterError, Filters, Settings
from lookalike.api import create_app
from lookalike.attributes import default_taggers
from lookalike.cli import app

MISTAKES = [
    (["price_max=cheap"], {"price_max": "cheap"}, "price_max must be a number, got 'cheap'"),
    (["kids=maybe"], {"kids": "maybe"}, "kids must be true or false, got 'maybe'"),
    (["min_sustainability=9"], {"min_sustainability": "9"},
     "min_sustainability must be at most 5, got 9"),
    (["price_min=-1"], {"price_min": "-1"}, "price_min must be at least 0, got -1"),
    (["price_min=50", "price_max=10"], {"price_min": "50", "price_max": "10"},
     "price_min 50 is above price_max 10"),
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    root = tmp_path_factory.mktemp("plain")
    images, meta, _ = make_dataset(root, 12)
    cat = Catalog.open(Settings(catalog_dir=root / "cat", model="fake"), taggers=default_taggers)
    cat.ingest(images, meta)
    yield cat
    cat.close()


@pytest.mark.parametrize(("cli", "query", "words"), MISTAKES)
def test_the_same_plain_words_everywhere(
    catalog: Catalog, cli: list[str], query: dict[str, str], words: str
) -> None:
    with pytest.raises(FilterError) as raised:
        Filters.parse(cli)
    assert str(raised.value) == f"bad filter: {words}"
    args = ["similar", "item-0001", "-c", str(catalog.settings.catalog_dir)]
    res = CliRunner().invoke(app, [*args, *(a for e in cli for a in ("-f", e))])
    assert res.exit_code == 2 and res.stderr == f"error: bad filter: {words}\n"
    client = TestClient(create_app(catalog.settings, catalog))
    response = client.get("/items", params=query)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.endswith(words), detail
    assert "pydantic" not in detail and "Input should" not in detail


def test_unknown_values_are_listed_with_the_values_that_exist(catalog: Catalog) -> None:
    filters = Filters(category=["dress", "Spacesuits"], colour=["ultraviolet"], size=["XXS"])
    notes = catalog.unknown_filter_values(filters)
    assert notes[0] == "no item has category 'Spacesuits'; categories: Dress, Pants, Shoes, T-Shirt"
    assert notes[1].startswith("no item has colour 'ultraviolet'; colours: ")
    assert notes[2] == "no item has size 'XXS'; sizes: L, M, S"
    assert len(notes) == 3  # 'dress' matches Dress, as the filter does
    assert catalog.values("brand") == ["Acme", "Borealis", "Cobalt"]
    assert catalog.unknown_filter_values(Filters(brand=["acme"])) == []


def test_a_missing_catalog_is_not_created(tmp_path: Path) -> None:
    from lookalike import CatalogNotFoundError

    with pytest.raises(CatalogNotFoundError, match=r"no catalog at .*lookalike ingest"):
        Catalog.open(Settings(catalog_dir=tmp_path / "typo", model="fake"), create=False,
                     taggers=default_taggers)
    assert not (tmp_path / "typo").exists()
