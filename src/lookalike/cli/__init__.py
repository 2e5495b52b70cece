"""Command-line interface: `lookalike --help`. Each module registers its commands on `app`."""

from lookalike.cli import (
    catalog,  # noqa: F401  (registers commands)
    evaluate,  # noqa: F401
    maintenance,  # noqa: F401
    reembed,  # noqa: F401
    serve,  # noqa: F401
    shop,  # noqa: F401
    taste,  # noqa: F401
    train,  # noqa: F401
    vendors,  # noqa: F401
)
from lookalike.cli.app import app

__all__ = ["app"]
