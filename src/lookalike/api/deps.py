"""Shared dependencies: settings, the catalog, users and feed, the rate limits, the current
session (read without creating anything; a guest is made on the first write), the admin key,
filters from a query string or form, and bounded upload reading."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Form, Header, HTTPException, Query, Request, UploadFile
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import ValidationError

from lookalike.api.cpu import CpuRunner
from lookalike.api.facets import FacetCache
from lookalike.api.headers import forget_session, remember_session
from lookalike.api.limits import too_large_message
from lookalike.api.ratelimit import Guards, client_key
from lookalike.api.schemas import COLOUR_WEIGHT, DIVERSITY, SORT, Facets, Steering
from lookalike.catalog import Catalog, Filters
from lookalike.catalog.sorting import Sort
from lookalike.config import Settings
from lookalike.errors import FilterError
from lookalike.passwords import Hasher
from lookalike.recommend import Feed
from lookalike.users import ANONYMOUS, User, Users
from lookalike.validation import plain_errors

#: Largest number a query string or form may carry where the API documents no smaller bound
#: (prices): finite, and far below where float arithmetic or SQLite integers overflow.
MAX_NUMBER = 1e9


def app_state(name: str) -> Callable[[Request], Awaitable[object]]:
    """A dependency giving the application's `state.<name>` (set by `create_app`): the type is
    the one its `Annotated` alias below declares."""

    async def get(request: Request) -> object:
        return getattr(request.app.state, name)

    get.__name__ = f"get_{name}"
    return get


SettingsDep = Annotated[Settings, Depends(app_state("settings"))]
CatalogDep = Annotated[Catalog, Depends(app_state("catalog"))]
UsersDep = Annotated[Users, Depends(app_state("users"))]
FeedDep = Annotated[Feed, Depends(app_state("feed"))]
GuardsDep = Annotated[Guards, Depends(app_state("guards"))]


def get_facets(request: Request, catalog: CatalogDep) -> Facets:
    """The catalog's facets for filter menus (cached: see `FacetCache`)."""
    cache: FacetCache = request.app.state.facets
    return cache.get(catalog)


FacetsDep = Annotated[Facets, Depends(get_facets)]


# -- CPU-bound work ---------------------------------------------------------------------------


CpuDep = Annotated[CpuRunner, Depends(app_state("cpu"))]


# -- admin key ---------------------------------------------------------------------------------


