"""Backup and restore times, and what carrying the vector files in a backup saves at restore.

Builds a catalog of N random unit vectors (the default model's 2,624 dims unless --dim) straight
in SQLite, its vector files in inverted lists (exact_max_items below N), then measures in one
run:

- `backup`: SQLite's online backup + the vector files of that snapshot (+ integrity check,
  checksums);
- `restore`: checked copy of the backup into a fresh folder (its vector files' checksums
  checked as the store opens them);
- opening the restored catalog until it can search, with the backup's vector files (used as
  they are) and without them (rebuilt from SQLite), side by side.

    .venv/bin/python bench/bench_backup.py --n 20000 --dim 2624
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike.catalog.backup import backup, restore
from lookalike.catalog.schema import ItemFields
from lookalike.catalog.store import CatalogStore, NewItem
from lookalike.config import Settings
from lookalike.index.backends import open_vector_store
from lookalike.index.embedded import FOLDER as VECTORS
from lookalike.index.segments import folder_bytes


def build(folder: Path, n: int, dim: int, settings: Settings) -> None:
    rng = np.random.default_rng(0)
    store = CatalogStore(folder / "catalog.sqlite")
    store.bind_model("bench", dim)
    for start in range(0, n, 2000):
        count = min(2000, n - start)
        vectors = rng.standard_normal((count, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        items = [NewItem(f"b-{i}", ItemFields(title=f"item {i}"), f"/nowhere/{i}.jpg", f"{i:064x}")
                 for i in range(start, start + count)]
        store.add(items, vectors)
    open_vector_store(settings, folder, dim, store).close()
    store.close()


def open_until_searchable(folder: Path, settings: Settings) -> float:
    started = time.perf_counter()
    store = CatalogStore(folder / "catalog.sqlite")
    index = open_vector_store(settings, folder, store.dim or 0, store)
    index.search(index.vectors(index.ids()[:1]), 10)
    index.close()
    store.close()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=2624)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(catalog_dir=root / "shop", exact_max_items=args.n // 2)
        started = time.perf_counter()
        build(root / "shop", args.n, args.dim, settings)
        print(f"catalog: {args.n} x {args.dim}-d, built in {time.perf_counter() - started:.1f} s;"
              f" catalog.sqlite {(root / 'shop' / 'catalog.sqlite').stat().st_size / 1e6:.0f} MB,"
              f" vector files {folder_bytes(root / 'shop' / VECTORS) / 1e6:.0f} MB")
        made = backup(settings, root / "backup")
        print(f"backup:  {made.seconds:7.2f} s  ({made.bytes / 1e6:.0f} MB, index: {made.index})")
        with_index = settings.model_copy(update={"catalog_dir": root / "a"})
        without = settings.model_copy(update={"catalog_dir": root / "b"})
        a = restore(root / "backup", with_index)
        restore(root / "backup", without)
        print(f"restore: {a.copy_seconds:7.2f} s  (checked copy)")
        shutil.rmtree(root / "b" / VECTORS)
        reuse = open_until_searchable(root / "a", with_index)
        rebuild = open_until_searchable(root / "b", without)
        print(f"open until searchable, files from the backup: {reuse:7.2f} s")
        print(f"open until searchable, files rebuilt:         {rebuild:7.2f} s  "
              f"({rebuild / reuse:.1f}x)")


if __name__ == "__main__":
    main()
