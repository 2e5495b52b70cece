"""`lookalike serve` behind a reverse proxy: rate limits are per client, so the client must be
the one the proxy names in X-Forwarded-For, and only a trusted proxy may name it. Real server
process on a free port (fake-encoder catalog of the bundled sample)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.demo import build_demo_catalog


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("proxy") / "cat"
    catalog, _ = build_demo_catalog(Settings(catalog_dir=folder, model="fake"))
    catalog.close()
    return folder


@contextmanager
def serve(catalog_dir: Path, **env: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lookalike", "serve", "--catalog", str(catalog_dir),
         "--port", str(port), "--search-processes", "0"],
        env={**os.environ, "LOOKALIKE_REQUESTS_BURST": "2",
             "LOOKALIKE_REQUESTS_PER_MINUTE": "1", **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # a hang bound: a busy CI starts slowly
    while True:
        try:  # a static file: free of the request budget
            with urllib.request.urlopen(url + "/static/style.css", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"server did not start: {proc.communicate()[1]!r}") from None
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def status(url: str, forwarded_for: str) -> int:
    req = urllib.request.Request(url + "/catalog", headers={"X-Forwarded-For": forwarded_for})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            code: int = r.status
            return code
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_trusted_proxy_names_the_client(catalog_dir: Path) -> None:
    with serve(catalog_dir, LOOKALIKE_TRUSTED_PROXIES="127.0.0.1") as url:
        assert [status(url, "203.0.113.1") for _ in range(3)] == [200, 200, 429]
        assert status(url, "203.0.113.2") == 200  # another client behind the same proxy


def test_without_trusted_proxies_the_header_is_ignored(catalog_dir: Path) -> None:
    with serve(catalog_dir) as url:
        assert [status(url, f"203.0.113.{i}") for i in range(3)] == [200, 200, 429]
