"""Taste commands: tag, directions, steer, profile, feed (a simulated shopper)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lookalike.cli.app import app
from lookalike.cli.catalog import (
    CatalogOpt,
    ColourWeightOpt,
    FilterOpt,
    JsonOpt,
    KOpt,
    explain,
    open_catalog,
    parse_filters,
)
from lookalike.errors import LookalikeError


def _parse_steer(values: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for v in values:
        name, sep, strength = v.rpartition("=")
        if not sep:
            name, strength = v, "1"
        try:
            out[name] = float(strength)
        except ValueError:
            raise LookalikeError(
                f"--steer {v!r}: expected name=strength, e.g. colour:red=0.8"
            ) from None
    return out


def _tagged(tagged: dict[str, int], items: int) -> str:
    if not tagged:
        return f"no item needed new tags ({items} items; --all re-tags every item's colour)"
    counts = ", ".join(f"{n} {name}" for name, n in sorted(tagged.items()))
    return f"tagged {counts} of {items} items"


@app.command("tag")
def tag_cmd(
    catalog: CatalogOpt = None,
    train: Annotated[
        bool, typer.Option(help="First train a tagger per labelled attribute (category, "
                           "pattern, usage, gender...: $LOOKALIKE_TAG_ATTRIBUTES) on the "
                           "catalog's own labels.")
    ] = True,
    retag: Annotated[
        bool, typer.Option("--all", help="Re-tag colour on every item, not only untagged ones.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Tag items already in the catalog: colour from pixels, other attributes by taggers
    trained on the catalog's labels (each judged on 20 % of its labelled items held out)."""
    from lookalike.attributes import tag_catalog, train_probes

    with open_catalog(catalog) as cat:
        probes = train_probes(cat) if train else {}
        wanted = cat.settings.tag_attributes
        report = tag_catalog(cat, only_missing=not retag)
    skipped = [name for name in wanted if name not in probes] if train else []
    if as_json:
        print(json.dumps({"probes": probes, "skipped": skipped, "items": report.items,
                          "tagged": report.tagged, "unreadable": report.unreadable}))
        return
    for name, m in probes.items():
        typer.echo(
            f"tagger {name}: {int(m['classes'])} values, {int(m['train_items'])} labelled items; "
            f"held out {int(m['heldout_items'])}: accuracy {m['heldout_accuracy']:.3f} "
            f"(majority {m['majority_accuracy']:.3f}), macro F1 {m['macro_f1']:.3f}; at "
            f"confidence >= {m['threshold']:.2f}: precision {m['precision']:.3f}, recall "
            f"{m['recall']:.3f} ({m['coverage']:.0%} tagged)"
        )
    if skipped:
        typer.echo(f"no tagger for {', '.join(skipped)}: fewer than 2 values with 5+ labelled "
                   "items each")
    typer.echo(_tagged(report.tagged, report.items)
               + (f"; {report.unreadable} unreadable images" if report.unreadable else ""))


@app.command("directions")
def directions_cmd(catalog: CatalogOpt = None, as_json: JsonOpt = False) -> None:
    """List the attribute directions available for `steer --steer`."""
    from lookalike.recommend import steering_directions

    with open_catalog(catalog) as cat:
        names = steering_directions(cat)
    typer.echo(json.dumps(names) if as_json else "\n".join(names))


