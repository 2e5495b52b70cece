"""The FastAPI application: `create_app(settings)` wires the library objects, routers,
error handlers, the upload cap and the web page's static files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from lookalike import __version__
from lookalike.api import errors
from lookalike.api.cpu import cpu_runner
from lookalike.api.defaults import document_defaults
from lookalike.api.limits import FORM_OVERHEAD, BodyLimitMiddleware
from lookalike.api.routers import catalog as catalog_router
from lookalike.api.routers import items, pages, search, users
from lookalike.catalog import Catalog
from lookalike.config import Settings
from lookalike.recommend import Feed
from lookalike.users import Users
from lookalike.web import STATIC_DIR

DESCRIPTION = """\
Photo in, look-alike catalog items out.

* **search**: `POST /search` with a photo (multipart), filters and steering;
  `POST /search/profile` with several photos; `POST /search/items` for "more like these,
  less like those".
* **items**: browse and filter the catalog; `GET /items/{id}/similar`; catalog writes need the
  admin key in `X-API-Key`.
* **users**: a guest session is created on first visit (cookie, or the `X-Session-Token`
  response header for API clients: send it back as `Authorization: Bearer <token>`);
  accounts are optional and adopt the guest's swipes.

Errors are JSON: `{"detail": "<message>"}`.
"""


def body_cap(settings: Settings) -> BodyLimitMiddleware.Cap:
    """Largest request body per path: one photo, or a profile's worth of photos."""
    single = settings.upload_max_bytes + FORM_OVERHEAD
    profile = settings.upload_max_bytes * settings.profile_max_photos + FORM_OVERHEAD

    def cap(path: str) -> int:
        return profile if path.rstrip("/") == "/search/profile" else single

    return cap


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> FastAPI:
    """The app over `catalog` (opened from `settings.catalog_dir` when not given)."""
    settings = settings or Settings()
    owned = catalog is None
    cat = catalog if catalog is not None else Catalog.open(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        cat.encoder.dim  # load the model before the first request, not during it  # noqa: B018
        app.state.feed.warm()
        app.state.cpu.start()
        yield
        app.state.cpu.close()
        if owned:
            cat.close()

    app = FastAPI(title="lookalike", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.catalog = cat
    app.state.users = Users(cat.store)
    app.state.feed = Feed(cat, app.state.users)
    app.state.cpu = cpu_runner(cat, settings)

    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, cap=body_cap(settings),
                       file_limit=settings.upload_max_bytes)
    for module in (search, items, catalog_router, users, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    document_defaults(app, settings)
    return app
