"""Request and response bodies. Separate shapes for create, update and public output, as in
full-stack-fastapi-template: the stored `Item` (with its file path) never leaves the server."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lookalike.catalog import Filters, Item, Result
from lookalike.catalog.brands import BrandRating
from lookalike.catalog.schema import ItemFields, ItemState
from lookalike.catalog.schema import ItemUpdate as LibraryItemUpdate
from lookalike.catalog.sorting import Sort
from lookalike.recommend.words import TextSearch


class TagPublic(BaseModel):
    value: str
    confidence: float


class ItemPublic(BaseModel):
    """A catalog item as the API shows it: image by URL, predicted tags apart from given fields."""

    id: str
    title: str
    category: str | None
    department: str | None
    kids: bool | None
    price: float | None
    currency: str | None
    brand: str | None
    sizes: list[str]
    colour: str | None
    url: str | None
    sustainability: float | None = Field(description="The item's own rating, 0 to 5.")
    second_hand: bool | None
    source: str | None
    state: ItemState = Field(description="available, reserved or sold.")
    rating: float | None = Field(description="Shoppers' rating, 0 to 5.")
    reviews: int | None = Field(description="Number of shoppers' reviews.")
    base_price: float | None = Field(
        description="`price` converted to `base_currency` with the catalog's exchange rates "
        "(null: no price, or no rate for its currency)."
    )
    base_currency: str | None
    brand_rating: BrandRating | None = Field(
        description="The brand's sustainability ratings (0–5) and their source, where the "
        "catalog has them."
    )
    extra: dict[str, Any]
    predicted: dict[str, TagPublic] = Field(
        description="Attributes a tagger filled in (never overriding given ones), with confidence."
    )
    image_url: str
    duplicate_of: str | None = Field(
        None, description="The id of the item this one reposts (flagged at upload or ingest "
        "when the catalog's `duplicates` setting is `flag`)."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, item: Item) -> ItemPublic:
        return cls(
            **item.model_dump(
                exclude={"rowid", "image_path", "image_hash", "predicted"},
            ),
            predicted={k: TagPublic(value=t.value, confidence=t.confidence)
                       for k, t in item.predicted.items()},
            image_url=f"/items/{quote(item.id, safe='')}/image",
        )


class ItemCreate(ItemFields):
    """Metadata of an item to add (sent as the JSON `item` form field beside the image)."""

    id: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[\w.\-:]+$")


ItemUpdate = LibraryItemUpdate


class ItemPage(BaseModel):
    items: list[ItemPublic]
    total: int = Field(description="Items matching the filters, all pages together.")
    offset: int
    limit: int
    sort: Sort = "relevance"
    notes: list[str] = Field(default_factory=list, description=(
        "Plain sentences on what the filters could not do (filter values no item has, prices "
        "without an exchange rate)."))


SCORE = (
    "What the results are ranked by (never rising down a list in relevance order): the match, "
    "(1 − colour_weight)·cosine + colour_weight·colour overlap, less diversity × the cosine "
    "to the closest result ranked above (profile search: within the result's style prototype; "
    "the swipe feed: its taste score). A sorted list keeps each result's score."
)


class ResultPublic(BaseModel):
    item: ItemPublic
    score: float = Field(description=SCORE)
    similarity: float | None = Field(
        None, description="Plain cosine similarity to the query (null where there is none)."
    )

    @classmethod
    def of(cls, result: Result) -> ResultPublic:
        sim = None if result.similarity is None else round(float(result.similarity), 6)
        return cls(item=ItemPublic.of(result.item), score=round(float(result.score), 6),
                   similarity=sim)


class SearchResponse(BaseModel):
    results: list[ResultPublic]
    offset: int = Field(0, description="Rank of the first result (0 = the best).")
    next_offset: int | None = Field(
        None, description="The `offset` of the next page of this ranking; null when there is "
        "none (the last result, or the `bound`)."
    )
    bound: int | None = Field(
        None, description="How deep this query's pages reach (offset + k stays within it): the "
        "server's `max_results` in relevance order; its `sort_depth` when sorted or with "
        "diversity (a sorted list orders that many best look-alikes)."
    )
    sort: Sort = Field("relevance", description="The order of the results.")
    notes: list[str] = Field(default_factory=list, description=(
        "Plain sentences on what the filters could not do (filter values no item has, prices "
        "without an exchange rate)."))
    understood: Understood | None = Field(
        None, description="With `text`: what the words were understood as (else absent).")

    @classmethod
    def of(
        cls, results: list[Result], offset: int = 0, k: int | None = None,
        bound: int | None = None, sort: Sort = "relevance", notes: list[str] | None = None,
    ) -> SearchResponse:
        """A page of `k` asked at `offset`. `results` may hold one more than `k` (asked for
        by `lookalike.recommend.with_probe`): then there is a next page, and the extra one is
        left out; without it, a full page below `bound` may have a next one."""
        probed = k is not None and len(results) > k
        results = results[:k] if k is not None else results
        end = offset + len(results)
        more = probed or (k is not None and len(results) >= k and bound is None)
        return cls(results=[ResultPublic.of(r) for r in results], offset=offset,
                   next_offset=end if more else None, bound=bound, sort=sort,
                   notes=notes or [])


COLOUR_WEIGHT = (
    "Match colour, 0–1: how much the garment colours of the query count against shape and "
    "style (match = (1 − w)·cosine + w·colour overlap); 0 = ignore colour. Omitted: the "
    "server's default (shown as this field's default)."
)
DIVERSITY = (
    "0–1: each result is ranked by its match less diversity × its cosine to the closest "
    "result above it; 0 = closest first. Omitted: the server's default (shown as this field's "
    "default)."
)
OFFSET = (
    "Rank of the first result to return (paging: the `next_offset` of the previous page); "
    "offset + k may not pass the answer's `bound` (k is cut to fit)."
)
SORT = (
    "relevance (the default), price_asc, price_desc (in the base currency), sustainability "
    "(the item's own, highest first), brand_rating (its brand's overall, highest first), "
    "rating (shoppers', then reviews), newest. A sorted search orders the `sort_depth` best "
    "look-alikes; items without the value come last."
)


#: Most attribute directions one query may steer by.
MAX_STEER = 50

#: A steering strength: finite, in [-1, 1] as documented (NaN, inf, 1e308 are 422s).
Strength = Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]
DirectionName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class FiltersIn(Filters):
    """Filters as a request body sends them: every number finite and bounded."""

    price_min: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    price_max: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    min_sustainability: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    min_brand_rating: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    min_brand_people: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    min_brand_planet: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    min_brand_animals: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    min_rating: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)


class Steering(BaseModel):
    """How to bend a query: examples to move towards / away from, attribute directions,
    colour weight and diversity. All optional; colour weight and diversity default to the
    server's."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    positive: list[str] = Field(default_factory=list, max_length=50,
                                description="Item ids: more like these.")
    negative: list[str] = Field(default_factory=list, max_length=50,
                                description="Item ids: less like these.")
    steer: dict[DirectionName, Strength] = Field(
        default_factory=dict, max_length=MAX_STEER,
        description='Attribute directions and strengths in [-1, 1], '
        'e.g. {"colour:red": 0.6}. See GET /search/directions.'
    )
    colour_weight: float | None = Field(None, ge=0, le=1, description=COLOUR_WEIGHT)
    diversity: float | None = Field(None, ge=0, le=1, description=DIVERSITY)


