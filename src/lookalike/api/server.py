"""Run the API and web page with uvicorn: `run_server(settings)`.

The port is bound first (`listen`), before the catalog and model load, so a taken port is one
clear error at once; "serving at ..." is printed only once the socket accepts connections.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import sys
from collections.abc import Callable

import uvicorn

from lookalike.api.app import create_app
from lookalike.api.cpu import serving_processes
from lookalike.catalog.catalog import require_catalog
from lookalike.config import Settings
from lookalike.errors import LookalikeError


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


def listen(settings: Settings) -> socket.socket:
    """A socket bound to `settings.host`:`settings.port` (not yet listening: connections are
    refused until the server is up). A taken port, a host that is not this machine's, or a
    port that needs privileges raise a LookalikeError saying which."""
    host, port = settings.host, settings.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: no TIME_WAIT wait
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise LookalikeError(
                f"cannot serve on {where}: the port is already in use (another lookalike "
                "serve?); stop that program or choose another port with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise LookalikeError(
                f"cannot serve on {where}: no permission (ports below 1024 need root); "
                "choose another port with --port"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            raise LookalikeError(
                f"cannot serve on {where}: {host!r} is not an address of this machine; "
                "use --host 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
            ) from None
        raise LookalikeError(f"cannot serve on {where}: {exc.strerror or exc}") from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, calling `on_started` once its sockets accept connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def run_server(settings: Settings, sock: socket.socket | None = None) -> None:
    """Serve the catalog in `settings.catalog_dir` (which must exist) until interrupted, on
    `sock` (default: `listen(settings)`), printing where once it listens."""
    require_catalog(settings)
    sock = sock if sock is not None else listen(settings)
    limit_malloc_arenas()
    settings = settings.model_copy(update={"search_processes": serving_processes(settings)})
    url = url_of(settings)
    processes = settings.search_processes

    def started() -> None:
        print(f"lookalike is serving {settings.catalog_dir} at {url}  (API docs: {url}docs)"
              + (f", searching in {processes} processes" if processes else ""), flush=True)
        print("press Ctrl+C to stop", flush=True)

    with sock:
        app = create_app(settings)
        # the client address (rate limits are per client) comes from X-Forwarded-For only
        # when the connection comes from a proxy named in `trusted_proxies`
        proxies = settings.trusted_proxies
        config = uvicorn.Config(app, host=settings.host, port=settings.port,
                                log_level="warning", proxy_headers=bool(proxies),
                                forwarded_allow_ips=proxies or None, server_header=False)
        server = _Server(config, started)
        # Ctrl+C: uvicorn shuts down cleanly, then raises SIGINT again
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: the app's startup failed and said why
