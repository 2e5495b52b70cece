"""The shopper's web page: search, swipe and liked items (server-rendered, a little JS)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from lookalike import __version__
from lookalike.api.deps import CatalogDep, FeedDep, UserDep
from lookalike.api.facets import facets
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
def search_page(request: Request, user: UserDep, catalog: CatalogDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "search.html",
        {"page": "search", "facets": facets(catalog), "user": user, "version": __version__,
         "text_max_chars": catalog.settings.text_max_chars},
    )


@router.get("/swipe", response_class=HTMLResponse)
def swipe_page(request: Request, user: UserDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "swipe.html", {"page": "swipe", "user": user, "version": __version__}
    )


@router.get("/likes", response_class=HTMLResponse)
def likes_page(request: Request, user: UserDep, feed: FeedDep) -> HTMLResponse:
    liked = [ItemPublic.of(i) for i in feed.likes(user)]
    return templates.TemplateResponse(
        request, "likes.html",
        {"page": "likes", "user": user, "liked": liked, "version": __version__},
    )
