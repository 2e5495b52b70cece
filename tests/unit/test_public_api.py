"""The package's public API is pinned, and importing it stays light: its heavy names load on
first use (so that `lookalike --help` does not wait for numpy, ONNX Runtime, FAISS...)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lookalike

PUBLIC = [
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


def test_public_api_is_pinned() -> None:
    assert lookalike.__all__ == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves_to_its_module_object(name: str) -> None:
    import lookalike.catalog
    import lookalike.config
    import lookalike.encoders
    import lookalike.errors
    import lookalike.images
    import lookalike.recommend

    value = getattr(lookalike, name)
    homes = (lookalike.catalog, lookalike.config, lookalike.encoders, lookalike.errors,
             lookalike.images, lookalike.recommend)
    if name != "__version__":
        assert any(getattr(home, name, None) is value for home in homes)
    assert name in dir(lookalike)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Catalogue'"):
        _ = lookalike.Catalogue  # type: ignore[attr-defined]


def test_subpackages_are_attributes_as_before() -> None:
    code = "import lookalike\nprint(lookalike.catalog.Catalog.__name__, lookalike.recommend.Feed)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("Catalog <class 'lookalike.recommend.feed.Feed'>"), out.stderr


def test_importing_the_package_loads_nothing_heavy() -> None:
    code = (
        "import sys, lookalike\n"
        "heavy = {'numpy', 'onnxruntime', 'faiss', 'torch', 'sklearn', 'PIL', 'fastapi',"
        " 'pydantic', 'pydantic_settings', 'rich'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
        "from lookalike import Catalog\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines() == ["[]", "True"], out.stderr
