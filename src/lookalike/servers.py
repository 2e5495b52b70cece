"""Local PostgreSQL and Milvus servers for development, tests and benchmarks.

lookalike scales out by configuration onto real engines (`LOOKALIKE_DATABASE_URL`,
`LOOKALIKE_VECTOR_STORE`). To test and benchmark that on one machine, these classes start a
throw-away server in a folder and stop it again:

    with PostgresServer() as pg:                 # Debian's postgresql-15: initdb + pg_ctl
        url = pg.url                             # postgresql://lookalike@127.0.0.1:PORT/lookalike
    with MilvusServer(tmp / "milvus") as mv:     # the standalone binary of PyPI's milvus==2.3.5
        uri = mv.uri                             # milvus://127.0.0.1:PORT

Both pick free ports, wait until the server answers, and stop it (and every child) on exit.
PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user
(created by Debian's package) in a folder it owns. `scripts/install-servers.sh` installs what
is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from lookalike.errors import LookalikeError

__all__ = ["MilvusServer", "PostgresServer", "ServerError", "free_port", "postgres_bin_dir"]


class ServerError(LookalikeError):
    """A local server could not be started (not installed, failed, timed out)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path | None:
    """Folder of Debian's PostgreSQL server programs (the newest installed), or None."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "pg_ctl").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class PostgresServer:
    """A PostgreSQL server in `folder` on a free port, owned by this process."""

    user = "lookalike"
    database = "lookalike"

    def __init__(
        self, folder: Path | None = None, port: int | None = None, timeout: float = 60.0,
        durable: bool = False,
    ) -> None:
        # the server may run as another user (see start): its folder must be reachable for
        # it, so by default a fresh folder directly under the system's temp folder
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="lookalike-pg-"))
        self._owned = folder is None  # removed again on stop
        self.port = port or free_port()
        self.timeout = timeout
        self.bin = postgres_bin_dir()
        self._run_as: list[str] = []
        # tests trade durability for speed (fsync off); benchmarks measure PostgreSQL's own
        # defaults (`durable`: fsync, full page writes, synchronous commits)
        self.durable = durable

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _cmd(self, *args: str) -> list[str]:
        return [*self._run_as, *args]

    def start(self) -> PostgresServer:
        if self.bin is None:
            raise ServerError(
                "PostgreSQL is not installed (no pg_ctl): run scripts/install-servers.sh"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # initdb refuses root: run as Debian's postgres user
            runuser = shutil.which("runuser")
            if runuser is None:
                raise ServerError("running as root needs runuser to start PostgreSQL")
            self._run_as = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres", "postgres")
        log = self.folder / "postgres.log"
        if not (self.data / "PG_VERSION").is_file():
            init = subprocess.run(
                self._cmd(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
                          "--auth=trust", "--encoding=UTF8", "--no-sync"),
                capture_output=True, text=True, timeout=self.timeout,
            )
            if init.returncode != 0:
                raise ServerError(f"initdb failed: {init.stderr.strip()}")
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        started = subprocess.run(
            self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(log),
                      "-o", opts, "-w", "-t", str(int(self.timeout)), "start"),
            capture_output=True, text=True, timeout=self.timeout + 5,
        )
        if started.returncode != 0:
            raise ServerError(f"PostgreSQL did not start: {started.stderr.strip()}\n{_tail(log)}")
        create = subprocess.run(
            [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
             self.user, self.database],
            capture_output=True, text=True, timeout=self.timeout,
        )
        if create.returncode != 0 and "already exists" not in create.stderr:
            self.stop()
            raise ServerError(f"createdb failed: {create.stderr.strip()}")
        return self

    def stop(self, keep_data: bool = False) -> None:
        """Stop the server; its own temporary folder is removed unless `keep_data`."""
        if self.bin is not None and (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                          "stop"),
                capture_output=True, timeout=self.timeout,
            )
        if self._owned and not keep_data:
            shutil.rmtree(self.folder, ignore_errors=True)

    def restart(self) -> PostgresServer:
        """Stop and start again on the same data folder and port (every connection drops)."""
        self.stop(keep_data=True)
        return self.start()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _PortTakenError(ServerError):
    """Milvus stopped at start because a port picked for it was taken meanwhile."""


def _etcd_config(folder: Path) -> Path:
    """The embedded etcd's configuration: free client and peer ports, chosen at the folder's
    first start and kept for later ones (etcd remembers its peer address in its data)."""
    path = folder / "etcd.yaml"
    if not path.is_file():
        client = free_port()
        peer = free_port()
        while peer == client:
            peer = free_port()
        c, p = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        path.write_text(
            f"name: default\nlisten-client-urls: {c}\nadvertise-client-urls: {c}\n"
            f"listen-peer-urls: {p}\ninitial-advertise-peer-urls: {p}\n"
            f"initial-cluster: default={p}\n"
        )
    return path


#: seconds between Milvus's looks for segments to compact (`dataCoord.compaction.global.interval`,
#: 60 by default) and for compactions done (`dataCoord.compaction.check.interval`, 10)
COMPACTION_INTERVAL, COMPACTION_CHECK = 10, 2


class MilvusServer:
    """Milvus 2.3.5 standalone (PyPI's `milvus` package ships the binary) in `folder`."""

    def __init__(self, folder: Path, timeout: float = 120.0) -> None:
        self.folder = Path(folder)
        self.timeout = timeout
        self.port = 0
        self.health_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"milvus://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server process (`milvus run standalone`) while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> MilvusServer:
        """Start the server and wait until it answers. The packaged server picks free ports,
        then lets them go for the binary to take: another process may take one meanwhile
        ("address already in use"); then it is started again on other ports (3 attempts)."""
        for attempt in range(3):
            try:
                return self._start_once()
            except _PortTakenError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> MilvusServer:
        try:
            from milvus import MilvusServer as _Packaged
        except ImportError:
            raise ServerError(
                "the Milvus server is not installed: pip install 'milvus==2.3.5'"
            ) from None
        self.folder.mkdir(parents=True, exist_ok=True)
        server = _Packaged(wait_for_started=False)
        server.set_base_dir(str(self.folder))
        # rows not yet indexed (recent writes) are scored exactly, not through a coarse IVF
        # index that loses a third of the neighbours under selective filters
        server.config.set("queryNode.segcore.interimIndex.enableIndex", "false")
        # a throw-away server: stopping gives up after 5 s instead of 30 minutes (tests and
        # benchmarks stop it; the data folder stays consistent), and a restarted server takes
        # over its predecessor's segments once that one's session lapses: 10 s, not 30
        server.config.set("common.gracefulStopTimeout", "5")
        server.config.set("common.session.ttl", "10")
        # the embedded etcd on ports of its own (etcd's defaults would collide with any other
        # Milvus on this machine)
        etcd = _etcd_config(self.folder)
        server.config.template_text = re.sub(
            r"(?m)^etcd:\n", f"etcd:\n  config:\n    path: {etcd}\n", server.config.template_text,
            count=1,
        )
        # Milvus looks for segments to compact every 10 s instead of 60, and for compactions
        # done every 2 s instead of 10: a segment sealed with the rows upserts replaced (both
        # copies of an item in one HNSW graph) is compacted and served again sooner after it
        # was sealed (docs/scaling.md, "Listing state changes")
        server.config.template_text = re.sub(
            r"(?m)^(  compaction:\n)(    enableAutoCompaction:)",
            rf"\g<1>    global:\n      interval: {COMPACTION_INTERVAL}\n"
            rf"    check:\n      interval: {COMPACTION_CHECK}\n\g<2>",
            server.config.template_text,
            count=1,
        )
        server.start()  # resolves free ports, writes the config, starts `milvus run standalone`
        self._proc = server.server_proc
        self.port = int(server.listen_port)
        self.health_port = int(server.webservice_port)
        server.server_proc = None  # ours to stop: the package's __del__ must not race us
        deadline = time.monotonic() + self.timeout
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                log, text = self.folder / "logs" / "milvus-stderr.log", ""
                with contextlib.suppress(OSError):
                    text = log.read_text(errors="replace")[:1_000_000]
                failed = _PortTakenError if "address already in use" in text else ServerError
                cause = next((ln for ln in text.splitlines() if ln.startswith("panic:")), "")
                raise failed(
                    f"Milvus exited with {self._proc.returncode}: {cause}\n{_tail(log)}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return self
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"Milvus did not answer {url} within {self.timeout:.0f} s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> MilvusServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
