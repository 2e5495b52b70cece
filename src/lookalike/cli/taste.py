"""Taste commands: tag, directions, steer, profile, feed (a simulated shopper)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from lookalike.attributes import tag_catalog, train_probes
from lookalike.catalog import Catalog, Filters
from lookalike.cli.app import app
from lookalike.cli.catalog import (
    CatalogOpt,
    ColourWeightOpt,
    FilterOpt,
    JsonOpt,
    console,
    fail,
    print_results,
    settings_from,
)
from lookalike.errors import LookalikeError
from lookalike.recommend import Feed, Query, profile_search, recommend, steering_directions
from lookalike.users import Users

KOpt = Annotated[int, typer.Option("-k", help="How many results.")]


def _open(catalog: Path | None) -> Catalog:
    return Catalog.open(settings_from(catalog))


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


@app.command("tag")
def tag_cmd(
    catalog: CatalogOpt = None,
    train: Annotated[bool, typer.Option(help="Train category/pattern probes first.")] = True,
    retag: Annotated[bool, typer.Option("--all", help="Re-tag colour on every item.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Tag items already in the catalog: colour from pixels, category/pattern by probes."""
    try:
        with _open(catalog) as cat:
            probes = train_probes(cat) if train else {}
            report = tag_catalog(cat, only_missing=not retag)
    except LookalikeError as exc:
        raise fail(exc) from None
    out = {"probes": probes, "items": report.items, "tagged": report.tagged,
           "unreadable": report.unreadable}
    if as_json:
        print(json.dumps(out))
    else:
        for name, m in probes.items():
            console.print(f"probe [bold]{name}[/]: {int(m['classes'])} classes, held-out "
                          f"accuracy {m['heldout_accuracy']:.3f} on {int(m['train_items'])} items")
        console.print(f"tagged {report.tagged} of {report.items} items "
                      f"({report.unreadable} unreadable images)")


@app.command("directions")
def directions_cmd(catalog: CatalogOpt = None, as_json: JsonOpt = False) -> None:
    """List the attribute directions available for --steer."""
    try:
        with _open(catalog) as cat:
            names = steering_directions(cat)
    except LookalikeError as exc:
        raise fail(exc) from None
    print(json.dumps(names) if as_json else "\n".join(names))


@app.command("steer")
def steer_cmd(
    like: Annotated[list[str], typer.Option("--like", help="Item id or image path (repeat).")],
    dislike: Annotated[
        list[str] | None, typer.Option("--dislike", help="Item id or image path (repeat).")
    ] = None,
    steer: Annotated[
        list[str] | None,
        typer.Option("--steer", "-s", help="direction=strength in [-1, 1], e.g. colour:red=0.8"),
    ] = None,
    colour_weight: ColourWeightOpt = None,
    diversity: Annotated[float | None, typer.Option(help="0 = relevance ... 1 = diverse.")] = None,
    k: KOpt = 10,
    filters: FilterOpt = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """More like these, less like those: examples, attribute steering, colour weight, MMR."""
    try:
        with _open(catalog) as cat:
            q = Query(steer=_parse_steer(steer or []), colour_weight=colour_weight,
                      diversity=diversity)
            for ref, liked in [(r, True) for r in like] + [(r, False) for r in dislike or []]:
                if Path(ref).is_file():
                    q.add_photo(cat, Path(ref), liked=liked)
                else:
                    q.add_item(cat, ref, liked=liked)
            results = recommend(cat, q, k, Filters.parse(filters or []))
    except LookalikeError as exc:
        raise fail(exc) from None
    print_results(results, as_json, "steered results")


@app.command("profile")
def profile_cmd(
    photos: Annotated[list[str], typer.Argument(help="Image paths or item ids of one shopper.")],
    k: KOpt = 10,
    prototypes: Annotated[int, typer.Option(help="Most prototypes (1 = mean vector).")] = 3,
    filters: FilterOpt = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Style profile from several photos: one search per prototype, interleaved."""
    try:
        with _open(catalog) as cat:
            vecs, exclude = [], []
            for ref in photos:
                if Path(ref).is_file():
                    vecs.append(cat.embed(Path(ref)))
                else:
                    vecs.append(cat.vector_of(ref))
                    exclude.append(cat.store.rowid_of(ref))
            results = profile_search(cat, np.stack(vecs), k, Filters.parse(filters or []),
                                     prototypes, exclude)
    except LookalikeError as exc:
        raise fail(exc) from None
    print_results(results, as_json, f"profile of {len(photos)} photos")


@app.command("feed")
def feed_cmd(
    like_category: Annotated[str, typer.Argument(help="The simulated shopper likes only this.")],
    swipes: Annotated[int, typer.Option(help="Swipes before the feed is judged.")] = 20,
    n: Annotated[int, typer.Option("-n", help="Feed items judged after the swipes.")] = 10,
    filters: FilterOpt = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Simulate a shopper (a guest user in this catalog) who likes one category: swipe the feed
    one card at a time, then show the next items and the share in that category."""
    try:
        with _open(catalog) as cat:
            feed = Feed(cat, Users(cat.store, cat.settings.password_min_length))
            user, _ = feed.users.create_guest()
            f = Filters.parse(filters or [])
            seq = []
            for _ in range(swipes):
                card = feed.next(user, 1, f)
                if not card:
                    break
                liked = (card[0].item.attribute("category") or "") == like_category
                feed.swipe(user, card[0].item.id, liked)
                seq.append(("+" if liked else "-") + (card[0].item.attribute("category") or "?"))
            results = feed.next(user, n, f, mark_shown=False)
    except LookalikeError as exc:
        raise fail(exc) from None
    hits = sum((r.item.attribute("category") or "") == like_category for r in results)
    rate = hits / len(results) if results else 0.0
    if as_json:
        print(json.dumps({"swipes": seq, "hit_rate": rate, "user_id": user.id,
                          "next": [r.item.id for r in results]}))
        return
    console.print("swipes: " + " ".join(seq))
    print_results(results, False, f"next {n}: {hits}/{len(results)} {like_category}")
