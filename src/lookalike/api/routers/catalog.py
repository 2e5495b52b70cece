"""The catalog as a whole: size, model, and the values present (for filter menus)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from lookalike.api.deps import CatalogDep, FacetsDep, reject_unknown_query
from lookalike.api.schemas import CatalogInfo, Facets

router = APIRouter(
    prefix="/catalog", tags=["catalog"],
    dependencies=[Depends(reject_unknown_query)],
)


@router.get("", response_model=CatalogInfo, summary="Size, encoder and index of the catalog")
def info(catalog: CatalogDep) -> CatalogInfo:
    return CatalogInfo.model_validate(catalog.info())


@router.get("/facets", response_model=Facets, summary="Categories, colours, brands, prices")
def catalog_facets(facets: FacetsDep) -> Facets:
    return facets
