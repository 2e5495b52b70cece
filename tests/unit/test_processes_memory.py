"""What lookalike.processes does to a process's C allocator, measured in a fresh process from
/proc: `return_freed_memory` gives freed holes of the heap back to the system, and
`keep_freed_memory` keeps a large block resident from one use to the next."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(),
                                reason="reads memory from /proc (Linux)")

BLOCKS = """
import ctypes, sys
from pathlib import Path
from lookalike.processes import keep_freed_memory, return_freed_memory

def anon_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
mode = sys.argv[1]
if mode == "holes":  # 128 MiB in 64 KiB blocks (below the mmap threshold: from the heap)
    blocks = [libc.malloc(64 * 1024) for _ in range(2048)]
    for b in blocks:
        ctypes.memset(b, 1, 64 * 1024)
    for b in blocks[:-1]:  # the last one pins the heap's top: free() trims nothing
        libc.free(b)
    held = anon_mib()
    trimmed = return_freed_memory() if sys.argv[2] == "trim" else False
    print(held, anon_mib(), trimmed)
else:  # one 64 MiB block, allocated and freed three times
    if mode == "keep":
        assert keep_freed_memory()
    after = []
    for _ in range(3):
        b = libc.malloc(64 * 1024 * 1024)
        ctypes.memset(b, 1, 64 * 1024 * 1024)
        libc.free(b)
        after.append(anon_mib())
    print(*after)
"""


def run(*args: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", BLOCKS, *args], capture_output=True,
                         text=True, check=True).stdout.split()
    return [float(x) if x[0].isdigit() else float(x == "True") for x in out]


def test_return_freed_memory_gives_the_heaps_holes_back() -> None:
    held, after, trimmed = run("holes", "trim")
    assert trimmed == 1.0
    assert held > 120  # the freed 128 MiB stayed resident until then
    assert held - after > 100, (held, after)


def test_without_it_the_holes_stay_resident() -> None:
    held, after, _ = run("holes", "none")
    assert held > 120 and after > 120  # what the test above measures is real


def test_keep_freed_memory_keeps_a_large_block_from_one_use_to_the_next() -> None:
    kept = run("keep")
    assert min(kept) > 64  # resident after each free, not unmapped
    assert max(kept) - min(kept) < 4  # and reused, not allocated again beside it
    returned = run("default")
    assert max(returned) < 32  # the default: unmapped at each free
