"""Catalog commands: ingest, search, similar, info, demo.

Light at import (typer and the standard library only): the library loads inside each command,
after its arguments have been checked.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lookalike.cli.app import app
from lookalike.errors import LookalikeError

if TYPE_CHECKING:
    from lookalike.catalog import Catalog, Filters, Result
    from lookalike.config import Settings

CatalogOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalog", "-c", metavar="FOLDER", show_default="./catalog, or $LOOKALIKE_CATALOG_DIR",
        help="Catalog folder (catalog.sqlite + index).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", metavar="NAME", show_default="lookalike-fashion-int8, or $LOOKALIKE_MODEL",
        help="Encoder name or .onnx file, for a new catalog (an existing one keeps its own).",
    ),
]
FilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--filter", "-f", metavar="FIELD=VALUE",
        help="Keep only matching items (repeatable; lists comma-separated): category=Dress,Skirt "
        "brand=X colour=red size=M price_min=10 price_max=50 (in the base currency) "
        "currency=EUR,USD second_hand=true kids=false min_sustainability=3 min_brand_rating=3 "
        "min_brand_people=3 min_brand_planet=3 min_brand_animals=3 min_rating=4 "
        "state=available,reserved include_sold=true (sold items are left out otherwise), and "
        "labelled attributes: usage=Formal pattern=striped.",
    ),
]
PortOpt = Annotated[
    int | None,
    typer.Option(metavar="PORT", min=1, max=65535, show_default="8000, or $LOOKALIKE_PORT",
                 help="TCP port to serve on."),
]
KOpt = Annotated[int, typer.Option("-k", metavar="N", min=1, max=1000, help="How many results.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine", metavar="local|ray", show_default="local, or $LOOKALIKE_ENGINE",
        help="Where photos are decoded and encoded: this machine's cores, or a Ray cluster "
        "(pip install 'lookalike[ray]'; see docs/guide/ray.md).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address", metavar="HOST:PORT",
        show_default="$LOOKALIKE_RAY_ADDRESS, $RAY_ADDRESS, else a local Ray",
        help="Ray cluster to run on, with --engine ray.",
    ),
]
# Settings is not imported here (--help must stay instant): a test checks that this default
# is Settings.colour_weight's.
ColourWeightOpt = Annotated[
    float | None,
    typer.Option(
        "--colour-weight", metavar="W", min=0.0, max=1.0,
        show_default="0.1, or $LOOKALIKE_COLOUR_WEIGHT",
        help="Match colour: how much garment colour counts against shape and style, "
        "0 = ignore colour ... 1 = colour only.",
    ),
]




class SortChoice(StrEnum):
    """`lookalike.catalog.sorting.Sort`, spelt out here so that --help need not import the
    library (a test checks they agree)."""

    relevance = "relevance"
    price_asc = "price_asc"
    price_desc = "price_desc"
    sustainability = "sustainability"
    brand_rating = "brand_rating"
    rating = "rating"
    newest = "newest"


SortOpt = Annotated[
    SortChoice,
    typer.Option(
        "--sort", metavar="ORDER",
        help="Order of the results: relevance, price_asc, price_desc (in the base currency), "
        "sustainability (the item's own), brand_rating, rating (shoppers'), newest. A sort "
        "orders the closest look-alikes (Settings.sort_depth, 200 by default).",
    ),
]
OffsetOpt = Annotated[
    int, typer.Option("--offset", metavar="N", min=0,
                      help="Skip the first N results (the next page: N = the ranks shown).")
]


def settings_from(catalog: Path | None, model: str | None = None) -> Settings:
    """The Settings (LOOKALIKE_* environment) with the command's --catalog and --model."""
    from pydantic import ValidationError

    from lookalike.config import Settings
    from lookalike.validation import plain_errors

    try:
        settings = Settings()
    except ValidationError as exc:
        raise LookalikeError(
            "bad setting: " + plain_errors(exc.errors(), lambda loc: "LOOKALIKE_" + "_".join(
                str(p) for p in loc).upper())
        ) from None
    if catalog is not None:
        settings = settings.model_copy(update={"catalog_dir": catalog})
    if model is not None:
        settings = settings.model_copy(update={"model": model})
    return settings


