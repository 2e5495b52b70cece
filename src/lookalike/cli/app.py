"""The Typer application object. Command modules register on it; they only parse arguments,
call the library and print."""

from __future__ import annotations

import warnings

import typer
from PIL import Image

# The library refuses an image past Pillow's decompression-bomb threshold itself, naming the
# file (lookalike.images); Pillow's own warning about it would only add a stray stderr line.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

app = typer.Typer(
    name="lookalike",
    help="Recommend fashion items by how they look.",
    no_args_is_help=True,
    add_completion=False,
)
