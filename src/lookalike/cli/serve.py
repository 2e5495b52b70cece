"""`lookalike serve`: the HTTP API and web page over a catalog (uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lookalike.cli.app import app
from lookalike.cli.catalog import fail, settings_from
from lookalike.errors import LookalikeError


@app.command("serve")
def serve_cmd(
    catalog: Annotated[
        Path | None, typer.Option("--catalog", "-c", help="Catalog folder.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    search_processes: Annotated[
        int | None,
        typer.Option(min=0, max=64, help="Processes to search photos in; 0 = threads. "
                     "Default: one per core."),
    ] = None,
) -> None:
    """Serve the API (docs at /docs) and the shopper's web page over a catalog."""
    from lookalike.api.server import run_server

    settings = settings_from(catalog)
    if host is not None:
        settings = settings.model_copy(update={"host": host})
    if port is not None:
        settings = settings.model_copy(update={"port": port})
    if search_processes is not None:
        settings = settings.model_copy(update={"search_processes": search_processes})
    if not (Path(settings.catalog_dir) / "catalog.sqlite").is_file():
        raise fail(LookalikeError(
            f"no catalog in {settings.catalog_dir}: "
            "run `lookalike ingest` or `lookalike demo` first"
        ))
    run_server(settings)
