"""Synthetic catalogs on any vector-store backend, and the brute-force reference every backend's
answers are held to (for the congruence and Milvus tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookalike import Catalog, Filters, ItemUpdate, Settings
from lookalike.catalog.store import CatalogStore
from lookalike.evaluation.synthetic import SyntheticCatalog

DIM = 48


def open_catalog(folder: Path, dim: int = DIM, **settings: object) -> Catalog:
    """A catalog of synthetic `dim`-d vectors (model "synthetic") in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    store = CatalogStore(folder / "catalog.sqlite")
    store.bind_model("synthetic", dim)
    store.close()
    return Catalog.open(Settings(catalog_dir=folder, auto_tag=False, **settings))  # type: ignore[arg-type]


def fill(catalog: Catalog, n: int, seed: int = 0, start: int = 0) -> None:
    """Items start..n-1 of synthetic catalog `seed`, through `Catalog.add_items`."""
    world = SyntheticCatalog(catalog.index.dim, seed)
    for a in range(start, n, 2000):
        catalog.add_items(*world.items(a, min(n, a + 2000)))


def reference(
    catalog: Catalog, queries: np.ndarray, k: int, filters: Filters | None = None,
    exclude: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top k over the metadata store's vectors and fields (a filter's meaning is
    `Scalars.matches`): (scores, ids), as wide as the items that qualify, at most k."""
    ids, vectors = catalog.store.vectors()
    if filters is not None:
        keep = np.asarray([s.matches(filters) for s in catalog.store.scalars_of(ids)], dtype=bool)
        ids, vectors = ids[keep], vectors[keep]
    keep = ~np.isin(ids, exclude)
    ids, vectors = ids[keep], vectors[keep]
    scores = queries.astype(np.float64) @ vectors.T.astype(np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def recall(truth: np.ndarray, got: np.ndarray) -> float:
    """Mean share of each query's true neighbours found (1.0 when none qualify)."""
    return float(np.mean([len(set(t) & set(g)) / len(t) if len(t) else 1.0
                          for t, g in zip(truth.tolist(), got.tolist(), strict=True)]))


def write_elsewhere(folder: str, settings: dict[str, object], seed: int) -> None:
    """Run in another process (multiprocessing "spawn"): through its own `Catalog` on the same
    folder and backend, add items 0..29 of synthetic catalog `seed`, delete syn-0-0..9, give
    syn-0-20 a category of its own and syn-0-21 a price of 0.5; then commit items 30..34 to the
    metadata store only, as a writer that crashed before telling the vector store would."""
    catalog = Catalog.open(Settings(catalog_dir=Path(folder), auto_tag=False, **settings))  # type: ignore[arg-type]
    world = SyntheticCatalog(catalog.index.dim, seed)
    catalog.add_items(*world.items(0, 30))
    for i in range(10):
        catalog.delete_item(f"syn-0-{i}")
    catalog.update_item("syn-0-20", ItemUpdate(category="unique-kind"))
    catalog.update_item("syn-0-21", ItemUpdate(price=0.5))
    catalog.store.add(*world.items(30, 35))
    catalog.close()
