"""`lookalike serve`: the HTTP API and web page over a catalog (uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer

from lookalike.cli.app import app
from lookalike.cli.catalog import CatalogOpt, PortOpt, settings_from


@app.command("serve")
def serve_cmd(
    catalog: CatalogOpt = None,
    host: Annotated[
        str | None,
        typer.Option(metavar="HOST", show_default="127.0.0.1, or $LOOKALIKE_HOST",
                     help="Interface to listen on (0.0.0.0: every interface)."),
    ] = None,
    port: PortOpt = None,
    search_processes: Annotated[
        int | None,
        typer.Option(metavar="N", min=0, max=64, show_default="one per core",
                     help="Processes to search photos in; 0 = threads of the server process."),
    ] = None,
) -> None:
    """Serve the API (docs at /docs) and the shopper's web page over a catalog."""
    settings = settings_from(catalog)
    if host is not None:
        settings = settings.model_copy(update={"host": host})
    if port is not None:
        settings = settings.model_copy(update={"port": port})
    if search_processes is not None:
        settings = settings.model_copy(update={"search_processes": search_processes})
    from lookalike.api.server import run_server

    run_server(settings)
