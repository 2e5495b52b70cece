"""Two `lookalike serve` processes on one PostgreSQL (as on two machines: each its own catalog
folder of the same name, so the same schema) share accounts, sessions, swipes and items: a
session made on one works on the other, a swipe on one shows on the other, and items another
process adds or deletes show on both. Fake-encoder catalog of generated photos."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from catalog_factory import make_dataset
from databases import drop_schema, new_schema_url, settings_for
from imagefactory import png
from lookalike.catalog import Catalog, ItemIn
from lookalike.servers import PostgresServer, free_port


def serve(folder: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "LOOKALIKE_DATABASE_URL": url, "LOOKALIKE_MODEL": "fake",
           "LOOKALIKE_AUTO_TAG": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lookalike", "serve", "--catalog", str(folder), "--port",
         str(port), "--search-processes", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # a hang bound: a busy CI starts slowly
    while True:
        try:
            if httpx.get(base + "/catalog", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start: {proc.communicate()[1]!r}")
        time.sleep(0.2)


@pytest.fixture
def two_servers(postgres_server: PostgresServer,
                tmp_path: Path) -> Iterator[tuple[str, str, Path, str]]:
    url, schema = new_schema_url(postgres_server.url)
    images, meta, _ = make_dataset(tmp_path / "data", n=24)
    with Catalog.open(settings_for(tmp_path / "machine-a" / "shop", url, model="fake",
                                   auto_tag=False)) as catalog:
        catalog.ingest(images, meta)
    procs = []
    try:
        for machine in ("machine-a", "machine-b"):
            procs.append(serve(tmp_path / machine / "shop", url))
        yield procs[0][1], procs[1][1], tmp_path, url
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        drop_schema(postgres_server.url, schema)


def test_two_servers_on_one_database_share_users_swipes_and_items(
    two_servers: tuple[str, str, Path, str],
) -> None:
    a, b, tmp_path, url = two_servers
    assert not (tmp_path / "machine-b" / "shop" / "catalog.sqlite").exists()
    made = httpx.post(a + "/accounts", json={"username": "shared", "password": "a long pw!"})
    assert made.status_code == 201, made.text
    auth = {"Authorization": f"Bearer {made.json()['token']}"}
    assert httpx.get(b + "/me", headers=auth).json()["username"] == "shared"
    assert httpx.post(b + "/me/swipes", headers=auth,
                      json={"item_id": "item-0003", "liked": True}).status_code == 204
    swipes = httpx.get(a + "/me/swipes", headers=auth).json()
    assert [(s["item_id"], s["liked"]) for s in swipes] == [("item-0003", True)]
    assert [i["id"] for i in httpx.get(a + "/me/likes", headers=auth).json()] == ["item-0003"]
    logged_in = httpx.post(b + "/sessions", json={"username": "SHARED", "password": "a long pw!"})
    assert logged_in.status_code == 200
    # a third process (an ingest, an admin tool) adds and deletes items
    with Catalog.open(settings_for(tmp_path / "machine-c" / "shop", url, model="fake",
                                   auto_tag=False), create=False) as other:
        other.add_item(ItemIn(id="late-arrival", image="late.png", category="Hat"),
                       png(Image.new("RGB", (48, 64), (30, 220, 200))), tmp_path / "late.png")
        other.delete_item("item-0005")
    for server in (a, b):
        assert httpx.get(server + "/items/late-arrival").json()["category"] == "Hat"
        assert httpx.get(server + "/items/item-0005").status_code == 404
        similar = httpx.get(server + "/items/item-0004/similar", params={"k": 30}).json()
        ids = {r["item"]["id"] for r in similar["results"]}
        assert "late-arrival" in ids and "item-0005" not in ids
        assert httpx.get(server + "/catalog").json()["items"] == 24
