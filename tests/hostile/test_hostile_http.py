"""Hostile photos through the HTTP API (the app as it is, TestClient over a real SQLite
catalog, fake encoder): every image of the corpus within the upload cap, sent to the
unauthenticated `POST /search`, its steering variant and `POST /search/profile`, is answered
200 or a 4xx with a clear JSON `detail`, never 500; several bombs at once leave the server
answering; nothing stored changes."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hostile.image_corpus import HostileImage, image_corpus
from hostile.support import stored_rows
from lookalike import Catalog
from lookalike.api import create_app


@pytest.fixture(scope="module")
def client(sample_catalog: Catalog) -> TestClient:
    # hundreds of uploads from one test client: the per-client rate limit (tested on its own
    # in test_api_abuse) would answer 429 long before the corpus is through
    settings = sample_catalog.settings.model_copy(
        update={"requests_per_minute": 100_000.0, "requests_burst": 100_000})
    return TestClient(create_app(settings, sample_catalog))


def uploadable() -> list[HostileImage]:
    cap = 10 * 1024 * 1024  # Settings().upload_max_bytes
    return [i for i in image_corpus() if len(i.data) <= cap]


def check(response: Any, item: HostileImage) -> None:
    assert response.status_code != 500, (item.name, response.text)
    if response.status_code == 200:
        assert item.expect != "reject", item.name
        assert isinstance(response.json()["results"], list)
        return
    assert item.expect != "ok", (item.name, response.text)
    assert response.status_code in (413, 415, 422), (item.name, response.status_code)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.strip(), detail
    assert "\n" not in detail and len(detail) < 400


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_post_search_with_every_image(client: TestClient, sample_catalog: Catalog) -> None:
    before = stored_rows(sample_catalog.settings.catalog_dir)
    items = uploadable()
    assert len(items) >= 300
    for item in items:
        check(client.post("/search", files={"photo": ("q.jpg", item.data)}, data={"k": "3"}),
              item)
    assert stored_rows(sample_catalog.settings.catalog_dir) == before


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_steered_and_profile_searches(client: TestClient, sample_catalog: Catalog) -> None:
    first = sample_catalog.items(limit=1)[0].id
    chosen = [i for i in uploadable() if i.kind in ("geometry", "container", "pixels", "modes")]
    for item in chosen:
        check(client.post("/search", files={"photo": ("q.png", item.data)},
                          data={"positive": first, "colour_weight": "0.5"}), item)
    for item in chosen[::7]:
        good = next(i for i in chosen if i.expect == "ok")
        response = client.post("/search/profile",
                               files=[("photos", ("a.jpg", good.data)),
                                      ("photos", ("b.jpg", item.data))])
        check(response, item)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bombs_at_once_leave_the_server_answering(client: TestClient) -> None:
    """The heaviest inputs sent together from several threads, and an ordinary search beside
    them: every request answered (no 500, nothing hung)."""
    heavy = [i for i in uploadable() if i.heavy or i.kind == "container"][:12]
    ordinary = next(i for i in image_corpus() if i.name == "jpeg-444")
    answers: dict[str, int] = {}

    def send(item: HostileImage) -> None:
        r = client.post("/search", files={"photo": ("q", item.data)})
        answers[item.name] = r.status_code

    threads = [threading.Thread(target=send, args=(i,)) for i in heavy]
    for t in threads:
        t.start()
    r = client.post("/search", files={"photo": ("q.jpg", ordinary.data)})
    for t in threads:
        t.join(timeout=300)
    assert r.status_code == 200
    assert len(answers) == len(heavy) and 500 not in answers.values(), answers
