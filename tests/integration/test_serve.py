"""`lookalike serve` as a user runs it: a real process on a free port, its search processes,
Ctrl+C and SIGKILL. Fake-encoder catalog of the bundled sample (fast)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.demo import build_demo_catalog, sample_images

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(),
                                reason="reads processes from /proc (Linux)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    catalog, _ = build_demo_catalog(Settings(catalog_dir=tmp_path / "cat", model="fake"))
    catalog.close()
    return tmp_path / "cat"


@pytest.fixture
def server(catalog_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lookalike", "serve", "--catalog", str(catalog_dir),
         "--port", str(port), "--search-processes", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url + "/catalog", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"server did not start: {proc.communicate()[1]!r}") from None
            time.sleep(0.2)
    yield proc, url
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def search(url: str) -> int:
    photo = next(sample_images().glob("*.jpg")).read_bytes()
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; "
            "filename=\"q.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
    body = head.encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "/search", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        status: int = r.status
        return status


def search_processes(pid: int) -> list[int]:
    return [c for c in children_of(pid)
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.fixture
def serving(
    server: tuple[subprocess.Popen[bytes], str],
) -> tuple[subprocess.Popen[bytes], list[int]]:
    """The server after one search, and its two search processes."""
    proc, url = server
    assert search(url) == 200
    workers = search_processes(proc.pid)
    assert len(workers) == 2
    return proc, workers


def test_ctrl_c_stops_the_server_and_its_search_processes_cleanly(
    serving: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    proc, workers = serving
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C in a terminal does: the whole group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err, err.decode()
    assert not [w for w in workers if alive(w)]


def test_search_processes_do_not_outlive_a_killed_server(
    serving: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    proc, workers = serving
    proc.kill()  # SIGKILL: no shutdown code runs in the server
    proc.wait()
    deadline = time.monotonic() + 10
    while [w for w in workers if alive(w)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if alive(w)]


def test_the_serving_line_appears_once_the_server_listens(catalog_dir: Path) -> None:
    """It used to be printed before the catalog, the model and the search processes loaded
    (13 s early under load): a user who opened the address at once was refused."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lookalike", "serve", "--catalog", str(catalog_dir),
         "--port", str(port), "--search-processes", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server says it serves
        assert b"lookalike is serving" in line, (line, proc.stderr.read() if proc.stderr else b"")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/catalog", timeout=10) as r:
            assert r.status == 200  # at once, no retry: it listens
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_taken_port_is_one_clear_error(command: str, catalog_dir: Path, tmp_path: Path) -> None:
    """It printed "serving ... press Ctrl+C" and then a uvicorn error (demo: after building
    the whole demo catalog)."""
    folder = catalog_dir if command == "serve" else tmp_path / "demo"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "lookalike", command, "--catalog", str(folder),
             "--port", str(port)],
            capture_output=True, text=True, timeout=120,
        )
    assert out.returncode == 2, out
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"error: cannot serve on 127.0.0.1:{port}: the port is already in use (another "
        "lookalike serve?); stop that program or choose another port with --port"
    ]
    assert command == "serve" or not folder.exists()  # the demo stopped before its ingest
