"""The FastAPI application: `create_app(settings)` wires the library objects, routers,
error handlers, the request body cap, the rate limits, the response headers (security headers
and the session cookie), the periodic expiry of guests and sessions, the API docs and the web
page's static files."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from lookalike import __version__
from lookalike.api import errors
from lookalike.api.cpu import cpu_runner
from lookalike.api.defaults import document_defaults
from lookalike.api.deps import AdminKey
from lookalike.api.facets import FacetCache
from lookalike.api.headers import ResponseHeadersMiddleware
from lookalike.api.limits import FORM_OVERHEAD, BodyLimitMiddleware
from lookalike.api.ratelimit import Guards, RequestLimitMiddleware
from lookalike.api.routers import catalog as catalog_router
from lookalike.api.routers import docs, items, pages, search, users
from lookalike.attributes import default_taggers
from lookalike.catalog import Catalog
from lookalike.config import Settings
from lookalike.passwords import WorkerHasher
from lookalike.processes import return_freed_memory
from lookalike.recommend import Feed
from lookalike.users import Users
from lookalike.users.vendors import Vendors
from lookalike.web import STATIC_DIR

log = logging.getLogger("lookalike.api")

DESCRIPTION = """\
Photo in, look-alike catalog items out.

* **search**: `POST /search` with a photo (multipart), filters and steering;
  `POST /search/profile` with several photos; `POST /search/items` for "more like these,
  less like those".
* **items**: browse and filter the catalog; `GET /items/{id}/similar`; catalog writes need the
  admin key or a vendor's key in `X-API-Key` (a vendor changes only its own items);
  `POST /items/bulk` upserts many from JSON Lines.
* **users**: a visitor becomes a guest on its first swipe (cookie, or the `X-Session-Token`
  response header for API clients: send it back as `Authorization: Bearer <token>`; or start
  one with `POST /sessions/guest`); reading never creates anything. Idle guests expire with
  their swipes; accounts are optional, adopt the guest's swipes and keep them.

Limits: a request body is at most the upload limit (10 MiB by default, all files together)
plus 64 KiB of form fields; failed logins, wrong admin keys and new guests or accounts are
rate-limited per client (429 with `Retry-After`).

Errors are JSON: `{"detail": "<message>"}`.
"""


def body_cap(settings: Settings) -> BodyLimitMiddleware.Cap:
    """Largest request body, any path: the upload limit (one photo, or all the photos of a
    profile together) plus room for form fields."""
    limit = settings.upload_max_bytes + FORM_OVERHEAD

    def cap(path: str) -> int:
        return limit

    return cap


async def expire_periodically(users: Users, every: float) -> None:
    """Delete expired guests and sessions at once, then every `every` seconds until
    cancelled, and each time give the memory the server's allocator holds free back to the
    system (`return_freed_memory`), so that its resident memory is what it uses. A failed
    round is logged and the next one tried."""
    while True:
        try:
            expired = await run_in_threadpool(users.expire)
            if expired.guests or expired.sessions:
                log.info("expired %d guests and %d sessions", expired.guests, expired.sessions)
        except Exception:
            log.exception("expiring guests and sessions failed")
        await run_in_threadpool(return_freed_memory)
        await asyncio.sleep(every)


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> FastAPI:
    """The app over `catalog` (opened from `settings.catalog_dir` when not given)."""
    settings = settings or Settings()
    owned = catalog is None
    cat = catalog if catalog is not None else Catalog.open(settings, taggers=default_taggers)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        cat.encoder.dim  # load the model before the first request, not during it  # noqa: B018
        app.state.feed.warm()
        app.state.cpu.start()
        cleanup = asyncio.create_task(
            expire_periodically(app.state.users, settings.cleanup_interval.total_seconds())
        )
        yield
        cleanup.cancel()
        with suppress(asyncio.CancelledError):
            await cleanup
        app.state.guards.hashing.close()
        app.state.hasher.close()
        app.state.cpu.close()
        if owned:
            cat.close()

    app = FastAPI(title="lookalike", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.catalog = cat
    # argon2 (passwords, admin key) in low-priority processes: searches get the cores first
    app.state.hasher = WorkerHasher(settings.hash_concurrency)
    app.state.users = Users.from_settings(cat.store, settings, app.state.hasher)
    app.state.feed = Feed(cat, app.state.users)
    app.state.cpu = cpu_runner(cat, settings)
    app.state.guards = Guards.of(settings)
    app.state.facets = FacetCache()
    app.state.admin_key = AdminKey(settings.admin_key_hash, app.state.hasher)
    app.state.vendors = Vendors(cat.store)

    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, cap=body_cap(settings),
                       file_limit=settings.upload_max_bytes)
    app.add_middleware(RequestLimitMiddleware, limiter=app.state.guards.requests)
    app.add_middleware(ResponseHeadersMiddleware, settings=settings)  # outermost: every answer
    for module in (search, items, catalog_router, users, pages, docs):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount(docs.ASSETS_URL, StaticFiles(directory=docs.ASSETS_DIR), name="docs-assets")
    document_defaults(app, settings)
    return app
