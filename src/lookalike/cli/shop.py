"""Shop commands: brand sustainability ratings (`brands import|list`), exchange rates
(`rates import|list`) and one item's listing (`item ID --state sold --rating 4.5`).

Light at import (typer and the standard library only), as every command module.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lookalike.cli.app import LookalikeGroup, LookalikeTyper, app
from lookalike.cli.catalog import CatalogOpt, JsonOpt, open_catalog
from lookalike.errors import LookalikeError

if TYPE_CHECKING:
    from lookalike.catalog.tablefile import RowError

brands_app = LookalikeTyper(
    name="brands", cls=LookalikeGroup, no_args_is_help=True, rich_markup_mode=None,
    help="Brand sustainability ratings (0–5: overall, people, planet, animals), matched to "
    "items by normalised brand name.",
)
rates_app = LookalikeTyper(
    name="rates", cls=LookalikeGroup, no_args_is_help=True, rich_markup_mode=None,
    help="Exchange rates, so that price filters and sorts compare prices in one currency.",
)
app.add_typer(brands_app)
app.add_typer(rates_app)

FileArg = Annotated[
    Path,
    typer.Argument(metavar="FILE", exists=True, dir_okay=False,
                   help="CSV (header row) or JSONL; lines starting with # are comments."),
]


def _report_errors(errors: list[RowError], name: Path) -> None:
    for error in errors[:20]:
        typer.echo(f"{name}: {error}", err=True)
    if len(errors) > 20:
        typer.echo(f"{name}: ... and {len(errors) - 20} more", err=True)


@brands_app.command("import")
def brands_import_cmd(
    file: FileArg,
    replace: Annotated[
        bool, typer.Option("--replace", help="Drop the ratings of brands the file leaves out.")
    ] = False,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import brand ratings: columns brand, overall, source (required), people, planet,
    animals, url, rated_on (YYYY-MM-DD). Ratings are 0 (worst) to 5 (best). Valid rows are
    stored; bad rows are listed by line (exit code 2)."""
    from lookalike.catalog import Filters

    with open_catalog(catalog) as cat:
        parsed = cat.import_brand_ratings(file, replace=replace)
        rated = cat.store.count(Filters(min_brand_rating=0, include_sold=True))
        total = cat.store.count()
    if as_json:
        print(json.dumps({"stored": len(parsed.ratings), "errors": [str(e) for e in
                                                                     parsed.errors],
                          "items_rated": rated}))
    else:
        typer.echo(f"stored {len(parsed.ratings)} brand ratings; {rated} of {total} items now "
                   "have a rated brand")
    _report_errors(parsed.errors, file)
    if parsed.errors:
        raise typer.Exit(2)


@brands_app.command("list")
def brands_list_cmd(catalog: CatalogOpt = None, as_json: JsonOpt = False) -> None:
    """The brand ratings, with how many items each brand has."""
    with open_catalog(catalog) as cat:
        ratings = cat.store.brand_ratings()
    if as_json:
        print(json.dumps([{**r.model_dump(mode="json"), "items": n} for r, n in ratings]))
        return
    if not ratings:
        typer.echo("no brand ratings: add some with `lookalike brands import FILE`")
        return
    from rich.table import Table
    from rich.text import Text

    from lookalike.cli.output import console

    table = Table("brand", "overall", "people", "planet", "animals", "items", "source",
                  "rated on", title="brand ratings (0 worst – 5 best)")

    def num(value: float | None) -> Text:
        return Text("" if value is None else f"{value:.1f}", justify="right")

    for r, n in ratings:
        table.add_row(Text(r.brand), num(r.overall), num(r.people), num(r.planet),
                      num(r.animals), Text(str(n), justify="right"), Text(r.source),
                      Text("" if r.rated_on is None else r.rated_on.isoformat()))
    console.print(table)


@rates_app.command("import")
def rates_import_cmd(
    file: FileArg,
    base: Annotated[
        str | None,
        typer.Option("--base", metavar="CUR", show_default="$LOOKALIKE_BASE_CURRENCY, or EUR",
                     help="The currency the rates are against (units of each currency per "
                     "unit of it), when the file has no base column."),
    ] = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the exchange rates: columns currency, rate (units of it per unit of the base),
    date (YYYY-MM-DD; default today), base (optional). Prices convert to the base currency
    for price filters and sorts; a file with any bad row changes nothing."""
    if base is not None and not (len(base) == 3 and base.isalpha()):
        raise LookalikeError(f"--base {base!r}: expected an ISO 4217 code like EUR")
    with open_catalog(catalog) as cat:
        parsed = cat.import_rates(file, base=None if base is None else base.upper())
        unconverted = cat.store.unconverted()
        home = cat.store.base_currency
    if parsed.errors:
        _report_errors(parsed.errors, file)
        raise LookalikeError(f"{file}: {len(parsed.errors)} bad row"
                             f"{'s' if len(parsed.errors) > 1 else ''}; the rates are unchanged")
    if as_json:
        print(json.dumps({"stored": len(parsed.rates), "base": parsed.base,
                          "unconverted": dict(unconverted)}))
        return
    typer.echo(f"stored {len(parsed.rates)} rates against {parsed.base}; prices compare in "
               f"{home}")
    for currency, n in unconverted:
        typer.echo(f"note: {n} item{'s' if n != 1 else ''} priced in {currency} cannot be "
                   f"converted to {home} (no rate): price filters leave "
                   f"{'them' if n != 1 else 'it'} out", err=True)


@rates_app.command("list")
def rates_list_cmd(catalog: CatalogOpt = None, as_json: JsonOpt = False) -> None:
    """The exchange rates and the currency prices are converted to."""
    with open_catalog(catalog) as cat:
        base, rates = cat.store.rates()
        home = cat.store.base_currency
    if as_json:
        print(json.dumps({"base_currency": home, "rates_base": base,
                          "rates": [r.model_dump(mode="json") for r in rates]}))
        return
    typer.echo(f"prices compare in {home}")
    if not rates:
        typer.echo("no exchange rates: add them with `lookalike rates import FILE`")
        return
    typer.echo(f"rates: units of each currency per 1 {base}")
    for r in rates:
        typer.echo(f"  {r.currency}  {r.rate:>12.6g}  {r.date.isoformat()}")


class StateChoice(StrEnum):
    available = "available"
    reserved = "reserved"
    sold = "sold"


@app.command("item")
def item_cmd(
    item_id: Annotated[str, typer.Argument(metavar="ID", help="Id of a catalog item.")],
    state: Annotated[
        StateChoice | None,
        typer.Option("--state", metavar="STATE",
                     help="available, reserved or sold (sold items leave every search)."),
    ] = None,
    rating: Annotated[
        float | None,
        typer.Option(metavar="R", min=0.0, max=5.0, help="Shoppers' rating, 0 to 5."),
    ] = None,
    reviews: Annotated[
        int | None, typer.Option(metavar="N", min=0, help="Number of reviews.")
    ] = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one item, or change its listing: state, rating, number of reviews."""
    from lookalike.catalog import ItemUpdate

    change = {k: v for k, v in (("state", None if state is None else state.value),
                                ("rating", rating), ("reviews", reviews)) if v is not None}
    with open_catalog(catalog) as cat:
        item = cat.update_item(item_id, ItemUpdate(**change)) if change else cat.get(item_id)
    data = item.model_dump(mode="json", exclude={"rowid", "image_hash", "predicted"})
    if as_json:
        print(json.dumps(data))
        return
    for key, value in data.items():
        if value not in (None, [], {}, ""):
            typer.echo(f"{key}: {value}")