@app.command("steer")
def steer_cmd(
    like: Annotated[
        list[str],
        typer.Option("--like", metavar="ID|PHOTO", help="Item id or photo to move towards "
                     "(repeatable)."),
    ],
    dislike: Annotated[
        list[str] | None,
        typer.Option("--dislike", metavar="ID|PHOTO", help="Item id or photo to move away from "
                     "(repeatable)."),
    ] = None,
    steer: Annotated[
        list[str] | None,
        typer.Option("--steer", "-s", metavar="DIRECTION=STRENGTH",
                     help="Attribute direction (see `lookalike directions`) and strength in "
                     "[-1, 1], e.g. colour:red=0.8 (repeatable)."),
    ] = None,
    colour_weight: ColourWeightOpt = None,
    diversity: Annotated[
        float | None,
        typer.Option(metavar="D", min=0.0, max=1.0, show_default="0, or $LOOKALIKE_DIVERSITY",
                     help="0 = most relevant first; higher = each result pays for its "
                     "likeness to the ones above it (MMR)."),
    ] = None,
    k: KOpt = 10,
    filters: FilterOpt = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """More like these, less like those: examples, attribute steering, colour weight, MMR."""
    from lookalike.cli.output import print_results
    from lookalike.recommend import Query, recommend

    q = Query(steer=_parse_steer(steer or []), colour_weight=colour_weight, diversity=diversity)
    parsed = parse_filters(filters)
    with open_catalog(catalog) as cat:
        for ref, liked in [(r, True) for r in like] + [(r, False) for r in dislike or []]:
            if Path(ref).is_file():
                q.add_photo(cat, Path(ref), liked=liked)
            else:
                q.add_item(cat, ref, liked=liked)
        results = recommend(cat, q, k, parsed)
        explain(cat, parsed, results)
    print_results(results, as_json, "steered results")


@app.command("profile")
def profile_cmd(
    photos: Annotated[
        list[str],
        typer.Argument(metavar="PHOTO|ID", help="Photos or item ids of one shopper's clothes."),
    ],
    k: KOpt = 10,
    prototypes: Annotated[
        int, typer.Option(metavar="N", min=1, max=20,
                          help="Most style prototypes (1 = one mean vector).")
    ] = 3,
    filters: FilterOpt = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Style profile from several photos: one search per prototype, interleaved."""
    import numpy as np

    from lookalike.cli.output import print_results
    from lookalike.recommend import profile_search

    parsed = parse_filters(filters)
    with open_catalog(catalog) as cat:
        vecs, exclude = [], []
        for ref in photos:
            if Path(ref).is_file():
                vecs.append(cat.embed(Path(ref)))
            else:
                vecs.append(cat.vector_of(ref))
                exclude.append(cat.store.rowid_of(ref))
        results = profile_search(cat, np.stack(vecs), k, parsed, prototypes, exclude)
        explain(cat, parsed, results)
    print_results(results, as_json, f"profile of {len(photos)} photos")


@app.command("feed")
def feed_cmd(
    like_category: Annotated[
        str, typer.Argument(metavar="CATEGORY", help="The one category the simulated shopper "
                            "likes, e.g. Dress (one no item has lists those there are).")
    ],
    swipes: Annotated[
        int, typer.Option(metavar="N", min=0, max=1000, help="Swipes before the feed is judged.")
    ] = 20,
    n: Annotated[
        int, typer.Option("-n", metavar="N", min=1, max=1000,
                          help="Feed items judged after the swipes.")
    ] = 10,
    filters: FilterOpt = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Simulate a shopper who likes one category. A guest user in this catalog swipes the feed
    one card at a time; then the next items are shown, with the share in that category."""
    from lookalike.catalog import Filters
    from lookalike.cli.output import print_results
    from lookalike.recommend import Feed
    from lookalike.users import Users

    f = parse_filters(filters)
    with open_catalog(catalog) as cat:
        unknown = cat.unknown_filter_values(Filters(category=[like_category]))
        if unknown:
            raise LookalikeError(unknown[0])
        feed = Feed(cat, Users(cat.store, cat.settings.password_min_length))
        user, _ = feed.users.create_guest()
        seq = []
        for _ in range(swipes):
            card = feed.next(user, 1, f)
            if not card:
                break
            liked = (card[0].item.attribute("category") or "").lower() == like_category.lower()
            feed.swipe(user, card[0].item.id, liked)
            seq.append(("+" if liked else "-") + (card[0].item.attribute("category") or "?"))
        results = feed.next(user, n, f, mark_shown=False)
        explain(cat, f, results)
    hits = sum((r.item.attribute("category") or "").lower() == like_category.lower()
               for r in results)
    rate = hits / len(results) if results else 0.0
    if as_json:
        print(json.dumps({"swipes": seq, "hit_rate": rate, "user_id": user.id,
                          "next": [r.item.id for r in results]}))
        return
    typer.echo("swipes: " + " ".join(seq))
    print_results(
        results, False, f"next {n}: {hits}/{len(results)} {like_category}", score="taste",
        caption="taste = the feed's own score (likeness to the liked items + like probability), "
        "not the cosine similarity other commands show",
    )
