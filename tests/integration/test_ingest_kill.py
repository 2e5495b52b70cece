"""A SIGKILLed ingest, rerun, gives the same catalog as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lookalike import Catalog, Settings
from lookalike.attributes import default_taggers
from lookalike.demo import sample_images, sample_metadata

pytestmark = pytest.mark.slow


def ingest_cmd(catalog: Path) -> list[str]:
    return [sys.executable, "-m", "lookalike", "ingest", str(sample_images()),
            "--metadata", str(sample_metadata()), "--catalog", str(catalog), "--json"]


def env() -> dict[str, str]:
    # small batches, so the kill lands between committed batches and inside one
    return {**os.environ, "LOOKALIKE_BATCH_SIZE": "8", "LOOKALIKE_MODEL": "efficientnet-lite0"}


def stored(catalog: Path) -> int:
    db = catalog / "catalog.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def snapshot(catalog: Path) -> dict[str, tuple[str, bytes]]:
    with Catalog.open(Settings(catalog_dir=catalog), taggers=default_taggers) as cat:
        ids, vecs = cat.store.vectors()
        items = cat.store.get_many(ids.tolist())
        return {it.id: (it.image_hash, v.tobytes()) for it, v in zip(items, vecs, strict=True)}


def test_sigkill_midway_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    full = tmp_path / "full"
    subprocess.run(ingest_cmd(full), env=env(), check=True, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(ingest_cmd(killed), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while stored(killed) < 40 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = stored(killed)
    assert 0 < partial < 306, f"the kill must land midway (had {partial} items)"

    rerun = subprocess.run(ingest_cmd(killed), env=env(), check=True, capture_output=True,
                           text=True, timeout=600)
    assert '"added": ' + str(306 - partial) in rerun.stdout

    a, b = snapshot(full), snapshot(killed)
    assert a.keys() == b.keys() and len(a) == 306
    for key in a:
        assert a[key][0] == b[key][0]
        np.testing.assert_allclose(
            np.frombuffer(a[key][1], np.float32), np.frombuffer(b[key][1], np.float32), atol=1e-5
        )
