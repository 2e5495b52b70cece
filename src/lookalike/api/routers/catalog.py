"""The catalog as a whole: size, model, the values present (for filter menus), its brand
sustainability ratings and exchange rates (imports need the admin key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from lookalike.api.deps import (
    AdminDep,
    CatalogDep,
    FacetsDep,
    SettingsDep,
    read_upload,
    reject_unknown_form,
    reject_unknown_query,
)
from lookalike.api.facets import FacetCache
from lookalike.api.schemas import (
    BrandRatingPublic,
    CatalogInfo,
    Facets,
    ImportReport,
    RatePublic,
    Rates,
    RowErrorPublic,
)
from lookalike.catalog import Filters
from lookalike.catalog.tablefile import RowError

router = APIRouter(
    prefix="/catalog", tags=["catalog"],
    dependencies=[Depends(reject_unknown_query), Depends(reject_unknown_form)],
)

_FILE = "CSV or JSONL (named .csv or .jsonl)."


def _errors(errors: list[RowError]) -> list[RowErrorPublic]:
    return [RowErrorPublic(row=e.row, field=e.field, message=str(e)) for e in errors]


def _facets_changed(request: Request) -> None:
    """Brand ratings and prices show in the filter menus at once, not after the cache's age."""
    cache: FacetCache = request.app.state.facets
    cache.forget()


@router.get("", response_model=CatalogInfo, summary="Size, encoder and index of the catalog")
def info(catalog: CatalogDep) -> CatalogInfo:
    return CatalogInfo.model_validate(catalog.info())


@router.get("/facets", response_model=Facets,
            summary="Categories, colours, brands (with ratings), sizes, currencies, prices")
def catalog_facets(facets: FacetsDep) -> Facets:
    return facets


@router.get("/brands", response_model=list[BrandRatingPublic],
            summary="Brand sustainability ratings (0–5) and their sources")
def brand_ratings(catalog: CatalogDep) -> list[BrandRatingPublic]:
    return [BrandRatingPublic(**r.model_dump(), items=n) for r, n in catalog.store.brand_ratings()]


@router.post(
    "/brands", response_model=ImportReport, summary="Import brand ratings (admin)",
    description="Multipart `file`: one row per brand with `brand`, `overall`, `source` and "
    "optionally `people`, `planet`, `animals` (all 0–5), `url`, `rated_on` (YYYY-MM-DD). "
    "Brands match items by normalised name. Valid rows are stored, bad ones listed; "
    "`replace=true` drops the brands the file does not rate.",
)
async def import_brand_ratings(
    _: AdminDep,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=_FILE)],
    replace: Annotated[bool, Form()] = False,
) -> ImportReport:
    data = await read_upload(file, settings.upload_max_bytes)
    parsed = catalog.import_brand_ratings(data, file.filename or "upload", replace=replace)
    rated = catalog.store.count(Filters(min_brand_rating=0, include_sold=True))
    _facets_changed(request)
    return ImportReport(stored=len(parsed.ratings), errors=_errors(parsed.errors),
                        items_rated=rated)


@router.get("/rates", response_model=Rates, summary="Exchange rates")
def rates(catalog: CatalogDep) -> Rates:
    base, table = catalog.store.rates()
    return Rates(base_currency=catalog.store.base_currency, rates_base=base,
                 rates=[RatePublic(currency=r.currency, rate=r.rate, date=r.date) for r in table])


@router.post(
    "/rates", response_model=ImportReport, summary="Replace the exchange rates (admin)",
    description="Multipart `file`: one row per currency with `currency`, `rate` (units of it "
    "per unit of the base) and optionally `date` (YYYY-MM-DD) and `base`; `base` (form) is the "
    "currency the rates are against when the file has no `base` column (default: the server's "
    "base currency). A file with any bad row changes nothing (the errors are listed).",
)
async def import_rates(
    _: AdminDep,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=_FILE)],
    base: Annotated[str | None, Form(pattern=r"^[A-Za-z]{3}$")] = None,
) -> ImportReport:
    data = await read_upload(file, settings.upload_max_bytes)
    parsed = catalog.import_rates(data, file.filename or "upload",
                                  base=None if base is None else base.upper())
    _facets_changed(request)
    return ImportReport(stored=0 if parsed.errors else len(parsed.rates),
                        errors=_errors(parsed.errors))
