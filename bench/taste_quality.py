"""Quality numbers of issue 5: colour weight, MMR diversity, style profiles, steering, colour tags.

    .venv/bin/python bench/taste_quality.py --clothing /tmp/full --products /tmp/prod

`--clothing`: a catalog of ../shared/datasets/clothing-dataset (label mapped to category);
`--products`: a catalog of ../shared/datasets/fashion-product-images-sample (given colours).
Both are copied to a temporary folder and tagged there (colour palettes) if they are not yet.
Queries are catalog items; results never include the query, and on the clothing dataset never
an item from the query's own contributor (sender_id), as in the foundation's protocol.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike.attributes import ColourTagger, default_taggers, tag_catalog
from lookalike.catalog import Catalog, Item
from lookalike.config import Settings
from lookalike.images import load_image
from lookalike.recommend import Query, mean_pairwise_distance, profile_search, recommend

IGNORED = {"Not sure", "Skip", "Other"}
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _open_copy(src: Path, tmp: Path, name: str) -> Catalog:
    dst = tmp / name
    shutil.copytree(src, dst)
    cat = Catalog.open(Settings(catalog_dir=dst), taggers=default_taggers)
    report = tag_catalog(cat)  # only items without a palette yet
    if report.tagged:
        print(f"{name}: tagged {report.tagged}")
    return cat


def _items(cat: Catalog) -> list[Item]:
    return cat.items(limit=1_000_000)


def _sender_groups(items: list[Item]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for it in items:
        sender = str(it.extra.get("sender_id", ""))
        if sender:
            groups.setdefault(sender, []).append(it.rowid)
    return groups


def _norm(value: str | None) -> str:
    return (value or "").strip().lower()


def colour_weight_sweep(cat: Catalog, n: int, weights: list[float]) -> list[dict[str, float]]:
    items = [it for it in _items(cat) if it.colour and it.category]
    rng = np.random.default_rng(0)
    queries = [items[i] for i in rng.choice(len(items), min(n, len(items)), replace=False)]
    rows = []
    for w in weights:
        colour_p, cat_p = [], []
        for it in queries:
            q = Query(colour_weight=w, diversity=0.0).add_item(cat, it.id)
            res = recommend(cat, q, 10)
            colour_p.append(np.mean([_norm(r.item.colour) == _norm(it.colour) for r in res]))
            cat_p.append(np.mean([r.item.category == it.category for r in res]))
        rows.append({"colour_weight": w, "colour_p10": float(np.mean(colour_p)),
                     "category_p10": float(np.mean(cat_p))})
        print(f"  w={w:.2f}  colour P@10 {rows[-1]['colour_p10']:.3f}  "
              f"category P@10 {rows[-1]['category_p10']:.3f}")
    return rows


def mmr_sweep(cat: Catalog, n: int, diversities: list[float]) -> list[dict[str, float]]:
    items = [it for it in _items(cat) if it.category and it.category not in IGNORED]
    senders = _sender_groups(items)
    rng = np.random.default_rng(1)
    queries = [items[i] for i in rng.choice(len(items), min(n, len(items)), replace=False)]
    rows = []
    for d in diversities:
        p10, div, dups = [], [], []
        for it in queries:
            exclude = senders.get(str(it.extra.get("sender_id", "")), [it.rowid])
            q = Query(positives=[cat.vector_of(it.id)], colour_weight=0.0, diversity=d)
            res = recommend(cat, q, 10, exclude=exclude)
            vecs = np.stack([cat.vector_of(r.item.id) for r in res])
            p10.append(np.mean([r.item.category == it.category for r in res]))
            div.append(mean_pairwise_distance(vecs))
            sims = vecs @ vecs.T
            dups.append(int((sims[np.triu_indices(len(vecs), 1)] >= 0.97).sum()))
        rows.append({"diversity_control": d, "label_p10": float(np.mean(p10)),
                     "diversity": float(np.mean(div)), "duplicate_pairs": float(np.sum(dups))})
        print(f"  diversity={d:.2f}  label P@10 {rows[-1]['label_p10']:.3f}  "
              f"mean pairwise distance {rows[-1]['diversity']:.3f}  "
              f"near-duplicate pairs in top 10 (all queries) {int(rows[-1]['duplicate_pairs'])}")
    return rows


def profile_trials(cat: Catalog, trials: int, kinds: tuple[str, str]) -> dict[str, float]:
    items = _items(cat)
    rng = np.random.default_rng(2)
    by_kind = {k: [it for it in items if it.category == k] for k in kinds}
    out: dict[str, list[float]] = {"multi_both": [], "mean_both": [], "multi_a": [],
                                   "multi_b": [], "mean_a": [], "mean_b": []}
    for _ in range(trials):
        chosen = [by_kind[k][i] for k in kinds
                  for i in rng.choice(len(by_kind[k]), 3, replace=False)]
        vecs = np.stack([cat.vector_of(it.id) for it in chosen])
        exclude = [it.rowid for it in chosen]
        for name, m in (("multi", 3), ("mean", 1)):
            res = profile_search(cat, vecs, 10, max_prototypes=m, exclude=exclude)
            a = sum(r.item.category == kinds[0] for r in res)
            b = sum(r.item.category == kinds[1] for r in res)
            out[f"{name}_both"].append(float(a > 0 and b > 0))
            out[f"{name}_a"].append(float(a))
            out[f"{name}_b"].append(float(b))
    summary = {k: float(np.mean(v)) for k, v in out.items()}
    print(f"  {trials} profiles of 3 {kinds[0]} + 3 {kinds[1]}: both kinds in top 10 — "
          f"prototypes {summary['multi_both']:.2f} "
          f"({summary['multi_a']:.1f} {kinds[0]} + {summary['multi_b']:.1f} {kinds[1]}), "
          f"mean vector {summary['mean_both']:.2f} "
          f"({summary['mean_a']:.1f} + {summary['mean_b']:.1f})")
    return summary


def steering_red(cat: Catalog, n: int, strengths: list[float], direction: str,
                 red_values: set[str]) -> list[dict[str, float]]:
    items = [it for it in _items(cat)
             if it.category and it.category not in IGNORED
             and _norm(it.attribute("colour")) not in red_values]
    rng = np.random.default_rng(3)
    queries = [items[i] for i in rng.choice(len(items), min(n, len(items)), replace=False)]
    rows = []
    for s in strengths:
        red, same = [], []
        for it in queries:
            q = Query(steer={direction: s} if s else {}).add_item(cat, it.id)
            res = recommend(cat, q, 10)
            red.append(np.mean([_norm(r.item.attribute("colour")) in red_values for r in res]))
            same.append(np.mean([r.item.category == it.category for r in res]))
        rows.append({"strength": s, "red_share": float(np.mean(red)),
                     "category_p10": float(np.mean(same))})
        print(f"  {direction}={s:.2f}  red share in top 10 {rows[-1]['red_share']:.3f}  "
              f"category kept (P@10) {rows[-1]['category_p10']:.3f}")
    return rows


def colour_accuracy(labels: Path) -> dict[str, float]:
    tagger = ColourTagger()
    rows = list(csv.DictReader(labels.open()))
    per: dict[str, list[tuple[bool, bool]]] = {}
    for r in rows:
        img = load_image(SHARED / "datasets" / r["dataset"] / r["path"], draft_size=(256, 256))
        got = tagger(img)["colour"].value
        per.setdefault(r["dataset"], []).append((got == r["colour"], got in (r["colour"],
                                                                             r["also"])))
    out = {}
    for ds, v in per.items():
        out[f"{ds}_strict"] = float(np.mean([a for a, _ in v]))
        out[f"{ds}_lenient"] = float(np.mean([b for _, b in v]))
    every = [x for v in per.values() for x in v]
    out["all_strict"] = float(np.mean([a for a, _ in every]))
    out["all_lenient"] = float(np.mean([b for _, b in every]))
    print("  " + "  ".join(f"{k} {v:.2f}" for k, v in out.items()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clothing", type=Path, required=True)
    ap.add_argument("--products", type=Path, required=True)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--labels", type=Path,
                    default=Path(__file__).resolve().parents[1] / "tests/data/colour_labels.csv")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    results: dict[str, object] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        clothing = _open_copy(args.clothing, Path(tmp), "clothing")
        products = _open_copy(args.products, Path(tmp), "products")
        print("colour tagger on the hand labels (strict: my label; lenient: or my 2nd label)")
        results["colour_accuracy"] = colour_accuracy(args.labels)
        print("colour weight on the product sample (colour / category = the dataset's labels)")
        results["colour_weight"] = colour_weight_sweep(
            products, args.queries, [0.0, 0.1, 0.2, 0.3, 0.4, 0.6])
        print("MMR on the clothing dataset (exact cosine, colour weight 0; diversity d is classic "
              "MMR's λ = 1 / (1 + d))")
        results["mmr"] = mmr_sweep(clothing, args.queries, [0.0, 0.1, 0.25, 0.5, 1.0])
        print("style profiles on the clothing dataset")
        results["profile"] = profile_trials(clothing, 50, ("Shoes", "Dress"))
        print("steering 'in red' (clothing dataset; colours predicted by the tagger)")
        results["steer_clothing"] = steering_red(
            clothing, args.queries // 2, [0.0, 0.5, 1.0], "colour:red", {"red"})
        print("steering 'in red' (product sample; colours given)")
        results["steer_products"] = steering_red(
            products, args.queries // 2, [0.0, 0.5, 1.0], "colour:red", {"red"})
        clothing.close()
        products.close()
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
