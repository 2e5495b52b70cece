"""The API docs page, /docs: Swagger UI from the copy the `fastapi-offline` package ships
(served under /docs-assets), started by a script file of ours (no inline script, so the
Content-Security-Policy holds here too). Nothing comes from a CDN: the page works offline."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from lookalike import __version__

#: Swagger UI's files (swagger-ui-bundle.js, swagger-ui.css, favicon.png).
ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs-assets"

router = APIRouter(include_in_schema=False)

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>lookalike {__version__} · API docs</title>
  <link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{ASSETS_URL}/favicon.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
  <script src="/static/docs.js?v={__version__}"></script>
</body>
</html>
"""


@router.get("/docs", response_class=HTMLResponse)
def docs_page() -> HTMLResponse:
    return HTMLResponse(_PAGE)
