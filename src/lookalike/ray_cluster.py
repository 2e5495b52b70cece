"""A throw-away Ray cluster on this machine, for tests and benchmarks of the Ray engine.

    with LoopbackRayCluster(nodes=2, cpus_per_node=1) as cluster:
        settings = Settings(engine="ray", ray_address=cluster.address)

Each node is one `ray start --block` process (the head, then the others joining it over
127.0.0.1), with its own free ports and a private temp folder, without token authentication
(`RAY_AUTH_MODE=disabled`: a loopback cluster only joins that way) and without usage
statistics. `stop` ends them by their process ids: each `ray start --block` stops the processes
it started when terminated, and whatever is left of the cluster's process trees is killed.
(`ray stop` is never used: it kills every Ray of the user on the machine, other people's too.)

`process_tree` and `tree_usage` read /proc (Linux): the processes descended from some pids,
and the CPU seconds and memory they use, for the benchmark's totals.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from lookalike.servers import ServerError, free_port

__all__ = [
    "LoopbackRayCluster",
    "TreeUsage",
    "process_tree",
    "processes_mentioning",
    "tree_usage",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _ray_cli() -> str:
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.is_file() else shutil.which("ray")
    if not found:
        raise ServerError("Ray is not installed: pip install 'lookalike[ray]'")
    return found


def cluster_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a loopback cluster's nodes, and of the drivers that join it."""
    env = dict(os.environ if base is None else base)
    env.update({
        "RAY_AUTH_MODE": "disabled",  # nodes on loopback only join each other without tokens
        "RAY_USAGE_STATS_ENABLED": "0",  # nothing is sent out
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # a terminated node stops at once
    })
    return env


class LoopbackRayCluster:
    """`nodes` Ray nodes of `cpus_per_node` CPUs each on this machine, owned by this process."""

    def __init__(
        self, nodes: int = 2, cpus_per_node: int = 1, timeout: float = 180.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster has at least one node")
        self.nodes = nodes
        self.cpus_per_node = cpus_per_node
        self.timeout = timeout
        self.env = cluster_env(env)
        # short: Ray's unix socket paths live under it (at most ~107 characters)
        self.folder = Path(tempfile.mkdtemp(prefix="lkray-", dir="/tmp"))
        self.port = 0
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        """The `ray start` process of each node (their trees hold the whole cluster)."""
        return [p.pid for p in self._procs]

    def start(self) -> LoopbackRayCluster:
        ray = _ray_cli()
        self.port = free_port()
        try:
            for node in range(self.nodes):
                args = [ray, "start", "--block", "--num-cpus", str(self.cpus_per_node),
                        "--node-ip-address", "127.0.0.1", "--temp-dir", str(self.folder),
                        "--disable-usage-stats",
                        "--dashboard-agent-listen-port", str(free_port()),
                        "--dashboard-agent-grpc-port", str(free_port()),
                        "--runtime-env-agent-port", str(free_port()),
                        "--metrics-export-port", str(free_port())]
                if node == 0:
                    args += ["--head", "--port", str(self.port), "--include-dashboard=false",
                             "--dashboard-port", str(free_port()),
                             "--ray-client-server-port", str(free_port())]
                else:
                    args += ["--address", self.address]
                log = self.folder / f"node{node}.log"
                with log.open("wb") as out:
                    self._procs.append(subprocess.Popen(
                        args, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                        start_new_session=True))
                self._wait_started(self._procs[-1], log)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_started(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "Ray runtime started" in text:
                return
            if proc.poll() is not None:
                raise ServerError(f"ray start failed (exit {proc.returncode}): {text[-2000:]}")
            time.sleep(0.2)
        raise ServerError(f"ray start did not finish within {self.timeout:.0f} s: {log}")

    def stop(self) -> None:
        """Terminate every node (the joined ones first), then kill what is left of their
        process trees; the temp folder is removed."""
        tree = {pid: _started(pid) for pid in process_tree(self.pids)}
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for pid, started in tree.items():  # orphans of a node that did not stop them
            if started is not None and _started(pid) == started:  # the same process still
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self._procs.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def leftovers(self) -> list[int]:
        """Processes still running that belong to this cluster (its folder is on their command
        line): none once `stop` returned."""
        return processes_mentioning(self.folder)

    def __enter__(self) -> LoopbackRayCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def processes_mentioning(folder: Path) -> list[int]:
    """Live processes with `folder` on their command line (a Ray's temp folder: its nodes)."""
    found = []
    mark = str(folder).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _parents() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the name (field 2) may hold spaces and parentheses: fields follow the last ')'
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _started(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot): tells a pid reused apart."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def process_tree(roots: list[int]) -> set[int]:
    """`roots` and every live process descended from them."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [r for r in roots if r in parents]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


@dataclass(frozen=True)
class TreeUsage:
    """What some processes use: CPU seconds (user + system, their reaped children included) and
    memory (proportional set size, so pages shared between them count once)."""

    cpu_seconds: float
    memory_bytes: int
    processes: int


def tree_usage(pids: set[int]) -> TreeUsage:
    """CPU and memory of the live processes `pids` (vanished ones are left out)."""
    cpu = 0.0
    memory = 0
    alive = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17 (1-based); after ')' field 3 is index 0
        cpu += sum(int(x) for x in fields[11:15]) / _CLOCK_TICKS
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                memory += int(line.split()[1]) * 1024
                break
        alive += 1
    return TreeUsage(cpu, memory, alive)
