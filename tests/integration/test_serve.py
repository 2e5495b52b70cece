"""`lookalike serve` as a user runs it: a real process on a free port, its search processes,
Ctrl+C and SIGKILL, its memory through a burst of password checks. Fake-encoder catalog of the
bundled sample (fast)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.demo import build_demo_catalog, sample_images
from procfs import alive, children_of, gone_within, resident_kib

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(),
                                reason="reads processes from /proc (Linux)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
    deadline = time.monotonic() + 300  # a hang bound: a busy CI starts slowly
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
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err, err.decode()
    assert not [w for w in workers if alive(w)]


def test_search_processes_do_not_outlive_a_killed_server(
    serving: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    proc, workers = serving
    proc.kill()  # SIGKILL: no shutdown code runs in the server
    proc.wait()
    deadline = time.monotonic() + 60  # they look for their parent each second; CI may be busy
    while [w for w in workers if alive(w)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if alive(w)]


def failed_login(url: str) -> int:
    body = b'{"username": "nobody", "password": "wrong-password"}'
    req = urllib.request.Request(url + "/sessions", method="POST", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status: int = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status


@pytest.mark.parametrize("stop", ["ctrl_c", "sigkill"])
def test_the_password_worker_runs_at_low_priority_and_stops_with_the_server(
    server: tuple[subprocess.Popen[bytes], str], stop: str,
) -> None:
    """argon2 runs in a process of its own at nice 19 (searches get the cores first); it
    must not outlive the server, however the server ends."""
    proc, url = server
    searchers = set(children_of(proc.pid))  # the search processes (started before it listens)
    assert failed_login(url) == 401  # an unknown user: argon2 runs all the same
    # the worker is the new child (not "the child at nice 19": under `nice -n 19 pytest`
    # every process is at 19), at the lowest priority; the searches keep the server's
    workers = [c for c in children_of(proc.pid) if c not in searchers]
    assert len(workers) == 1, (searchers, children_of(proc.pid))
    assert os.getpriority(os.PRIO_PROCESS, workers[0]) == 19
    server_nice = os.getpriority(os.PRIO_PROCESS, proc.pid)
    assert {os.getpriority(os.PRIO_PROCESS, c) for c in searchers} == {server_nice}
    if stop == "ctrl_c":
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert b"Traceback" not in err, err.decode()
    else:
        proc.kill()  # the server alone, SIGKILL: no shutdown code runs
        proc.wait()
    assert gone_within(workers[0], 60)


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
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/catalog", timeout=60) as r:
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


def tree_anon_mib(pid: int) -> float:
    """Anonymous resident memory of the server and its worker processes, MiB."""
    total = 0
    for p in [pid, *children_of(pid)]:
        try:
            total += resident_kib(p)
        except (OSError, LookupError):  # a process that just ended
            continue
    return total / 1024


def test_the_servers_memory_stays_flat_through_a_burst_of_password_checks(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    """Each argon2 check takes 64 MiB in the password worker. Once the worker has made its
    first, the server's memory (all its processes, sampled every 20 ms) must not swing by it:
    before the worker kept the block, it rose by 64 MiB during each check and fell back after,
    so any one reading of the server's memory was off by up to 64 MiB per worker."""
    proc, url = server
    assert failed_login(url) == 401  # the worker starts and takes its block
    baseline = tree_anon_mib(proc.pid)
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(tree_anon_mib(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        # 4 more: the per-client burst of failed logins is 5, all of them hashed
        assert [failed_login(url) for _ in range(4)] == [401] * 4
    finally:
        done.set()
        sampler.join()
    after = tree_anon_mib(proc.pid)
    assert len(samples) > 10
    assert max(samples) - min(samples) < 24, (baseline, min(samples), max(samples))
    assert abs(after - baseline) < 16, (baseline, after)
