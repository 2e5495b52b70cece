"""Maintenance commands: check, repair, backup, restore (see lookalike.catalog.maintenance and
lookalike.catalog.backup)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lookalike.cli.app import app
from lookalike.cli.catalog import CatalogOpt, JsonOpt, settings_from

if TYPE_CHECKING:
    from lookalike.catalog.maintenance import CheckReport, RepairReport

SHOWN_PER_KIND = 10


def _print_check(report: CheckReport) -> None:
    from lookalike.cli.output import console, escape

    for kind, problems in report.by_kind().items():
        console.print(f"[bold]{kind}[/] ({len(problems)})", highlight=False)
        for problem in problems[:SHOWN_PER_KIND]:
            console.print(f"  {escape(problem.message)}", soft_wrap=True, highlight=False)
        if len(problems) > SHOWN_PER_KIND:
            console.print(f"  ... and {len(problems) - SHOWN_PER_KIND} more")
    verdict = "[bold green]ok[/]" if report.ok else "[bold red]damaged[/]"
    console.print(f"{escape(str(report.folder))}: {verdict}, {report.items} items, "
                  f"{report.vectors} usable vectors ({report.seconds:.1f} s)", soft_wrap=True,
                  highlight=False)


def _listed(ids: list[str]) -> str:
    more = len(ids) - SHOWN_PER_KIND
    return ", ".join(ids[:SHOWN_PER_KIND]) + (f" ... and {more} more" if more > 0 else "")


def _print_repair(report: RepairReport) -> None:
    from lookalike.cli.output import console, escape

    for table, (kept, lost) in report.salvaged.items():
        if lost:
            console.print(f"salvaged {kept} rows of {table}, {lost} lost")
    if report.damaged_copy:
        console.print(f"the damaged database is kept as {escape(str(report.damaged_copy))}",
                      soft_wrap=True)
    for line in report.meta_fixed:
        console.print(f"fixed {escape(line)}")
    for label, ids in (("re-embedded", report.reembedded), ("dropped", report.dropped),
                       ("reset fields", report.fields_reset)):
        if ids:
            console.print(f"{label} {len(ids)}: {escape(_listed(ids))}", highlight=False)
    if report.leftovers_removed:
        console.print(f"removed {len(report.leftovers_removed)} leftover files")
    verb = "rebuilt" if report.index_rebuilt else "checked"
    console.print(f"search index {verb} in {report.index_seconds:.1f} s")
    if report.remaining is not None:
        _print_check(report.remaining)


@app.command("check")
def check_cmd(
    catalog: CatalogOpt = None,
    image_hashes: Annotated[
        bool, typer.Option("--image-hashes", help="Also compare every image's bytes.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the catalog: database integrity, vectors, index files, images. Exit code 1 when
    something is wrong (`lookalike repair` fixes what it can)."""
    from lookalike.catalog.maintenance import check

    report = check(settings_from(catalog), image_hashes=image_hashes)
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        _print_check(report)
    if not report.ok:
        raise typer.Exit(code=1)


@app.command("repair")
def repair_cmd(
    catalog: CatalogOpt = None,
    drop: Annotated[
        bool, typer.Option("--drop", help="Drop items with a damaged vector; do not re-embed.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Repair the catalog: salvage a damaged database, re-embed (or drop) damaged rows, rebuild
    the index. Stop servers and ingests on the catalog first."""
    from lookalike.catalog.maintenance import repair

    report = repair(settings_from(catalog), reembed=not drop)
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        _print_repair(report)
    if report.remaining is not None and not report.remaining.ok:
        raise typer.Exit(code=1)


@app.command("backup")
def backup_cmd(
    dest: Annotated[Path, typer.Argument(help="New folder to write the backup into.")],
    catalog: CatalogOpt = None,
    images: Annotated[
        bool, typer.Option("--images", help="Copy every item's image file too (to restore "
                           "on another machine).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Back up the catalog (items, vectors, users, swipes, index; optionally images). Safe while
    a server or an ingest writes to it."""
    from lookalike.catalog.backup import backup

    report = backup(settings_from(catalog), dest, images=images)
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    from lookalike.cli.output import console, escape

    console.print(
        f"backed up {report.items} items, {report.users} users, {report.swipes} swipes"
        f"{', the search index' if report.index else ''}"
        f"{f', {report.images} images' if images else ''} into {escape(str(report.dest))} "
        f"({report.bytes / 1e6:.1f} MB, {report.seconds:.1f} s)", soft_wrap=True, highlight=False)
    if report.images_missing:
        console.print(f"[bold red]{len(report.images_missing)} image files were missing[/]: "
                      f"{escape(_listed(report.images_missing))}", highlight=False)


@app.command("restore")
def restore_cmd(
    source: Annotated[Path, typer.Argument(help="A folder made by `lookalike backup`.")],
    catalog: CatalogOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the catalog in the target folder (it is "
                           "moved aside into replaced-<time>/, not deleted).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup into the catalog folder (a new one, unless --force). Every file is
    checked against the backup's checksums first. No server may run on the target."""
    from lookalike.catalog.backup import restore

    report = restore(source, settings_from(catalog), force=force)
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    from lookalike.cli.output import console, escape

    if report.replaced:
        console.print(f"the catalog that was there is kept in {escape(str(report.replaced))}",
                      soft_wrap=True)
    console.print(
        f"restored {report.items} items, {report.users} users, {report.swipes} swipes"
        f"{f', {report.images} images' if report.images else ''} into {escape(str(report.folder))} "
        f"({report.copy_seconds:.1f} s); ready to search in {report.open_seconds:.1f} s "
        f"({'index as backed up' if report.index_reused else 'index built'})",
        soft_wrap=True, highlight=False)
