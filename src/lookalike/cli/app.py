"""The Typer application object. Command modules register on it; they only parse arguments,
call the library and print."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="lookalike",
    help="Recommend fashion items by how they look.",
    no_args_is_help=True,
    add_completion=False,
)