class AdminKey:
    """The check of an admin key against its argon2 hash. The key that verified is remembered
    as an HMAC under a random per-process secret, so the right key costs argon2 once per
    process, not on every catalog write; only wrong keys (rate-limited) pay for argon2."""

    def __init__(self, key_hash: str | None, hasher: Hasher | None = None) -> None:
        self.key_hash = key_hash
        self.hasher = hasher or Hasher()
        self._secret = secrets.token_bytes(32)
        self._good: bytes | None = None

    def _digest(self, key: str) -> bytes:
        return hmac.new(self._secret, key.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def known(self, key: str) -> bool:
        """The key already verified in this process (constant time, no argon2)."""
        good = self._good
        return good is not None and hmac.compare_digest(self._digest(key), good)

    def verify(self, key: str) -> bool:
        """argon2: slow and memory-hungry on purpose; run it through the hashing gate."""
        if not self.key_hash or not self.hasher.verify(self.key_hash, key):
            return False
        self._good = self._digest(key)
        return True


async def require_admin(
    request: Request,
    settings: SettingsDep,
    guards: GuardsDep,
    x_api_key: Annotated[
        str | None, Header(description="Admin API key for catalog writes.")
    ] = None,
) -> None:
    """Catalog writes need the admin key whose argon2 hash is `settings.admin_key_hash`. Wrong
    keys are rate-limited per client (429 with Retry-After, before any hashing) and checked
    through the bounded hashing gate."""
    if not settings.admin_key_hash:
        raise HTTPException(403, "catalog writes are disabled: no admin key is configured "
                                 "(set LOOKALIKE_ADMIN_KEY_HASH)")
    if not x_api_key:
        raise HTTPException(401, "catalog writes need the admin key in the X-API-Key header")
    admin: AdminKey = request.app.state.admin_key
    if admin.known(x_api_key):
        return
    client = client_key(request)
    guards.auth_failures.take(client)
    if not await guards.hashing.run(admin.verify, x_api_key):
        raise HTTPException(403, "wrong admin key")
    guards.auth_failures.refund(client)  # only failures count


AdminDep = Annotated[None, Depends(require_admin)]


def hash_admin_key(key: str) -> str:
    """The value to put in LOOKALIKE_ADMIN_KEY_HASH for `key`."""
    return Hasher().hash(key)


# -- sessions ----------------------------------------------------------------------------------


def bearer_token(request: Request) -> str | None:
    """A token sent by an API client: `Authorization: Bearer <t>` or `X-Session-Token: <t>`."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-session-token") or None


def session_token(request: Request, settings: SettingsDep) -> str | None:
    return bearer_token(request) or request.cookies.get(settings.session_cookie) or None


def _session_user(request: Request, settings: Settings, users: Users) -> User | None:
    """The user of the caller's live session, or None. A token an API client sends explicitly
    that is unknown or expired is an error (401); a stale cookie is deleted. Using a session
    now and then renews its lifetime, and then its cookie."""
    explicit = bearer_token(request)
    token = explicit or request.cookies.get(settings.session_cookie)
    if not token:
        return None
    resumed = users.resume(token)
    if resumed is None:
        if explicit:
            raise HTTPException(401, "unknown or expired session token",
                                headers={"WWW-Authenticate": "Bearer"})
        forget_session(request)
        return None
    if resumed.refreshed and not explicit:
        remember_session(request, token, resumed.ttl, header=False)
    return resumed.user


def visitor(request: Request, settings: SettingsDep, users: UsersDep) -> User:
    """For reads: the caller's user, or `ANONYMOUS` (no row) without a session. Never creates
    anything."""
    return _session_user(request, settings, users) or ANONYMOUS


def start_guest(request: Request, guards: Guards, users: Users) -> tuple[User, str]:
    """A new guest for this client (rate-limited per client) and its token, which also goes
    out as the cookie and the X-Session-Token header of the response."""
    guards.new_guests.take(client_key(request))
    user, token = users.create_guest()
    remember_session(request, token, users.lifetimes.guest_ttl, header=True)
    return user, token


def current_user(
    request: Request, settings: SettingsDep, users: UsersDep, guards: GuardsDep
) -> User:
    """For writes: the caller's user; a visitor without a session becomes a guest here, on
    its first write (never on a read)."""
    return _session_user(request, settings, users) or start_guest(request, guards, users)[0]


VisitorDep = Annotated[User, Depends(visitor)]
UserDep = Annotated[User, Depends(current_user)]


# -- filters -----------------------------------------------------------------------------------


def _split(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated values alike: `?category=Dress,Skirt&category=Hat`."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def make_filters(**values: object) -> Filters:
    """Filters from request parameters (list parameters split as `_split` does)."""
    data = {k: (_split(v) if isinstance(v, list) else v)
            for k, v in values.items() if v is not None}
    try:
        return Filters.model_validate(data)
    except ValidationError as exc:
        raise FilterError(f"bad filter: {plain_errors(exc.errors())}") from None


_ANY = "Any of these (repeat or comma-separate)."
_RATING = "At least this, 0 to 5."
_PRICE = "In the base currency."


async def query_filters(
    category: Annotated[list[str] | None, Query(description=_ANY)] = None,
    brand: Annotated[list[str] | None, Query(description=_ANY + " Compared by normalised "
                                             "name: 'kettle and loom' is 'Kettle & Loom'.")] = None,
    colour: Annotated[list[str] | None, Query(description="Given or predicted colour.")] = None,
    size: Annotated[list[str] | None, Query(description=_ANY)] = None,
    price_min: Annotated[float | None, Query(ge=0, le=MAX_NUMBER, allow_inf_nan=False,
                                             description=_PRICE)] = None,
    price_max: Annotated[float | None, Query(ge=0, le=MAX_NUMBER, allow_inf_nan=False,
                                             description=_PRICE)] = None,
    kids: bool | None = None,
    second_hand: bool | None = None,
    min_sustainability: Annotated[float | None, Query(ge=0, le=5, allow_inf_nan=False,
                                                      description=_RATING)] = None,
    currency: Annotated[list[str] | None, Query(description="ISO codes. " + _ANY)] = None,
    min_brand_rating: Annotated[float | None, Query(ge=0, le=5, allow_inf_nan=False,
                                                    description=_RATING)] = None,
    min_brand_people: Annotated[float | None, Query(ge=0, le=5, allow_inf_nan=False,
                                                    description=_RATING)] = None,
    min_brand_planet: Annotated[float | None, Query(ge=0, le=5, allow_inf_nan=False,
                                                    description=_RATING)] = None,
    min_brand_animals: Annotated[float | None, Query(ge=0, le=5, allow_inf_nan=False,
                                                     description=_RATING)] = None,
    min_rating: Annotated[float | None, Query(ge=0, le=5, allow_inf_nan=False,
                                              description=_RATING)] = None,
    state: Annotated[list[str] | None, Query(description="available, reserved, sold. " + _ANY)]
    = None,
    include_sold: Annotated[bool | None, Query(description="Keep sold items.")] = None,
) -> Filters:
    return make_filters(**locals())  # the parameters, each named as its `Filters` field


async def form_filters(
    category: Annotated[list[str] | None, Form()] = None,
    brand: Annotated[list[str] | None, Form()] = None,
    colour: Annotated[list[str] | None, Form()] = None,
    size: Annotated[list[str] | None, Form()] = None,
    price_min: Annotated[float | None, Form(ge=0, le=MAX_NUMBER, allow_inf_nan=False)] = None,
    price_max: Annotated[float | None, Form(ge=0, le=MAX_NUMBER, allow_inf_nan=False)] = None,
    kids: Annotated[bool | None, Form()] = None,
    second_hand: Annotated[bool | None, Form()] = None,
    min_sustainability: Annotated[float | None, Form(ge=0, le=5, allow_inf_nan=False)] = None,
    currency: Annotated[list[str] | None, Form()] = None,
    min_brand_rating: Annotated[float | None, Form(ge=0, le=5, allow_inf_nan=False)] = None,
    min_brand_people: Annotated[float | None, Form(ge=0, le=5, allow_inf_nan=False)] = None,
    min_brand_planet: Annotated[float | None, Form(ge=0, le=5, allow_inf_nan=False)] = None,
    min_brand_animals: Annotated[float | None, Form(ge=0, le=5, allow_inf_nan=False)] = None,
    min_rating: Annotated[float | None, Form(ge=0, le=5, allow_inf_nan=False)] = None,
    state: Annotated[list[str] | None, Form()] = None,
    include_sold: Annotated[bool | None, Form()] = None,
) -> Filters:
    return make_filters(**locals())  # the parameters, each named as its `Filters` field


QueryFiltersDep = Annotated[Filters, Depends(query_filters)]
FormFiltersDep = Annotated[Filters, Depends(form_filters)]


# -- uploads -----------------------------------------------------------------------------------

_CHUNK = 256 * 1024


async def read_upload(upload: UploadFile, limit: int, total: int | None = None) -> bytes:
    """The file's bytes, refusing (413) as soon as more than `limit` bytes have been read.
    `total`: the request's whole upload limit when `limit` is what is left of it."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, too_large_message(limit if total is None else total))
        chunks.append(chunk)
    if size == 0:
        raise HTTPException(422, f"the uploaded file {upload.filename or ''!s} is empty")
    return b"".join(chunks)


# -- steering ----------------------------------------------------------------------------------


def _steer_pairs(values: list[str]) -> dict[str, float]:
    """`colour:red=0.6` form values → {"colour:red": 0.6}."""
    out: dict[str, float] = {}
    for value in values:
        name, sep, strength = value.rpartition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(strength)
        except ValueError:
            raise HTTPException(
                422, f"steer {value!r}: expected direction=strength, e.g. colour:red=0.6"
            ) from None
    return out


#: A query's "match colour" weight and diversity, 0 to 1 (omitted: the server's defaults), as
#: query-string parameters and as form fields.
QueryColourWeight = Annotated[
    float | None, Query(ge=0, le=1, allow_inf_nan=False, description=COLOUR_WEIGHT)
]
QueryDiversity = Annotated[
    float | None, Query(ge=0, le=1, allow_inf_nan=False, description=DIVERSITY)
]
FormColourWeight = Annotated[
    float | None, Form(ge=0, le=1, allow_inf_nan=False, description=COLOUR_WEIGHT)
]
FormDiversity = Annotated[
    float | None, Form(ge=0, le=1, allow_inf_nan=False, description=DIVERSITY)
]


async def form_steering(
    positive: Annotated[list[str] | None, Form(description="Item ids: more like these.")] = None,
    negative: Annotated[list[str] | None, Form(description="Item ids: less like these.")] = None,
    steer: Annotated[
        list[str] | None, Form(description="direction=strength in [-1, 1], e.g. colour:red=0.6")
    ] = None,
    colour_weight: FormColourWeight = None,
    diversity: FormDiversity = None,
) -> Steering:
    try:
        return Steering(
            positive=_split(positive), negative=_split(negative),
            steer=_steer_pairs(_split(steer)), colour_weight=colour_weight, diversity=diversity,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise HTTPException(422, f"bad steering: {where}: {problem['msg']}") from None


FormSteeringDep = Annotated[Steering, Depends(form_steering)]


# -- pages of a ranking ------------------------------------------------------------------------


def page_size(offset: int, k: int, bound: int) -> int:
    """`k` cut so that offset + k stays within the `bound` of a query's pages
    (`lookalike.recommend.ranking_bound`); an offset at or past it is a 422 naming it."""
    if offset >= bound:
        raise HTTPException(
            422, f"offset {offset} is past the {bound} results this query ranks (the server's "
            "max_results, or sort_depth for a sorted or diversified query)"
        )
    return min(k, bound - offset)


SortDep = Annotated[Sort, Query(description=SORT)]
FormSort = Annotated[Sort, Form(description=SORT)]


# -- strict parameters -------------------------------------------------------------------------
# A misspelt filter (`?colr=red`) must not silently return unfiltered results: names a route
# does not declare are a 422, for query strings and multipart forms alike.


def _declared(dependant: Dependant, kind: str) -> set[str]:
    names = {str(f.alias) for f in getattr(dependant, kind)}
    for sub in dependant.dependencies:
        names |= _declared(sub, kind)
    return names


def _unknown(request: Request, given: set[str], kind: str) -> None:
    route = request.scope.get("route")
    if not given or not isinstance(route, APIRoute):
        return
    known = _declared(route.dependant, kind)
    unknown = sorted(given - known)
    if unknown:
        where = "query parameter" if kind == "query_params" else "form field"
        raise FilterError(
            f"unknown {where}{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )


async def reject_unknown_query(request: Request) -> None:
    _unknown(request, set(request.query_params.keys()), "query_params")


async def reject_unknown_form(request: Request) -> None:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        _unknown(request, set(form.keys()), "body_params")
