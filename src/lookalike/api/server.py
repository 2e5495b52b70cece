"""Run the API and web page with uvicorn: `run_server(settings)`."""

from __future__ import annotations

import uvicorn

from lookalike.api.app import create_app
from lookalike.api.cpu import serving_processes
from lookalike.config import Settings


def url_of(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/"


def run_server(settings: Settings) -> None:
    """Serve until interrupted, after printing where."""
    settings = settings.model_copy(update={"search_processes": serving_processes(settings)})
    app = create_app(settings)
    url = url_of(settings)
    processes = settings.search_processes
    print(f"lookalike is serving {settings.catalog_dir} at {url}  (API docs: {url}docs)"
          + (f", searching in {processes} processes" if processes else ""), flush=True)
    print("press Ctrl+C to stop", flush=True)
    # the client address (rate limits are per client) comes from X-Forwarded-For only when the
    # connection comes from a proxy named in `trusted_proxies`
    proxies = settings.trusted_proxies
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
                server_header=False)
