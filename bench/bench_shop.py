"""What the shop features cost a search (issue 21), measured side by side in one run on a
synthetic catalog (random unit vectors, garment palettes, prices in three currencies with
rates, rated and unrated brands, a few sold items), through `lookalike.recommend`:

* the first page (k = 24) in relevance order, and a page deep in the ranking (offset 600):
  the exact order widens its pool with the page, so a deep page costs more than the first;
* a search sorted by price (it ranks the `sort_depth` best look-alikes, whatever the page);
* leaving a few sold items out by dropping them from the hits of the whole index (the
  default up to `SOLD_EXCLUDED_MAX`) against searching the rest as a filtered subset.

Medians of `--rounds` rounds, every case once per round in turn (so load from other programs
falls on all alike), with the ratio to the first page.

    .venv/bin/python bench/bench_shop.py                  # 20,000 items, 15 rounds
    .venv/bin/python bench/bench_shop.py --items 50000 --rounds 9
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import lookalike.catalog.catalog as catalog_module
from lookalike import Catalog, Settings
from lookalike.attributes.colour import COLOUR_NAMES
from lookalike.catalog import ItemIn, NewItem, Tag
from lookalike.catalog.brands import BrandRating
from lookalike.catalog.rates import Rate
from lookalike.recommend import Query, recommend


def build(folder: Path, n: int, sold: int, seed: int = 0) -> Catalog:
    rng = np.random.default_rng(seed)
    cat = Catalog.open(Settings(catalog_dir=folder, model="fake", auto_tag=False))
    dim = cat.index.dim
    currencies = ("EUR", "USD", "GBP")
    batch = 2000
    for start in range(0, n, batch):
        count = min(batch, n - start)
        vectors = rng.standard_normal((count, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        items = []
        for i in range(count):
            number = start + i
            shares = rng.dirichlet(np.ones(3))
            colours = rng.choice(len(COLOUR_NAMES), 3, replace=False)
            palette = ",".join(f"{COLOUR_NAMES[c]}:{s:.2f}" for c, s in zip(colours, shares,
                                                                             strict=True))
            fields = ItemIn(image=f"{number}.jpg", price=float(rng.uniform(5, 300)),
                            currency=currencies[number % 3], brand=f"Brand {number % 40}",
                            state="sold" if number < sold else "available",
                            rating=float(rng.uniform(1, 5)) if number % 2 else None)
            items.append(NewItem(f"item-{number}", fields, f"{number}.jpg", f"hash-{number}",
                                 {"palette": Tag(value=palette, confidence=1.0)}))
        cat.add_items(items, vectors)
    cat.store.set_brand_ratings([BrandRating(brand=f"Brand {b}", overall=b % 6, source="bench")
                                 for b in range(0, 40, 2)])
    today = time.strftime("%Y-%m-%d")
    cat.store.set_rates([Rate(currency="EUR", rate=1, date=today),
                         Rate(currency="USD", rate=1.08, date=today)], "EUR")
    return cat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--sold", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        cat = build(Path(tmp) / "cat", args.items, args.sold)
        print(f"{args.items:,} items ({args.sold} sold, vectors {cat.index.dim}-d) built in "
              f"{time.perf_counter() - started:.1f} s")
        rng = np.random.default_rng(1)
        ids = cat.index.ids()
        queries = list(cat.index.vectors(ids[rng.integers(args.sold, args.items, args.rounds)]))

        def run(**kw: object) -> Callable[[np.ndarray], object]:
            def one(q: np.ndarray) -> object:
                query = Query(positives=[q], colour_weight=0.1, diversity=0.0)
                query.positive_palettes.append(np.full(len(COLOUR_NAMES), 1 / len(COLOUR_NAMES),
                                                       dtype=np.float32))
                return recommend(cat, query, 24, **kw)  # type: ignore[arg-type]
            return one

        def subset(q: np.ndarray) -> object:
            saved = catalog_module.SOLD_EXCLUDED_MAX
            catalog_module.SOLD_EXCLUDED_MAX = -1  # "many sold": the filtered subset
            try:
                return run()(q)
            finally:
                catalog_module.SOLD_EXCLUDED_MAX = saved

        cases: dict[str, Callable[[np.ndarray], object]] = {
            "relevance, first page": run(),
            "relevance, offset 600": run(offset=600),
            "sorted by price, first page": run(sort="price_asc"),
            "sold left out as a subset": subset,
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for case in cases.values():  # warm-up: caches, the palette cache
            case(queries[0])
        for q in queries:
            for name, case in cases.items():
                t = time.perf_counter()
                case(q)
                times[name].append(time.perf_counter() - t)
        base = statistics.median(times["relevance, first page"])
        print(f"{'case':32} {'median ms':>10} {'ratio':>7}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:32} {median * 1000:10.1f} {median / base:7.2f}")
        cat.close()


if __name__ == "__main__":
    main()
