"""How well the attribute taggers do on labels they never saw: the product-catalogue sample
(category, sub_category, gender, usage, season, pattern) ingested with the real encoder, one
probe per attribute trained on 80 % of the labelled items (stratified) and judged on the other
20 % (`lookalike.attributes.probe.heldout_metrics`), for a few regularisation strengths and
split seeds. Also the colour tagger (pixels) against the catalog's colour labels, merged by
canonical name (`Navy Blue` → `navy`), where the label is one of the tagger's 13 names.

    python bench/attribute_taggers.py --products ../shared/datasets/fashion-product-images-sample

The catalog is built once in --catalog (reused when it is there). Prints one table row per
attribute and setting; numbers move a little with the seed (printed side by side)."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from lookalike.attributes import default_taggers
from lookalike.attributes.colour import COLOUR_NAMES
from lookalike.attributes.probe import train_probe
from lookalike.catalog import Catalog
from lookalike.colour_names import canonical_colour
from lookalike.config import Settings
from lookalike.errors import LookalikeError

ATTRIBUTES = ("category", "sub_category", "gender", "usage", "season", "pattern")


def build(products: Path, folder: Path, model: str) -> Catalog:
    settings = Settings(catalog_dir=folder, model=model, tag_attributes=list(ATTRIBUTES))
    catalog = Catalog.open(settings, taggers=default_taggers)
    if len(catalog) == 0:
        start = time.perf_counter()
        report = catalog.ingest(products / "images", products / "items.csv",
                                report_path=folder / "rejected.csv")
        print(f"ingested {report.added} items in {time.perf_counter() - start:.0f} s "
              f"({len(report.rejected)} rejected)")
    return catalog


def colour_agreement(catalog: Catalog) -> None:
    """The tagger's dominant colour (first name of the stored palette) against the given
    colour, both by canonical name, where the given one is a tagger name."""
    with catalog.store.connection() as conn:
        rows = conn.execute(
            "SELECT colour, json_extract(predicted, '$.palette.value') FROM items "
            "WHERE colour IS NOT NULL"
        ).fetchall()
    pairs = [(canonical_colour(given), (palette or "").split(":")[0]) for given, palette in rows]
    judged = [(g, p) for g, p in pairs if g in COLOUR_NAMES and p]
    merged = sum(1 for given, _ in rows if canonical_colour(given) != given.strip().lower())
    hits = sum(g == p for g, p in judged)
    print(f"\ncolour tagger vs catalog labels (canonical names): {hits}/{len(judged)} = "
          f"{hits / max(1, len(judged)):.3f} agree; {len(pairs) - len(judged)} labels are "
          f"shades outside the tagger's 13 names; {merged} labels renamed by the synonym table")
    wrong = Counter((g, p) for g, p in judged if g != p).most_common(6)
    print("most common disagreements (label → tagger): "
          + ", ".join(f"{g}→{p} ({n})" for (g, p), n in wrong))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=Path, required=True)
    parser.add_argument("--catalog", type=Path, default=None,
                        help="folder for the catalog (default: a temporary one)")
    parser.add_argument("--model", default="lookalike-fashion-int8")
    parser.add_argument("--c", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    folder = args.catalog or Path(tempfile.mkdtemp(prefix="bench-attributes-"))
    catalog = build(args.products, folder, args.model)
    print(f"{len(catalog)} items, model {catalog.store.model_name}; threshold "
          f"{catalog.settings.tag_min_confidence}")
    header = (f"{'attribute':<13}{'C':>5}{'seed':>5}{'classes':>8}{'labelled':>9}{'held':>6}"
              f"{'acc':>7}{'major':>7}{'macroF1':>8}{'prec@t':>8}{'rec@t':>7}{'cover':>7}")
    print(header)
    for name in ATTRIBUTES:
        for c in args.c:
            for seed in args.seeds:
                try:
                    _, m = train_probe(catalog, name, c=c, seed=seed)
                except LookalikeError as exc:
                    print(f"{name:<13} skipped: {exc}")
                    break
                print(f"{name:<13}{c:>5g}{seed:>5}{int(m['classes']):>8}{int(m['train_items']):>9}"
                      f"{int(m['heldout_items']):>6}{m['heldout_accuracy']:>7.3f}"
                      f"{m['majority_accuracy']:>7.3f}{m['macro_f1']:>8.3f}{m['precision']:>8.3f}"
                      f"{m['recall']:>7.3f}{m['coverage']:>7.3f}")
    colour_agreement(catalog)
    catalog.close()


if __name__ == "__main__":
    main()
