"""Run the API and web page with uvicorn: `run_server(settings)`."""

from __future__ import annotations

import contextlib
import ctypes
import os

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


#: malloc arenas of the server and its search processes. glibc gives every thread that
#: allocates an arena of its own (up to 8 per core); with a server's many threads their memory
#: crept up under load (harness soak: +5.7 % in 5 min with the default, +2.1 % with 2).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number (glibc's malloc.h)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """As MALLOC_ARENA_MAX=`arenas` would (unless the environment already says): for this
    process through mallopt, for the processes it starts through the environment. Only on
    glibc; elsewhere nothing changes."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)


def run_server(settings: Settings) -> None:
    """Serve until interrupted, after printing where."""
    limit_malloc_arenas()
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