def with_engine(settings: Settings, engine: str | None, ray_address: str | None) -> Settings:
    """`settings` with the command's --engine and --ray-address."""
    if engine is not None and engine not in ("local", "ray"):
        raise typer.BadParameter(f"{engine!r}: expected local or ray", param_hint="'--engine'")
    if ray_address is not None and (engine or settings.engine) != "ray":
        raise typer.BadParameter("only with --engine ray", param_hint="'--ray-address'")
    update = {"engine": engine, "ray_address": ray_address}
    return settings.model_copy(update={k: v for k, v in update.items() if v is not None})


def open_catalog(catalog: Path | None) -> Catalog:
    """The existing catalog in --catalog (default ./catalog); an error, creating nothing, where
    there is none."""
    from lookalike.attributes import default_taggers
    from lookalike.catalog import Catalog

    return Catalog.open(settings_from(catalog), create=False, taggers=default_taggers)


def parse_filters(expressions: list[str] | None) -> Filters:
    """The --filter expressions; the names of `Settings.tag_attributes` filter on those
    attributes (`usage=Formal`)."""
    from lookalike.catalog import Filters

    attributes = settings_from(None).tag_attributes if expressions else ()
    return Filters.parse(expressions or [], attributes=attributes)


def explain(
    catalog: Catalog, filters: Filters, results: list[Result], sort: str = "relevance",
    offset: int = 0,
) -> None:
    """On stderr: filter values no item has (with the values that exist), prices that cannot
    be compared, and why a result is empty."""
    notes = catalog.notes(filters, sort)
    if results:
        for note in notes:
            typer.echo(f"note: {note}", err=True)
        return
    if offset:
        reason = f"the ranking ends before rank {offset + 1} (try a smaller --offset)"
    elif notes:
        reason = "; ".join(notes)
    elif not filters.is_empty():
        reason = "no item passes all of these filters together"
    elif len(catalog) == 0:
        reason = "the catalog is empty; add items with `lookalike ingest`"
    elif catalog.store.count(filters) == 0:
        reason = "every item is sold (-f include_sold=true shows them)"
    else:
        reason = "nothing to show"
    typer.echo(f"no results: {reason}", err=True)


