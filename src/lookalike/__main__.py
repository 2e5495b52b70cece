"""`python -m lookalike` runs the CLI."""

from lookalike.cli import app

app()
