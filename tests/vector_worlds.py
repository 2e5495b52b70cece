"""Synthetic catalogs on any vector-store backend, the brute-force reference every backend's
answers are held to (for the congruence, Milvus and pgvector tests), and the hypothesis
strategies of stored fields and filters that a server backend's filters are checked against
`Scalars.matches` with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from lookalike import Catalog, Filters, ItemUpdate, Settings
from lookalike.catalog.schema import ItemFields
from lookalike.catalog.store import CatalogStore, NewItem
from lookalike.evaluation.synthetic import SyntheticCatalog
from lookalike.index import Scalars

DIM = 48

# -- stored fields and filters (hypothesis) --------------------------------------------------

#: values that would widen a filter if they were pasted into a Milvus expression or SQL
MILVUS_EVIL = 'x" or id > 0 or "'
SQL_EVIL = "x' OR TRUE OR 'x"
WORDS = ["dress", "Dress", "", " ", "m", "40", MILVUS_EVIL, SQL_EVIL, "a'b", "\\", "é", "İ",
         "\u0000", "naïve"]
TEXT = st.sampled_from(WORDS) | st.text(max_size=6)
SCALARS = st.builds(
    Scalars,
    category=st.none() | TEXT, brand=st.none() | TEXT, colour=st.none() | TEXT,
    sizes=st.lists(TEXT, max_size=4).map(tuple),
    price=st.none() | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, -0.0, 10.0, 10.000000000000002, 1e-300, 5e-324]),
    kids=st.none() | st.booleans(), second_hand=st.none() | st.booleans(),
    sustainability=st.none() | st.floats(0, 5) | st.sampled_from([0.0, 2.5, 5.0]),
    state=st.none() | st.sampled_from(["available", "reserved", "sold"]),
)


@st.composite
def _filters(draw: st.DrawFn) -> Filters:
    """Any valid `Filters`, its words from `TEXT`, its price bounds finite or infinite."""
    bound = st.none() | st.floats(min_value=0, allow_nan=False) | st.sampled_from(
        [0.0, 10.0, 1e-300, 5e-324, float("inf")])
    low, high = draw(bound), draw(bound)
    if low is not None and high is not None and low > high:
        low, high = high, low
    return Filters(
        category=draw(st.lists(TEXT, max_size=2)), brand=draw(st.lists(TEXT, max_size=2)),
        colour=draw(st.lists(TEXT, max_size=2)), size=draw(st.lists(TEXT, max_size=2)),
        price_min=low, price_max=high, kids=draw(st.none() | st.booleans()),
        second_hand=draw(st.none() | st.booleans()),
        min_sustainability=draw(st.none() | st.floats(0, 5) | st.sampled_from([2.5])),
        state=draw(st.lists(st.sampled_from(["available", "reserved", "sold"]), max_size=2)),
        include_sold=draw(st.booleans()),
    )


FILTERS = _filters()


# -- catalogs ----------------------------------------------------------------------------------


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


def add_branded(catalog: Catalog, brands: list[str]) -> tuple[list[int], np.ndarray]:
    """Items 0..39 of synthetic catalog 0, the first ones of the given `brands` (through
    `Catalog.add_items`): their rowids and vectors."""
    items, vectors = SyntheticCatalog(catalog.index.dim).items(0, 40)
    for i, brand in enumerate(brands):
        items[i] = NewItem(items[i].id, ItemFields.model_construct(
            **{**items[i].fields.model_dump(), "brand": brand}), items[i].image_path,
            items[i].image_hash, items[i].predicted)
    return catalog.add_items(items, vectors), vectors


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
