"""The server's defaults of the controls every query has ("match colour", diversity) and the
depth one query ranks: shown in the OpenAPI schema as the fields' defaults, and rendered into
the web page so its sliders start where the server does. The fields themselves stay optional
(omitted = these values), so a server configured with other values documents those."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lookalike.config import Settings

__all__ = ["control_defaults", "document_defaults"]


def control_defaults(settings: Settings) -> dict[str, float]:
    """`colour_weight` and `diversity` as a query that does not set them gets them."""
    return {"colour_weight": settings.colour_weight, "diversity": settings.diversity}


def _fill(node: Any, defaults: dict[str, float]) -> None:
    """Set `default` on every schema property and parameter named like a control."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if name in defaults and isinstance(prop, dict):
                prop["default"] = defaults[name]
        for param in node.get("parameters") or []:
            if isinstance(param, dict) and param.get("name") in defaults:
                param.setdefault("schema", {})["default"] = defaults[param["name"]]
        for value in node.values():
            _fill(value, defaults)
    elif isinstance(node, list):
        for value in node:
            _fill(value, defaults)


def document_defaults(app: FastAPI, settings: Settings) -> None:
    """Make `app.openapi()` show the controls' defaults of these settings."""
    build = app.openapi
    defaults = control_defaults(settings)

    def openapi() -> dict[str, Any]:
        schema = build()
        _fill(schema, defaults)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
