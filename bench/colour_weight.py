"""How much "match colour" should count by default: colour and category agreement in the top 10
for several colour weights, on two data sets the default model was not trained on.

    .venv/bin/python bench/colour_weight.py \\
        --products ../shared/datasets/fashion-product-images-sample \\
        --clothing ../shared/datasets/clothing-dataset --work /tmp/colour-weight [--timing]

* products: the fashion-product-images sample (shop photos, never seen in training), all of it;
  colour and category are the data set's own labels (32 colour names, e.g. "Navy Blue").
* clothing: the clothing-dataset's contributors held out from the default model's training
  (the model card's split); results never come from the query's own contributor. The data set
  has no colour labels, so colour is the model-independent pixel reference of
  `lookalike.evaluation.colour` (dominant colour of the photo's centre, 13 names).

The pixel reference is given on both sets, so the two can be compared. Queries go through the
library's own query path (`Query.add_item` + `recommend`: the same vector and palette a photo
search of that item's photo computes), at diversity 0 unless `--diversity` says otherwise.
Catalogs are built in `--work` with the default model (resumable; reused by later runs).
`--timing` also times a page of 24 results with and without the controls, side by side.
The table and the choice of the default are in docs/guide/colour.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from lookalike.attributes import default_taggers
from lookalike.catalog import Catalog, Item
from lookalike.config import Settings
from lookalike.encoders.trained import committed_paths
from lookalike.evaluation.colour import dominant_colours
from lookalike.evaluation.datasets import load_clothing_dataset
from lookalike.recommend import Query, recommend

IGNORED = {"Not sure", "Skip", "Other"}


def _norm(value: str | None) -> str:
    return (value or "").strip().lower()


def held_out_metadata(clothing: Path, out: Path, model: str) -> Path:
    """A metadata CSV of the clothing-dataset photos of the contributors `model` never saw."""
    _, card_path = committed_paths(model.removesuffix("-int8"))
    card = json.loads(card_path.read_text())
    held_out = set(card["split"]["test_groups"])
    data = load_clothing_dataset(clothing)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "id", "category", "sender_id"])
        for path, label, group in zip(data.paths, data.labels, data.groups, strict=True):
            if group in held_out:
                writer.writerow([path.name, path.stem, label, group])
    return out


def build(folder: Path, images: Path, metadata: Path, model: str) -> Catalog:
    catalog = Catalog.open(Settings(catalog_dir=folder, model=model), taggers=default_taggers)
    t0 = time.monotonic()
    report = catalog.ingest(images, metadata, report_path=folder / "rejected.csv")
    if report.added:
        print(f"{folder.name}: ingested {report.added} photos in {time.monotonic() - t0:.0f} s")
    return catalog


def sweep(
    catalog: Catalog,
    queries: list[Item],
    weights: list[float],
    diversity: float,
    colour_of: dict[str, dict[int, str]],
    group_of: dict[int, str] | None,
) -> dict[float, dict[str, np.ndarray]]:
    """Per weight and metric, the per-query share of the top 10 that agrees with the query."""
    members: dict[str, list[int]] = {}
    for rowid, group in (group_of or {}).items():
        members.setdefault(group, []).append(rowid)
    out: dict[float, dict[str, np.ndarray]] = {}
    for w in weights:
        scores: dict[str, list[float]] = {"category": [], **{k: [] for k in colour_of}}
        for item in queries:
            exclude = members.get(group_of[item.rowid], []) if group_of else []
            query = Query(colour_weight=w, diversity=diversity).add_item(catalog, item.id)
            top = recommend(catalog, query, 10, exclude=exclude)
            scores["category"].append(np.mean([r.item.category == item.category for r in top]))
            for name, colours in colour_of.items():
                scores[name].append(
                    np.mean([colours[r.item.rowid] == colours[item.rowid] for r in top])
                )
        out[w] = {k: np.asarray(v) for k, v in scores.items()}
    return out


def print_table(name: str, result: dict[float, dict[str, np.ndarray]], n: int) -> None:
    base = result[min(result)]
    metrics = list(base)
    print(f"\n{name}: {n} queries; share of the top 10 agreeing with the query "
          "(Δ vs weight 0 ± 95 % paired interval)")
    print(f"{'weight':>7s}  " + "  ".join(f"{m:>24s}" for m in metrics))
    for w, scores in result.items():
        cells = []
        for m in metrics:
            diff = scores[m] - base[m]
            half = 1.96 * float(np.std(diff, ddof=1)) / np.sqrt(len(diff)) if len(diff) > 1 else 0
            cells.append(f"{scores[m].mean():.3f} ({diff.mean():+.3f}±{half:.3f})")
        print(f"{w:7.2f}  " + "  ".join(f"{c:>24s}" for c in cells))


def timing(catalog: Catalog, queries: list[Item], weight: float, rounds: int = 3) -> None:
    """Milliseconds per query (a page of 24, the query's vector given: no photo decoding or
    encoding), the ways side by side in each round; the median round is printed."""
    ways = {
        "cosine only (Catalog.search_vector)":
            lambda it: catalog.search_vector(catalog.vector_of(it.id), 24),
        "colour weight 0, diversity 0":
            lambda it: recommend(catalog, Query(colour_weight=0, diversity=0)
                                 .add_item(catalog, it.id), 24),
        f"colour weight {weight}, diversity 0":
            lambda it: recommend(catalog, Query(colour_weight=weight, diversity=0)
                                 .add_item(catalog, it.id), 24),
        f"colour weight {weight}, diversity 0.25":
            lambda it: recommend(catalog, Query(colour_weight=weight, diversity=0.25)
                                 .add_item(catalog, it.id), 24),
        f"colour weight {weight}, diversity 0.25, 4th page":
            lambda it: recommend(catalog, Query(colour_weight=weight, diversity=0.25)
                                 .add_item(catalog, it.id), 24, offset=72),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            t0 = time.perf_counter()
            for it in queries:
                way(it)
            times[name].append((time.perf_counter() - t0) * 1000 / len(queries))
    print(f"\n{len(queries)} queries, ms per query (median of {rounds} rounds; a photo search "
          "adds decoding and encoding the photo)")
    for name, ms in times.items():
        print(f"  {name:48s} {float(np.median(ms)):6.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--products", type=Path, required=True)
    ap.add_argument("--clothing", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="where the catalogs are built")
    ap.add_argument("--model", default=Settings().model)
    ap.add_argument("--weights", nargs="*", type=float, default=[0.0, 0.05, 0.1, 0.2, 0.3])
    ap.add_argument("--diversity", type=float, default=0.0)
    ap.add_argument("--queries", type=int, default=500, help="per data set (random, seed 0)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--timing", action="store_true",
                    help="also time a page of results with and without the controls")
    args = ap.parse_args()
    t0 = time.monotonic()
    sets = {
        "products": build(args.work / "products", args.products / "images",
                          args.products / "items.csv", args.model),
        "clothing": build(args.work / "clothing-held-out", args.clothing / "images",
                          held_out_metadata(args.clothing, args.work / "clothing-held-out.csv",
                                            args.model), args.model),
    }
    print(f"machine: {platform.machine()} {os.cpu_count()} cores; {datetime.now(UTC).date()}; "
          f"model {args.model}; diversity {args.diversity}")
    summary: dict[str, object] = {}
    for name, catalog in sets.items():
        items = catalog.items(limit=1_000_000)
        pixel = dominant_colours([Path(it.image_path) for it in items], catalog.settings)
        colour_of = {"colour (pixel reference)": {it.rowid: c for it, c in
                                                  zip(items, pixel, strict=True)}}
        group_of = None
        if name == "products":
            colour_of = {"colour (labels)": {it.rowid: _norm(it.colour) for it in items},
                         **colour_of}
        else:
            group_of = {it.rowid: str(it.extra.get("sender_id", "")) for it in items}
        ref = {it.rowid: c for it, c in zip(items, pixel, strict=True)}
        eligible = [it for it in items if it.category and it.category not in IGNORED
                    and ref[it.rowid] and (name != "products" or it.colour)]
        rng = np.random.default_rng(0)
        pick = rng.choice(len(eligible), min(args.queries, len(eligible)), replace=False)
        queries = [eligible[i] for i in sorted(pick)]
        result = sweep(catalog, queries, args.weights, args.diversity, colour_of, group_of)
        print_table(f"{name} ({len(items)} items)", result, len(queries))
        summary[name] = {str(w): {m: float(v.mean()) for m, v in s.items()}
                         for w, s in result.items()}
        if args.timing:
            timing(catalog, queries[:100], catalog.settings.colour_weight)
        catalog.close()
    print(f"\n({time.monotonic() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