@app.command("ingest")
def ingest_cmd(
    images: Annotated[
        Path,
        typer.Argument(metavar="PHOTOS", exists=True, file_okay=False,
                       help="Folder of item photos."),
    ],
    metadata: Annotated[
        Path | None,
        typer.Option("--metadata", metavar="FILE",
                     help="CSV or JSONL, one row per item (`image` column required)."),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option("--map", metavar="FROM=TO",
                     help="Rename a metadata column, e.g. label=category (repeatable)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(metavar="FILE", show_default="CATALOG/rejected.csv",
                     help="Where to write the rejected rows."),
    ] = None,
    duplicates: Annotated[
        str | None,
        typer.Option(metavar="reject|flag|keep", show_default="reject (LOOKALIKE_DUPLICATES)",
                     help="A repost of a catalog photo (resized, recompressed, cropped, "
                     "mirrored): reject it naming the original, add it flagged, or keep it."),
    ] = None,
    catalog: CatalogOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add photos and their metadata to a catalog. Creates the catalog if needed, skips
    duplicates, rejects reposts and resumes after a crash."""
    if duplicates not in (None, "reject", "flag", "keep"):
        raise typer.BadParameter(f"{duplicates!r}: expected reject, flag or keep",
                                 param_hint="'--duplicates'")
    columns = {}
    for c in column or []:
        source, sep, target = c.partition("=")
        if not sep or not source or not target:
            raise typer.BadParameter(f"{c!r}: expected FROM=TO, e.g. label=category",
                                     param_hint="'--map'")
        columns[source] = target
    settings = with_engine(settings_from(catalog, model), engine, ray_address)
    if duplicates is not None:
        settings = settings.model_copy(update={"duplicates": duplicates})
    from lookalike.attributes import default_taggers
    from lookalike.catalog import Catalog
    from lookalike.cli.output import print_report, progress_bar, update_progress

    bar, task = progress_bar()
    with Catalog.open(settings, taggers=default_taggers) as cat, bar:
        result = cat.ingest(
            images, metadata, columns=columns,
            report_path=report or Path(settings.catalog_dir) / "rejected.csv",
            progress=update_progress(bar, task),
        )
    print_report(result, as_json)


def page_of(catalog: Catalog, offset: int, k: int, sort: str) -> tuple[int, int, int]:
    """(k cut to the bound of this query's pages, the bound, the results to ask for: one more
    than the page while the bound allows, to know whether there is a next page); an offset at
    or past the bound is an error naming it."""
    from lookalike.recommend import ranking_bound, with_probe

    bound = ranking_bound(catalog.settings, None, sort)
    if offset >= bound:
        raise LookalikeError(
            f"--offset {offset} is past the {bound} results this query ranks "
            f"({'max_results' if bound == catalog.settings.max_results else 'sort_depth'})"
        )
    size = min(k, bound - offset)
    return size, bound, with_probe(offset, size, bound)


def print_page(
    results: list[Result], as_json: bool, title: str, offset: int, size: int, bound: int,
    sort: str,
) -> None:
    """A page of `size` results from results asked as `page_of` says (the extra one left
    out), captioned with its ranks and the next page's offset."""
    from lookalike.cli.output import print_results

    more, results = len(results) > size, results[:size]
    print_results(results, as_json, title,
                  caption=page_caption(offset, len(results), more, bound, sort),
                  first_rank=offset + 1)


def page_caption(offset: int, shown: int, more: bool, bound: int, sort: str) -> str:
    """Which ranks a page shows, how deep the query's pages reach, and the next page."""
    order = "" if sort == "relevance" else f", sorted by {sort} (the {bound} closest)"
    text = f"ranks {offset + 1}–{offset + shown} of at most {bound}{order}"
    if more:
        text += f"; next page: --offset {offset + shown}"
    return text if shown else ""


@app.command("search")
def search_cmd(
    image: Annotated[
        Path | None,
        typer.Argument(metavar="PHOTO", dir_okay=False, allow_dash=True,
                       help="Photo to find look-alikes of ('-' reads it from stdin); optional "
                       "with --text."),
    ] = None,
    text: Annotated[
        str | None,
        typer.Option("--text", "-t", metavar="WORDS",
                     help="What you want in words, mapped onto the catalog's own categories, "
                     "colours, brands and attributes: \"red floral dress under 50\"; beside a "
                     "PHOTO: \"this, but in red\" (appearance words steer, constraints filter)."),
    ] = None,
    k: KOpt = 10,
    filters: FilterOpt = None,
    colour_weight: ColourWeightOpt = None,
    sort: SortOpt = SortChoice.relevance,
    offset: OffsetOpt = 0,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Items that look like a photo, or that words describe, or both."""
    if image is None and not text:  # before any import: an argument error answers at once
        raise typer.BadParameter("give a PHOTO, --text WORDS, or both", param_hint="'PHOTO'")
    from lookalike.images import read_image_stream
    from lookalike.recommend import search_image

    parsed = parse_filters(filters)
    with open_catalog(catalog) as cat:
        size, bound, ask = page_of(cat, offset, k, sort.value)
        stdin = str(image) == "-"  # read only up to the byte cap
        source: Path | bytes | None = (
            read_image_stream(sys.stdin.buffer, cat.limits) if stdin else image
        )
        if not text:
            assert source is not None
            results = search_image(cat, source, ask, parsed, colour_weight=colour_weight,
                                   offset=offset, sort=sort.value,
                                   name="<stdin>" if stdin else None)
            explain(cat, parsed, results, sort.value, offset)
            print_page(results, as_json, f"look-alikes of {image}", offset, size, bound,
                       sort.value)
            return
        from lookalike.recommend import Query
        from lookalike.recommend.words import describe, search_text

        found = search_text(cat, text, ask, parsed, photo=source,
                            query=Query(colour_weight=colour_weight), offset=offset,
                            sort=sort.value)
        if source is None and not found.intent.understood():
            raise LookalikeError(found.notes[-1])  # names the words it ignored
        for line in describe(found.intent) + [f"note: {n}" for n in found.notes
                                              if n not in found.intent.notes]:
            typer.echo(line, err=True)
        explain(cat, found.filters, found.results, sort.value, offset)
    if as_json:
        print(json.dumps({"understood": found.understood(), "results": [
            {"score": round(r.score, 4), **r.item.model_dump(mode="json")}
            for r in found.results[:size]]}))
        return
    title = f"look-alikes of {image}, {text!r}" if image is not None else f"matching {text!r}"
    print_page(found.results, False, title, offset, size, bound, sort.value)


@app.command("similar")
def similar_cmd(
    item_id: Annotated[str, typer.Argument(metavar="ID", help="Id of a catalog item.")],
    k: KOpt = 10,
    filters: FilterOpt = None,
    colour_weight: ColourWeightOpt = None,
    sort: SortOpt = SortChoice.relevance,
    offset: OffsetOpt = 0,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """More like this: items that look like a catalog item (the item itself left out)."""
    from lookalike.recommend import similar

    parsed = parse_filters(filters)
    with open_catalog(catalog) as cat:
        size, bound, ask = page_of(cat, offset, k, sort.value)
        results = similar(cat, item_id, ask, parsed, colour_weight=colour_weight,
                          offset=offset, sort=sort.value)
        explain(cat, parsed, results, sort.value, offset)
    print_page(results, as_json, f"more like {item_id}", offset, size, bound, sort.value)


@app.command("info")
def info_cmd(catalog: CatalogOpt = None, as_json: JsonOpt = False) -> None:
    """What a catalog holds: item count, model, index."""
    with open_catalog(catalog) as cat:
        info = cat.info()
    if as_json:
        print(json.dumps(info))
        return
    for key, value in info.items():
        typer.echo(f"{key}: {value}")


@app.command("demo")
def demo_cmd(
    catalog: Annotated[
        Path, typer.Option("--catalog", "-c", metavar="FOLDER",
                           help="Catalog folder to build the demo in.")
    ] = Path("demo-catalog"),
    serve: Annotated[
        bool, typer.Option(help="Serve the web page and API afterwards.")
    ] = True,
    port: PortOpt = None,
) -> None:
    """Build a catalog from the bundled sample photos, show look-alikes, then serve the web
    page."""
    settings = settings_from(catalog)
    if port is not None:
        settings = settings.model_copy(update={"port": port})
    from lookalike.cli.output import print_report, print_results, progress_bar, update_progress
    from lookalike.demo import build_demo_catalog, demo_queries
    from lookalike.recommend import similar

    listener = None
    if serve:  # a taken port says so now, not after the ingest
        from lookalike.api.server import listen

        listener = listen(settings)
    bar, task = progress_bar()
    with bar:
        cat, report = build_demo_catalog(settings, update_progress(bar, task))
    with cat:
        print_report(report, False)
        for item in demo_queries(cat):
            print_results(similar(cat, item.id, 5), False,
                          f"more like {item.id}: {item.title} ({item.category})")
    if listener is not None:
        from lookalike.api.server import run_server

        run_server(settings, listener)
