"""Vendor commands (`vendors add|list|revoke`) and `export` (a catalog's items as a metadata
file that `lookalike ingest` reads back).

Light at import (typer and the standard library only), as every command module.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lookalike.cli.app import LookalikeGroup, LookalikeTyper, app
from lookalike.cli.catalog import CatalogOpt, JsonOpt, settings_from

if TYPE_CHECKING:
    from lookalike.catalog.store import CatalogStore

vendors_app = LookalikeTyper(
    name="vendors", cls=LookalikeGroup, no_args_is_help=True, rich_markup_mode=None,
    help="Vendors: API keys of their own for catalog writes, each vendor changing only its "
    "own items.",
)
app.add_typer(vendors_app)

NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="1 to 40 lowercase letters, digits, - or _.")
]


def open_store(catalog: Path | None) -> tuple[CatalogStore, Path]:
    """The existing catalog's store (no model, no index loaded) and its folder."""
    from lookalike.catalog.catalog import DB_FILE
    from lookalike.catalog.store import CatalogStore
    from lookalike.errors import CatalogNotFoundError

    settings = settings_from(catalog)
    folder = Path(settings.catalog_dir)
    if not (folder / DB_FILE).is_file():
        raise CatalogNotFoundError(str(folder))
    return CatalogStore(folder / DB_FILE, settings.base_currency), folder


@vendors_app.command("add")
def vendors_add_cmd(name: NameArg, catalog: CatalogOpt = None, as_json: JsonOpt = False) -> None:
    """Add a vendor and print its API key, once: only a digest of it is kept. The vendor sends
    it in the X-API-Key header; its items get ids NAME:<its own id>."""
    from lookalike.users.vendors import Vendors

    store, _ = open_store(catalog)
    try:
        vendor, key = Vendors(store).add(name)
    finally:
        store.close()
    if as_json:
        print(json.dumps({"vendor": vendor.name, "key": key}))
    else:
        typer.echo(f"vendor {vendor.name} added; its API key (shown once, store it now):")
        typer.echo(key)


@vendors_app.command("list")
def vendors_list_cmd(catalog: CatalogOpt = None, as_json: JsonOpt = False) -> None:
    """The vendors, whether their key works, and how many items each owns."""
    from lookalike.users.vendors import Vendors

    store, _ = open_store(catalog)
    try:
        vendors = Vendors(store).list()
    finally:
        store.close()
    if as_json:
        print(json.dumps([{"vendor": v.name, "active": v.active, "items": n,
                           "created_at": v.created_at.isoformat(),
                           "revoked_at": None if v.revoked_at is None else
                           v.revoked_at.isoformat()} for v, n in vendors]))
        return
    if not vendors:
        typer.echo("no vendors: add one with `lookalike vendors add NAME`")
    for v, n in vendors:
        state = "active" if v.active else f"revoked {v.revoked_at:%Y-%m-%d %H:%M}"
        typer.echo(f"{v.name}\t{state}\t{n} items\tadded {v.created_at:%Y-%m-%d}")


@vendors_app.command("revoke")
def vendors_revoke_cmd(name: NameArg, catalog: CatalogOpt = None) -> None:
    """Stop a vendor's key at once (its items stay; the admin key can still change them)."""
    from lookalike.users.vendors import Vendors

    store, _ = open_store(catalog)
    try:
        vendor = Vendors(store).revoke(name)
    finally:
        store.close()
    typer.echo(f"vendor {vendor.name}: key revoked")


class ExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


@app.command("export")
def export_cmd(
    output: Annotated[
        Path, typer.Argument(metavar="FILE", dir_okay=False,
                             help="The metadata file to write (.csv or .jsonl).")
    ],
    fmt: Annotated[
        ExportFormat | None,
        typer.Option("--format", "-f", show_default="from FILE's suffix",
                     help="csv or jsonl."),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option("--images", metavar="DIR", file_okay=False,
                     help="Copy every photo into DIR and name it there: then "
                     "`lookalike ingest DIR --metadata FILE` rebuilds the catalog."),
    ] = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write every item of a catalog (sold ones too) as a metadata file that `lookalike
    ingest` reads back into an equal catalog: ids, fields, extra columns; photos named
    relative to an images root (DIR, or the folder the command prints)."""
    from lookalike.catalog.export import export_catalog

    store, folder = open_store(catalog)
    try:
        report = export_catalog(store, folder, output, None if fmt is None else fmt.value,
                                images)
    finally:
        store.close()
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        typer.echo(f"wrote {report.items} items to {report.path} ({report.format}); images "
                   f"root: {report.images_root}")
        typer.echo(f"rebuild with: lookalike ingest {report.images_root} --metadata "
                   f"{report.path} --catalog NEW_FOLDER")
    if report.images_missing:
        shown = ", ".join(report.images_missing[:10])
        more = ", ..." if len(report.images_missing) > 10 else ""
        typer.echo(f"{len(report.images_missing)} photos missing: {shown}{more}", err=True)
        raise typer.Exit(2)
