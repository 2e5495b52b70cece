"""The Content-Security-Policy in a real browser: every page and the API docs work under it,
with no violation reported, and the docs render from the server's own Swagger UI files (the
browser here has no route to the internet, so a CDN would leave /docs blank)."""

from __future__ import annotations

from typing import Any

import pytest

VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


def watch(page: Any) -> list[str]:
    """CSP violations the page reports, from the event and from the console."""
    seen: list[str] = []
    page.add_init_script(VIOLATIONS)
    page.on("console", lambda m: seen.append(m.text)
            if "Content Security Policy" in m.text else None)
    return seen


def violations(page: Any, console: list[str]) -> list[str]:
    return [*page.evaluate("() => window.__csp || []"), *console]


@pytest.mark.parametrize("path", ["/", "/swipe", "/likes"])
def test_pages_work_under_the_csp(live_server: str, page: Any, path: str) -> None:
    console = watch(page)
    response = page.goto(live_server + path)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    selector = {"/": "#grid .card", "/swipe": "#swipe-card[data-id]", "/likes": "h1"}[path]
    page.wait_for_selector(selector)
    page.wait_for_load_state("networkidle")
    assert violations(page, console) == []


def test_the_api_docs_render_offline_under_the_csp(live_server: str, page: Any) -> None:
    console = watch(page)
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith((live_server, "data:", "blob:")) else None)
    page.goto(live_server + "/docs")
    page.wait_for_selector(".opblock-summary-path")  # the default 60 s
    paths = page.eval_on_selector_all(".opblock-summary-path",
                                      "els => els.map(e => e.textContent.trim())")
    assert "/search" in paths and "/me/swipes" in paths
    page.wait_for_load_state("networkidle")
    assert outside == []
    assert violations(page, console) == []
