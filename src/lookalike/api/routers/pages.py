"""The shopper's web page: search, swipe and liked items (server-rendered, a little JS).

Viewing a page never creates a guest: a visitor without a session sees the pages as an
anonymous guest and becomes one on its first swipe. A visitor's cookie is renewed on any page
(see `lookalike.api.headers`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from lookalike import __version__
from lookalike.api.defaults import control_defaults
from lookalike.api.deps import FacetsDep, FeedDep, SettingsDep, VisitorDep
from lookalike.api.schemas import ItemPublic
from lookalike.web import TEMPLATES_DIR

router = APIRouter(include_in_schema=False)


templates = Jinja2Templates(directory=TEMPLATES_DIR)

_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}


def money(price: float, currency: str | None) -> str:
    """12.5, "EUR" → "€12.50" (as the page's JavaScript shows prices)."""
    symbol = _SYMBOLS.get(currency or "EUR")
    return f"{symbol}{price:,.2f}" if symbol else f"{price:,.2f} {currency}"


templates.env.filters["money"] = money


@router.get("/", response_class=HTMLResponse)
def search_page(
    request: Request, user: VisitorDep, facets: FacetsDep, settings: SettingsDep
) -> HTMLResponse:
    # the sliders start at the server's defaults, so what they show is what a search applies
    return templates.TemplateResponse(
        request, "search.html",
        {"page": "search", "facets": facets, "user": user, "version": __version__,
         "controls": control_defaults(settings), "max_results": settings.max_results,
         "sort_depth": min(settings.sort_depth, settings.max_results),
         "text_max_chars": settings.text_max_chars},
    )


@router.get("/swipe", response_class=HTMLResponse)
def swipe_page(request: Request, user: VisitorDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "swipe.html", {"page": "swipe", "user": user, "version": __version__}
    )


@router.get("/likes", response_class=HTMLResponse)
def likes_page(request: Request, user: VisitorDep, feed: FeedDep) -> HTMLResponse:
    liked = [ItemPublic.of(i) for i in feed.likes(user)]
    return templates.TemplateResponse(
        request, "likes.html",
        {"page": "likes", "user": user, "liked": liked, "version": __version__},
    )
