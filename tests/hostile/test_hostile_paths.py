"""Image paths never leave the images folder: `..`, absolute paths, links (to files, to
folders, in chains) pointing outside are rejected as "outside the images folder" without the
file being opened, whether it exists or not; nothing outside is stored or served back by
`GET /items/{id}/image`. Folder mode reports what it cannot use instead of skipping it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile.metadata_corpus import SECRET, csv_bytes, make_images
from hostile.support import fake_settings, stored_rows
from lookalike import Catalog
from lookalike.api import create_app
from lookalike.attributes import default_taggers
from lookalike.catalog.ingest import resolve_image
from lookalike.errors import ImageLoadError

ESCAPES = [
    "../outside/secret.jpg", "../outside/missing.jpg", "../../../../../../etc/shadow",
    "/etc/shadow", "/etc/no-such-file", "sub/../../outside/secret.jpg", "link-out.jpg",
    "link-out-missing.jpg", "link-chain.jpg", "linkdir/secret.jpg", "linkdir/missing.jpg",
    "link-out",
]


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return make_images(tmp_path)


def test_every_escape_is_rejected_the_same_way_whether_the_target_exists(
    images: Path, tmp_path: Path
) -> None:
    rows = [{"id": f"e{i}", "image": name} for i, name in enumerate(ESCAPES)]
    rows.append({"id": "inside", "image": "link-in.jpg"})  # a link that stays inside: fine
    meta = tmp_path / "items.csv"
    meta.write_bytes(csv_bytes(rows))
    with Catalog.open(fake_settings(tmp_path / "cat"), taggers=default_taggers) as catalog:
        report = catalog.ingest(images, meta, report_path=tmp_path / "rejected.csv")
        assert [it.id for it in catalog.items()] == ["inside"]
        assert Path(catalog.get("inside").image_path) == (images / "img2.jpg").resolve()
    reasons = {r.item_id: r.reason for r in report.rejected}
    assert set(reasons) == {f"e{i}" for i in range(len(ESCAPES))}
    for item_id, reason in reasons.items():
        # one reason for all: the report does not tell whether a path outside exists
        assert reason.split(" (")[0] == "outside the images folder", (item_id, reason)
    text = (tmp_path / "rejected.csv").read_text()
    assert "secret" not in text.replace("secret.jpg", "")  # no content, only the names given


def test_a_file_outside_is_never_opened(images: Path, tmp_path: Path) -> None:
    """The secret's access time would move if anything read it (checked to work first)."""
    secret = images.parent / "outside" / "secret.jpg"
    old = time.time() - 10 * 86400
    os.utime(secret, (old, old))
    secret.read_bytes()  # does this filesystem record reads at all?
    if secret.stat().st_atime <= old + 1:
        pytest.skip("the filesystem does not update access times (noatime)")
    os.utime(secret, (old, old))
    meta = tmp_path / "items.jsonl"
    meta.write_text("".join(f'{{"id": "e{i}", "image": "{n}"}}\n' for i, n in enumerate(ESCAPES)))
    with Catalog.open(fake_settings(tmp_path / "cat"), taggers=default_taggers) as catalog:
        report = catalog.ingest(images, meta)
    assert report.added == 0 and len(report.rejected) == len(ESCAPES)
    assert secret.stat().st_atime <= old + 1, "the file outside the images folder was read"


def test_folder_mode_reports_what_it_cannot_use(images: Path, tmp_path: Path) -> None:
    with Catalog.open(fake_settings(tmp_path / "cat"), taggers=default_taggers) as catalog:
        report = catalog.ingest(images)
        stored = {it.id: it.image_path for it in catalog.items()}
    assert set(stored) == {"img0", "img1", "img2", "img3", "img4", "img5"}  # link-in: same bytes
    assert report.skipped == 1
    reasons = {Path(r.file).name: r.reason for r in report.rejected}
    assert reasons["link-out.jpg"] == "outside the images folder"
    assert reasons["link-out-missing.jpg"] == "outside the images folder"
    assert reasons["link-out-photo.jpg"] == "outside the images folder"
    assert reasons["link-chain.jpg"] == "outside the images folder"
    assert "dangling" in reasons["dangling.jpg"]
    assert "loop" in reasons["loop.jpg"] or "dangling" in reasons["loop.jpg"]
    assert "FIFO" in reasons["fifo.jpg"]
    assert "folder" in reasons["folder.jpg"]
    assert "not followed" in reasons["linkdir"]
    assert all(str(images.resolve()) in p for p in stored.values())


def test_nothing_outside_is_served_back(images: Path, tmp_path: Path) -> None:
    meta = tmp_path / "items.csv"
    meta.write_bytes(csv_bytes([{"id": f"e{i}", "image": n} for i, n in enumerate(ESCAPES)]
                               + [{"id": "ok", "image": "img0.jpg"}]))
    catalog = Catalog.open(fake_settings(tmp_path / "cat"), taggers=default_taggers)
    catalog.ingest(images, meta)
    before = stored_rows(tmp_path / "cat")
    client = TestClient(create_app(catalog.settings, catalog))
    listed = client.get("/items", params={"limit": 100}).json()["items"]
    assert [it["id"] for it in listed] == ["ok"]
    for i in range(len(ESCAPES)):
        assert client.get(f"/items/e{i}/image").status_code == 404
    served = client.get("/items/ok/image")
    assert served.status_code == 200 and served.content == (images / "img0.jpg").read_bytes()
    assert SECRET not in served.content
    assert stored_rows(tmp_path / "cat") == before
    catalog.close()


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["..", ".", "sub", "img0.jpg", "link-out.jpg", "linkdir",
                                 "loop.jpg", "", "x", "link-in.jpg", "/", "\\", "..\\"]),
                min_size=1, max_size=6))
def test_fuzz_resolved_paths_stay_inside(images: Path, parts: list[str]) -> None:
    root = images.resolve()
    name = "/".join(parts)
    try:
        path = resolve_image(root, name)
    except ImageLoadError as exc:
        assert exc.reason.strip()
        return
    assert path == root or root in path.parents, (name, path)


def test_stdin_is_read_up_to_the_byte_cap() -> None:
    import io

    from lookalike.errors import ImageTooLargeError
    from lookalike.images import ImageLimits, read_image_stream

    class Endless(io.RawIOBase):
        """An endless stream that counts what is read from it."""

        served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            n = len(buffer)
            buffer[:n] = b"\xff" * n
            self.served += n
            return n

    stream = Endless()
    with pytest.raises(ImageTooLargeError, match="byte cap"):
        read_image_stream(io.BufferedReader(stream), ImageLimits(max_bytes=1000))
    assert stream.served < 10_000
