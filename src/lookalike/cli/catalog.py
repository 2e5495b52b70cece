"""Catalog commands: ingest, search, similar, info, demo."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from lookalike.catalog import Catalog, Filters, IngestProgress, IngestReport, Result
from lookalike.cli.app import app
from lookalike.config import Settings
from lookalike.demo import build_demo_catalog, demo_queries
from lookalike.errors import LookalikeError
from lookalike.images import read_image_stream

console = Console()
err_console = Console(stderr=True)

CatalogOpt = Annotated[
    Path | None, typer.Option("--catalog", "-c", help="Catalog folder [env LOOKALIKE_CATALOG_DIR]")
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Encoder name or .onnx path (new catalogs)")
]
FilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        "-f",
        help="field=value, repeatable: category=Dress,Skirt price_max=50 second_hand=true "
        "kids=false brand=X colour=red size=M min_sustainability=3 price_min=10",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def settings_from(catalog: Path | None, model: str | None = None) -> Settings:
    settings = Settings()
    if catalog is not None:
        settings = settings.model_copy(update={"catalog_dir": catalog})
    if model is not None:
        settings = settings.model_copy(update={"model": model})
    return settings


def fail(exc: Exception) -> typer.Exit:
    """`error: <message>` on stderr, exit code 2 (the message names the file, row or field)."""
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
    return typer.Exit(code=2)


def _progress_bar() -> tuple[Progress, list[TaskID]]:
    bar = Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[rate]:.0f} img/s"),
        TextColumn("added {task.fields[added]} skipped {task.fields[skipped]} "
                   "rejected {task.fields[rejected]}"),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )
    task = bar.add_task("ingest", total=None, rate=0.0, added=0, skipped=0, rejected=0)
    return bar, [task]


def _update(bar: Progress, task: TaskID) -> Callable[[IngestProgress], None]:
    def update(p: IngestProgress) -> None:
        bar.update(task, completed=p.done, total=p.total, rate=p.rate, added=p.added,
                   skipped=p.skipped, rejected=p.rejected)
        if not err_console.is_terminal and p.done % 500 < 32:
            err_console.print(f"ingest {p.done}/{p.total} ({p.rate:.0f} img/s)")

    return update


def _print_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    console.print(
        f"added [bold green]{report.added}[/], skipped {report.skipped} (already in the catalog), "
        f"rejected [bold red]{len(report.rejected)}[/] in {report.seconds:.1f} s "
        f"({report.images_per_second:.0f} images/s)"
    )
    if report.metadata_encoding not in (None, "UTF-8"):
        console.print(f"metadata read as {report.metadata_encoding} text")
    for r in report.rejected[:10]:
        console.print(escape(f"  row {r.row} {r.item_id} [{r.field}]: {r.reason}"),
                      highlight=False)
    if len(report.rejected) > 10:
        console.print(f"  ... and {len(report.rejected) - 10} more")
    if report.report_path:
        console.print(f"rejections written to {report.report_path}")


#: Result table columns: header, how rich lays it out, the cell of a (rank, result).
_COLUMNS: dict[str, tuple[dict[str, Any], Callable[[int, Result], str]]] = {
    "#": ({"justify": "right", "no_wrap": True}, lambda n, r: str(n)),
    "score": ({"justify": "right", "no_wrap": True}, lambda n, r: f"{r.score:.3f}"),
    "title": (
        {"no_wrap": True, "overflow": "ellipsis", "max_width": 28}, lambda n, r: r.item.title
    ),
    "category": ({"no_wrap": True}, lambda n, r: r.item.attribute("category") or ""),
    "colour": ({"no_wrap": True}, lambda n, r: r.item.attribute("colour") or ""),
    "price": (
        {"justify": "right", "no_wrap": True},
        lambda n, r: "" if r.item.price is None else f"{r.item.price:.2f} {r.item.currency or ''}",
    ),
    "brand": ({"no_wrap": True, "overflow": "ellipsis", "max_width": 16},
              lambda n, r: r.item.brand or ""),
    "2nd hand": (
        {"no_wrap": True},
        lambda n, r: "" if r.item.second_hand is None else ("yes" if r.item.second_hand else "no"),
    ),
    "id": ({"no_wrap": True, "overflow": "ellipsis", "max_width": 14}, lambda n, r: r.item.id),
}
#: What a narrow terminal leaves out first (rich would otherwise squeeze columns to nothing).
_DROP_FIRST = ("2nd hand", "#", "brand", "colour")


def results_table(results: list[Result], title: str, width: int) -> Table:
    """The result table, without the columns no result fills and, when `width` is too narrow
    for all, without the least needed ones (`_DROP_FIRST`)."""
    names = [
        name for name in _COLUMNS
        if name in ("#", "score") or any(_COLUMNS[name][1](n, r) for n, r in enumerate(results))
    ]
    droppable = [name for name in _DROP_FIRST if name in names]
    while True:
        table = Table(title=title, box=box.SIMPLE_HEAD)
        for name in names:
            table.add_column(name, **_COLUMNS[name][0])
        for n, r in enumerate(results, start=1):
            table.add_row(*(escape(_COLUMNS[name][1](n, r)) for name in names))
        unbounded = console.options.update_width(10 * width)  # what it needs, not what it has
        if not droppable or console.measure(table, options=unbounded).maximum <= width:
            return table
        names.remove(droppable.pop(0))


def print_results(results: list[Result], as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps([{"score": round(r.score, 4), **r.item.model_dump(mode="json")}
                          for r in results]))
        return
    console.print(results_table(results, title, console.width))


@app.command("ingest")
def ingest_cmd(
    images: Annotated[Path, typer.Argument(help="Folder of item images.")],
    metadata: Annotated[
        Path | None, typer.Option("--metadata", help="CSV or JSONL, one row per item.")
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option("--map", help="Rename a metadata column: label=category (repeatable)."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Where to write rejected rows [catalog/rejected.csv].")
    ] = None,
    catalog: CatalogOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add images and their metadata to the catalog (skips duplicates, resumes after a crash)."""
    settings = settings_from(catalog, model)
    columns = dict(c.split("=", 1) for c in (column or []) if "=" in c)
    bar, (task,) = _progress_bar()
    try:
        with Catalog.open(settings) as cat, bar:
            result = cat.ingest(
                images, metadata, columns=columns,
                report_path=report or Path(settings.catalog_dir) / "rejected.csv",
                progress=_update(bar, task),
            )
    except LookalikeError as exc:
        raise fail(exc) from None
    _print_report(result, as_json)