class RecommendRequest(Steering):
    """"More like these, less like those" over catalog items, without a photo."""

    k: int = Field(12, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000, description=OFFSET)
    sort: Sort = Field("relevance", description=SORT)
    filters: FiltersIn = Field(default_factory=FiltersIn)


class Directions(BaseModel):
    directions: list[str] = Field(description='Names usable as `steer` keys, e.g. "colour:red".')


class Facet(BaseModel):
    value: str
    count: int


class BrandFacet(Facet):
    rating: BrandRating | None = Field(None, description="The brand's rating, if rated.")


class Facets(BaseModel):
    """Values present in the catalog, for filter menus (sold items counted too)."""

    category: list[Facet]
    colour: list[Facet]
    brand: list[BrandFacet]
    size: list[Facet]
    currency: list[Facet]
    base_currency: str = Field(description="The currency price filters and sorts compare in.")
    price_min: float | None = Field(description="Lowest price in the base currency.")
    price_max: float | None = Field(description="Highest price in the base currency.")


class BrandRatingPublic(BrandRating):
    items: int = Field(description="Items of this brand in the catalog.")


class RatePublic(BaseModel):
    currency: str
    rate: float
    date: dt.date


class Rates(BaseModel):
    """The catalog's exchange rates: units of each currency per unit of `rates_base`."""

    base_currency: str = Field(description="The currency prices are converted to.")
    rates_base: str | None = Field(description="The currency the rates are against.")
    rates: list[RatePublic]


class RowErrorPublic(BaseModel):
    row: int
    field: str
    message: str


class ImportReport(BaseModel):
    """What an import stored and which rows it refused (row: the file's line number)."""

    stored: int
    errors: list[RowErrorPublic]
    items_rated: int | None = Field(None, description="Items with a rated brand, after it.")


class CatalogInfo(BaseModel):
    items: int
    model: str | None
    dim: int
    index: str
    sold: int = Field(description="Items sold (left out of searches unless asked for).")
    brand_ratings: int
    base_currency: str
    rates: int
    rates_base: str | None


# -- users ------------------------------------------------------------------------------------


class UserPublic(BaseModel):
    """A user; a visitor without a session (nothing stored yet) has no id and no created_at."""

    id: int | None
    username: str | None
    is_guest: bool
    created_at: datetime | None


class Session(BaseModel):
    """A session token (also set as a cookie) and whose it is."""

    user: UserPublic
    token: str = Field(description="Send back as `Authorization: Bearer <token>` or the cookie.")


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=3, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: str = Field(min_length=8, max_length=200)


class SwipeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=200)
    liked: bool


class SwipePublic(BaseModel):
    item_id: str
    liked: bool
    at: datetime


class Feed(BaseModel):
    items: list[ResultPublic]


# -- words -------------------------------------------------------------------------------------


class WordMatch(BaseModel):
    phrase: str = Field(description="The words as typed (normalised).")
    field: str = Field(description="category, colour, brand, an attribute (usage...), "
                       "price_max, second_hand, size...")
    values: list[str]
    how: str = Field(description="exact, plural, synonym, fuzzy or phrase.")
    score: float = Field(description="1, or the difflib ratio of a fuzzy match.")
    negated: bool = Field(description="After not/no/without: steered away from, not filtered.")


class Understood(BaseModel):
    """What a search text was understood as (`lookalike.recommend.words`)."""

    filters: dict[str, Any] = Field(description="Filters applied (the words' merged with the "
                                    "request's own), as in `Filters`.")
    steer: dict[str, float] = Field(description="Steering directions applied, with strengths.")
    matches: list[WordMatch]
    ignored: list[str] = Field(description="Words that matched nothing in this catalog.")
    notes: list[str]


def understood(found: TextSearch) -> Understood:
    return Understood.model_validate(found.understood())


SearchResponse.model_rebuild()
