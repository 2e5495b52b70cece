"""End-to-end fixtures: the real app on a real uvicorn server (loopback, free port, background
thread) over the bundled sample built with the real encoder, driven by Playwright through
Debian's chromium at /usr/bin/chromium (installed by scripts/install-browser.sh; Playwright never
downloads a browser here).

Without /usr/bin/chromium the e2e tests are skipped with the reason, unless
LOOKALIKE_REQUIRE_BROWSER=1 (CI), where they fail instead."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from lookalike.api import create_app
from lookalike.config import Settings
from lookalike.demo import build_demo_catalog

CHROMIUM = Path(os.environ.get("LOOKALIKE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def _require_browser() -> None:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    reason = (f"{CHROMIUM} is missing: run `bash scripts/install-browser.sh` "
              "(Debian chromium) to run the browser tests")
    if os.environ.get("LOOKALIKE_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (LOOKALIKE_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real server on 127.0.0.1 over the real-encoder sample catalog."""
    _require_browser()
    # searches in 2 processes, as `lookalike serve` runs them on 2+ cores
    settings = Settings(catalog_dir=tmp_path_factory.mktemp("e2e-catalog"),
                        host="127.0.0.1", port=_free_port(), search_processes=2)
    catalog, report = build_demo_catalog(settings)
    assert report.added == 306
    server = uvicorn.Server(uvicorn.Config(create_app(settings, catalog), host=settings.host,
                                           port=settings.port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-e2e", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the e2e server did not start")
        time.sleep(0.05)
    yield f"http://{settings.host}:{settings.port}"
    server.should_exit = True
    thread.join(timeout=10)
    catalog.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser: Any, viewport: dict[str, int], **options: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=viewport, **options)  # fresh cookies: a new guest
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(60_000)  # a bound for a hang, not a speed check: CI may be busy
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from _page(browser, DESKTOP)


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    yield from _page(browser, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)


@pytest.fixture
def camera_page(browser: Any) -> Iterator[Any]:
    """A desktop page in a second chromium that has a camera (Chromium's fake one, whose use
    is allowed without asking)."""
    with_camera = browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream",
              "--use-fake-ui-for-media-stream"],
    )
    try:
        yield from _page(with_camera, DESKTOP)
    finally:
        with_camera.close()


@pytest.fixture
def shoot() -> Any:
    """`shoot(page, name)` saves a screenshot under artifacts/screenshots/ (gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Any, name: str, full_page: bool = False) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.wait_for_load_state("networkidle")
        page.wait_for_function(
            "() => [...document.images].filter(i => { const r = i.getBoundingClientRect();"
            " return r.width > 0 && r.bottom > 0 && r.top < innerHeight; }).every(i => i.complete)"
        )
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path

    return save
