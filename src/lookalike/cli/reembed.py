"""`lookalike reembed --model NAME`: re-encode a catalog with another model, keeping every
account, swipe and like (see lookalike.catalog.reembed)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from lookalike.cli.app import app
from lookalike.cli.catalog import (
    CatalogOpt,
    EngineOpt,
    JsonOpt,
    RayAddressOpt,
    open_catalog,
    settings_from,
    with_engine,
)


@app.command("reembed")
def reembed_cmd(
    model: Annotated[
        str,
        typer.Option("--model", "-m", metavar="NAME",
                     help="The new encoder: a name (`lookalike` models) or an .onnx file."),
    ],
    catalog: CatalogOpt = None,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-encode every item's photo with another model and switch the catalog to it at once;
    accounts, swipes and likes stay. Resumes where a killed run stopped. Exit code 1 when some
    photos could not be encoded (nothing switched; fix or delete those items, run again)."""
    settings = with_engine(settings_from(catalog), engine, ray_address)  # checked first
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from lookalike.catalog.engines import engine_for
    from lookalike.catalog.reembed import ReembedProgress, reembed
    from lookalike.cli.output import console, err_console

    bar = Progress(TextColumn("[bold]reembed"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[rate]:.0f} img/s failed {task.fields[failed]}"),
                   console=err_console, disable=not err_console.is_terminal)
    task = bar.add_task("reembed", total=None, rate=0.0, failed=0)
    printed = [0]

    def progress(p: ReembedProgress) -> None:
        bar.update(task, completed=p.done, total=p.total, rate=p.rate, failed=p.failed)
        if not err_console.is_terminal and p.done - printed[0] >= 500:
            printed[0] = p.done
            err_console.print(f"reembed {p.done}/{p.total} ({p.rate:.0f} img/s)")

    with open_catalog(catalog) as cat, bar:
        report = reembed(cat, model, progress=progress, engine=engine_for(settings))
    if as_json:
        print(json.dumps(report.to_dict()))
    elif report.switched:
        console.print(
            f"{report.items} items now encoded with {report.model} ({report.dim}-d; was "
            f"{report.previous_model}, {report.previous_dim}-d): {report.encoded} encoded now, "
            f"{report.resumed} by an earlier run; {report.preferences} users' preferences "
            f"rebuilt from their swipes, in {report.seconds:.1f} s", markup=False,
        )
    else:
        console.print(f"not switched: {len(report.failed)} photos could not be encoded "
                      "(the rest is kept for the next run):", markup=False)
        for item_id, reason in report.failed[:10]:
            console.print(f"  {item_id}: {reason}", markup=False, highlight=False)
        if len(report.failed) > 10:
            console.print(f"  ... and {len(report.failed) - 10} more", markup=False)
    if not report.switched:
        raise typer.Exit(code=1)
