"""How fast the CLI answers before it does any work: `lookalike --help`, `--version` and
argument errors, beside `python -c pass` on the same machine (hyperfine-like: every command
run in turn, round after round, so that load from other programs falls on all alike).

Target (issue 20): `lookalike --help` and an argument error in at most 0.3 s (median wall
time) on the reference machine; the ratio to `python -c pass` is what carries over to other
machines. CPU seconds (user + system of the child) are printed beside: on a machine shared with
other work they show what the command costs when the wall time is inflated by waiting for a
core.

    .venv/bin/python bench/bench_cli_startup.py            # 21 rounds
    .venv/bin/python bench/bench_cli_startup.py --rounds 51
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.3


def lookalike_command() -> list[str]:
    """The installed `lookalike` script beside this interpreter, else `python -m lookalike`."""
    script = Path(sys.executable).with_name("lookalike")
    if script.is_file():
        return [str(script)]
    found = shutil.which("lookalike")
    return [found] if found else [sys.executable, "-m", "lookalike"]


def cases() -> list[tuple[str, list[str], bool]]:
    """(label, command, held to the target)."""
    cli = lookalike_command()
    return [
        ("python -c pass", [sys.executable, "-c", "pass"], False),
        ("lookalike --help", [*cli, "--help"], True),
        ("lookalike --version", [*cli, "--version"], False),
        ("lookalike search (missing PHOTO)", [*cli, "search"], True),
        ("lookalike search --nope x (unknown option)", [*cli, "search", "--nope", "x"], True),
        ("lookalike search -k abc x (bad value)", [*cli, "search", "-k", "abc", "x"], True),
        ("lookalike nope (unknown command)", [*cli, "nope"], True),
    ]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(command: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, exit code) of one run."""
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False)
    return time.perf_counter() - start, _children_cpu() - cpu, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21, help="Runs of each command.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed rounds first.")
    args = parser.parse_args()

    todo = cases()
    for _ in range(args.warmup):
        for _, command, _ in todo:
            run_once(command)
    times: dict[str, list[float]] = {label: [] for label, _, _ in todo}
    cpus: dict[str, list[float]] = {label: [] for label, _, _ in todo}
    codes: dict[str, set[int]] = {label: set() for label, _, _ in todo}
    for _ in range(args.rounds):
        for label, command, _ in todo:
            seconds, cpu, code = run_once(command)
            times[label].append(seconds)
            cpus[label].append(cpu)
            codes[label].add(code)

    base = statistics.median(times["python -c pass"])
    load = os.getloadavg()[0]
    print(f"CLI start-up, {args.rounds} rounds, {os.cpu_count()} cores, load {load:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; target: median wall <= {TARGET_SECONDS:.2f} s")
    print(f"{'command':44s} {'wall s':>7s} {'min s':>6s} {'x python':>8s} {'cpu s':>6s} "
          f"{'x python':>8s} {'exit':>4s}  target")
    cpu_base = statistics.median(cpus["python -c pass"])
    failed = False
    for label, _, held in todo:
        median = statistics.median(times[label])
        verdict = ""
        if held:
            ok = median <= TARGET_SECONDS
            failed |= not ok
            verdict = "PASS" if ok else "FAIL"
        exits = ",".join(str(c) for c in sorted(codes[label]))
        cpu = statistics.median(cpus[label])
        print(f"{label:44s} {median:7.3f} {min(times[label]):6.3f} {median / base:8.1f} "
              f"{cpu:6.3f} {cpu / cpu_base:8.1f} {exits:>4s}  {verdict}")
    print("all within target" if not failed else "some commands above target")


if __name__ == "__main__":
    main()