@app.command("search")
def search_cmd(
    image: Annotated[Path, typer.Argument(help="Photo to find look-alikes of ('-' = stdin).")],
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many results.")] = 10,
    filters: FilterOpt = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Items that look like a photo."""
    try:
        parsed = Filters.parse(filters or [])
        with Catalog.open(settings_from(catalog)) as cat:
            stdin = str(image) == "-"
            source = read_image_stream(sys.stdin.buffer, cat.limits) if stdin else image
            results = cat.search_image(source, k, parsed, name="<stdin>" if stdin else None)
    except LookalikeError as exc:
        raise fail(exc) from None
    print_results(results, as_json, f"look-alikes of {image}")


@app.command("similar")
def similar_cmd(
    item_id: Annotated[str, typer.Argument(help="Catalog item id.")],
    k: Annotated[int, typer.Option("-k", min=1, max=1000)] = 10,
    filters: FilterOpt = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """More like this: items that look like a catalog item (the item itself left out)."""
    try:
        parsed = Filters.parse(filters or [])
        with Catalog.open(settings_from(catalog)) as cat:
            results = cat.similar(item_id, k, parsed)
    except LookalikeError as exc:
        raise fail(exc) from None
    print_results(results, as_json, f"more like {item_id}")


@app.command("info")
def info_cmd(catalog: CatalogOpt = None, as_json: JsonOpt = False) -> None:
    """What the catalog holds: item count, model, index."""
    try:
        with Catalog.open(settings_from(catalog)) as cat:
            info = cat.info()
    except LookalikeError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            console.print(f"[bold]{key}[/]: {value}")


@app.command("demo")
def demo_cmd(
    catalog: Annotated[Path, typer.Option("--catalog", "-c")] = Path("demo-catalog"),
    serve: Annotated[bool, typer.Option(help="Serve the web page and API afterwards.")] = True,
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Build a catalog from the bundled sample, show look-alikes, then serve the web page."""
    settings = settings_from(catalog).model_copy(update={"port": port})
    bar, (task,) = _progress_bar()
    try:
        with bar:
            cat, report = build_demo_catalog(settings, _update(bar, task))
        _print_report(report, False)
        for item in demo_queries(cat):
            print_results(cat.similar(item.id, 5), False,
                          f"more like {item.id}: {item.title} ({item.category})")
        cat.close()
    except LookalikeError as exc:
        raise fail(exc) from None
    if serve:
        from lookalike.api.server import run_server

        run_server(settings)
