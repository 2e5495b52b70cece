"""Simulated shoppers on a catalog: each likes one hidden label and dislikes everything else.

A shopper swipes the feed one card at a time (as the web page does, `Feed.next(n=1)`); after
0, 5, 10, ... swipes we peek at the next 10 feed items (`mark_shown=False`) and count the share
with the hidden label (the hit rate). Repeated for several labels and α values; prints a table,
writes JSON and a plot of hit rate against swipes.

    .venv/bin/python bench/simulate_shoppers.py --catalog /tmp/full \\
        --out docs/assets/simulate_shoppers.png

The catalog is copied to a temporary folder first (users and swipes are written to it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike.attributes import default_taggers
from lookalike.catalog import Catalog, Item
from lookalike.config import Settings
from lookalike.recommend import Feed
from lookalike.users import Users

DEFAULT_LABELS = ("Dress", "Shoes", "Pants", "T-Shirt", "Outwear", "Shorts", "Hat", "Skirt")
CHECKPOINTS = (0, 5, 10, 15, 20, 25, 30)


def attribute(item: Item, name: str) -> str | None:
    """The item's value of `name` (category or colour), given or else predicted."""
    value = getattr(item, name)
    tag = item.predicted.get(name)
    return str(value) if value else (tag.value if tag is not None else None)


def simulate(
    feed: Feed, label: str, swipes: int, checkpoints: tuple[int, ...], by: str = "category"
) -> dict[int, float]:
    user, _ = feed.users.create_guest()
    curve: dict[int, float] = {}
    for t in range(swipes + 1):
        if t in checkpoints:
            page = feed.next(user, 10, mark_shown=False)
            hits = [attribute(r.item, by) == label for r in page]
            curve[t] = float(np.mean(hits)) if page else 0.0
        if t == swipes:
            break
        card = feed.next(user, 1)
        if not card:
            break
        feed.swipe(user, card[0].item.id, attribute(card[0].item, by) == label)
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--catalog", type=Path, required=True, help="catalog folder (copied)")
    ap.add_argument("--labels", nargs="*", default=list(DEFAULT_LABELS))
    ap.add_argument("--by", choices=["category", "colour"], default="category",
                    help="what the hidden taste is: a category, or a colour (given or predicted)")
    ap.add_argument("--attribute-weight", type=float, default=None,
                    help="default: settings.feed_attribute_weight")
    ap.add_argument("--alphas", nargs="*", type=float, default=[0.1, 0.3, 0.5, 0.8])
    ap.add_argument("--beta", type=float, default=None, help="default: settings.swipe_beta")
    ap.add_argument("--exploration", type=float, default=None)
    ap.add_argument("--shoppers", type=int, default=3, help="shoppers per label and α")
    ap.add_argument("--swipes", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("docs/assets/simulate_shoppers.png"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    checkpoints = tuple(c for c in CHECKPOINTS if c <= args.swipes)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "catalog"
        shutil.copytree(args.catalog, folder)
        settings = Settings(catalog_dir=folder)
        catalog = Catalog.open(settings, taggers=default_taggers)
        users = Users(catalog.store)
        results: dict[str, dict[str, dict[int, float]]] = {}
        t0 = time.perf_counter()
        calls = 0
        for alpha in args.alphas:
            feed = Feed(catalog, users)
            feed.alpha = alpha
            if args.beta is not None:
                feed.beta = args.beta
            if args.exploration is not None:
                feed.exploration = args.exploration
            if args.attribute_weight is not None:
                feed.attribute_weight = args.attribute_weight
            for label in args.labels:
                curves = [simulate(feed, label, args.swipes, checkpoints, args.by)
                          for _ in range(args.shoppers)]
                calls += args.shoppers * (args.swipes + len(checkpoints))
                mean = {c: float(np.mean([cv.get(c, 0.0) for cv in curves])) for c in checkpoints}
                results.setdefault(str(alpha), {})[label] = mean
        seconds = time.perf_counter() - t0
        model = catalog.store.model_name
        catalog.close()

    beta = args.beta if args.beta is not None else Settings().swipe_beta
    print(f"beta={beta} shoppers/label={args.shoppers} "
          f"({calls} feed calls in {seconds:.1f} s, {1000 * seconds / calls:.1f} ms per call)")
    header = "alpha  label        " + " ".join(f"{c:>5}" for c in checkpoints)
    print(header)
    for alpha, per_label in results.items():
        for label, curve in per_label.items():
            print(f"{alpha:<6} {label:<12} " + " ".join(f"{curve[c]:5.2f}" for c in checkpoints))
        mean = [np.mean([per_label[lbl][c] for lbl in per_label]) for c in checkpoints]
        print(f"{alpha:<6} {'(mean)':<12} " + " ".join(f"{m:5.2f}" for m in mean))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = list(results)
    fig, axes = plt.subplots(1, len(alphas), figsize=(max(7.0, 4.2 * len(alphas)), 4.2),
                             sharey=True)
    axes = np.atleast_1d(axes)
    for ax, alpha in zip(axes, alphas, strict=True):
        for label, curve in results[alpha].items():
            ax.plot(checkpoints, [curve[c] for c in checkpoints], marker="o", ms=3, label=label)
        mean = [np.mean([results[alpha][lbl][c] for lbl in results[alpha]]) for c in checkpoints]
        ax.plot(checkpoints, mean, color="black", lw=2.5, label="mean")
        ax.axhline(0.8, color="grey", ls="--", lw=1)
        ax.axvline(20, color="grey", ls=":", lw=1)
        ax.set_title(f"α = {alpha}, β = {beta}")
        ax.set_xlabel("swipes")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of the liked label in the next 10 feed items")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Simulated shoppers who like one {args.by} ({args.catalog.name}, {model})")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"plot: {args.out}")
    if args.json is not None:
        args.json.write_text(json.dumps({"beta": beta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
