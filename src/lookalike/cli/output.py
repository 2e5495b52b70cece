"""What the commands print: result tables, ingest reports and progress (rich).

Imported by the commands when they run, never at start-up (rich costs a tenth of a second).
Text from users and files (titles, ids, paths, reasons) is never read as rich markup: a
`[field]` or a title with brackets prints as written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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
from rich.text import Text

if TYPE_CHECKING:
    from lookalike.catalog import IngestProgress, IngestReport, Result

console = Console()
err_console = Console(stderr=True)

__all__ = [
    "console",
    "err_console",
    "escape",
    "print_report",
    "print_results",
    "progress_bar",
    "rating_sources",
    "results_table",
    "update_progress",
]


def progress_bar() -> tuple[Progress, TaskID]:
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
    return bar, task


def update_progress(bar: Progress, task: TaskID) -> Callable[[IngestProgress], None]:
    def update(p: IngestProgress) -> None:
        bar.update(task, completed=p.done, total=p.total, rate=p.rate, added=p.added,
                   skipped=p.skipped, rejected=p.rejected)
        if not err_console.is_terminal and p.done % 500 < 32:
            err_console.print(f"ingest {p.done}/{p.total} ({p.rate:.0f} img/s)")

    return update


def print_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    console.print(
        f"added [bold green]{report.added}[/], skipped {report.skipped} (already in the catalog), "
        f"rejected [bold red]{len(report.rejected)}[/] in {report.seconds:.1f} s "
        f"({report.images_per_second:.0f} images/s)"
    )
    if report.metadata_encoding not in (None, "UTF-8"):
        console.print(f"metadata read as {report.metadata_encoding} text", markup=False)
    for r in report.rejected[:10]:
        console.print(f"  row {r.row} {r.item_id} [{r.field}]: {r.reason}", markup=False,
                      highlight=False)
    if len(report.rejected) > 10:
        console.print(f"  ... and {len(report.rejected) - 10} more")
    if report.flagged:
        console.print(f"flagged {len(report.flagged)} repost(s), added with duplicate_of:")
        for r in report.flagged[:10]:
            console.print(f"  row {r.row} {r.item_id}: {r.reason}", markup=False,
                          highlight=False)
    if report.report_path:
        console.print(f"rejections written to {report.report_path}", markup=False)


def _price(r: Result) -> str:
    """The price as listed; in another currency than the base, its conversion beside it."""
    item = r.item
    if item.price is None:
        return ""
    text = f"{item.price:.2f} {item.currency or item.base_currency or ''}".strip()
    if item.currency and item.base_currency and item.currency != item.base_currency and (
        item.base_price is not None
    ):
        text += f" ≈ {item.base_price:.2f} {item.base_currency}"
    return text


def _brand_rating(r: Result) -> str:
    rating = r.item.brand_rating
    return "" if rating is None else f"{rating.overall:.1f}/5"


def _rating(r: Result) -> str:
    if r.item.rating is None:
        return ""
    return f"{r.item.rating:.1f}" + ("" if r.item.reviews is None else f" ({r.item.reviews})")


def _state(r: Result) -> str:
    return "" if r.item.state == "available" else r.item.state


def _second_hand(r: Result) -> str:
    return "" if r.item.second_hand is None else ("yes" if r.item.second_hand else "no")


#: Result table columns: header, how rich lays it out, the cell of a (rank, result).
_COLUMNS: dict[str, tuple[dict[str, Any], Callable[[int, Result], str]]] = {
    "#": ({"justify": "right", "no_wrap": True}, lambda n, r: str(n)),
    "score": ({"justify": "right", "no_wrap": True}, lambda n, r: f"{r.score:.3f}"),
    "title": (
        {"no_wrap": True, "overflow": "ellipsis", "max_width": 28}, lambda n, r: r.item.title
    ),
    "category": ({"no_wrap": True}, lambda n, r: r.item.attribute("category") or ""),
    "colour": ({"no_wrap": True}, lambda n, r: r.item.attribute("colour") or ""),
    "price": ({"justify": "right", "no_wrap": True}, lambda n, r: _price(r)),
    "brand": ({"no_wrap": True, "overflow": "ellipsis", "max_width": 16},
              lambda n, r: r.item.brand or ""),
    "brand rating": ({"justify": "right", "no_wrap": True}, lambda n, r: _brand_rating(r)),
    "rating": ({"justify": "right", "no_wrap": True}, lambda n, r: _rating(r)),
    "state": ({"no_wrap": True}, lambda n, r: _state(r)),
    "2nd hand": ({"no_wrap": True}, lambda n, r: _second_hand(r)),
    "id": ({"no_wrap": True, "overflow": "ellipsis", "max_width": 14}, lambda n, r: r.item.id),
}
#: What a narrow terminal leaves out first (rich would otherwise squeeze columns to nothing).
_DROP_FIRST = ("2nd hand", "rating", "#", "brand rating", "brand", "colour")


def rating_sources(results: list[Result]) -> str:
    """"brand ratings: <source>, ..." of the results' brand ratings ("" when none has one)."""
    sources = sorted({r.item.brand_rating.source for r in results if r.item.brand_rating})
    return f"brand ratings (0–5): {', '.join(sources)}" if sources else ""


def results_table(
    results: list[Result], title: str, width: int, score: str = "score",
    caption: str | None = None, first_rank: int = 1,
) -> Table:
    """The result table, without the columns no result fills and, when `width` is too narrow
    for all, without the least needed ones (`_DROP_FIRST`). `score` heads the score column;
    ranks count from `first_rank` (a later page); the caption names the brand ratings'
    sources below `caption`."""
    names = [
        name for name in _COLUMNS
        if name in ("#", "score") or any(_COLUMNS[name][1](n, r) for n, r in enumerate(results))
    ]
    caption = "\n".join(c for c in (caption, rating_sources(results)) if c) or None
    droppable = [name for name in _DROP_FIRST if name in names]
    while True:
        table = Table(title=Text(title), caption=None if caption is None else Text(caption),
                      box=box.SIMPLE_HEAD)
        for name in names:
            table.add_column(score if name == "score" else name, **_COLUMNS[name][0])
        for n, r in enumerate(results, start=first_rank):
            table.add_row(*(Text(_COLUMNS[name][1](n, r)) for name in names))
        unbounded = console.options.update_width(10 * width)  # what it needs, not what it has
        if not droppable or console.measure(table, options=unbounded).maximum <= width:
            return table
        names.remove(droppable.pop(0))


def print_results(
    results: list[Result], as_json: bool, title: str, score: str = "score",
    caption: str | None = None, first_rank: int = 1,
) -> None:
    """The results as a table (`score` heads the score column, `caption` below it, ranks from
    `first_rank`), or as JSON (one object per result, with its "score"; the caption, which
    says how far the pages reach, on stderr)."""
    if as_json:
        print(json.dumps([{"score": round(r.score, 4), **r.item.model_dump(mode="json")}
                          for r in results]))
        if caption:
            err_console.print(caption, markup=False, highlight=False)
        return
    console.print(results_table(results, title, console.width, score, caption, first_rank))
