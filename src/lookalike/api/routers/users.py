"""Shoppers: a guest is made on a visitor's first write (a swipe), accounts are optional, and
each sees only their own swipes, feed and likes under /me. Reads never create anything: a
visitor without a session reads as an anonymous guest with no swipes. Logins and account
creation go through the rate limits and the bounded hashing gate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status

from lookalike.api.deps import (
    FeedDep,
    GuardsDep,
    QueryFiltersDep,
    SettingsDep,
    UserDep,
    UsersDep,
    VisitorDep,
    reject_unknown_query,
    session_token,
    start_guest,
)
from lookalike.api.headers import forget_session, remember_session
from lookalike.api.ratelimit import client_key
from lookalike.api.schemas import (
    Credentials,
    Feed,
    ItemPublic,
    ResultPublic,
    Session,
    SwipeIn,
    SwipePublic,
    UserPublic,
)
from lookalike.users import ANONYMOUS, User

#: Largest user id a path may name (SQLite's integer range).
MAX_ID = 2**63 - 1

router = APIRouter(
    tags=["users"],
    dependencies=[Depends(reject_unknown_query)],
)


def _public(user: User) -> UserPublic:
    if user is ANONYMOUS:
        return UserPublic(id=None, username=None, is_guest=True, created_at=None)
    return UserPublic(id=user.id, username=user.username, is_guest=user.is_guest,
                      created_at=user.created_at)


@router.get("/me", response_model=UserPublic,
            summary="Who I am (no id until a first swipe makes me a guest)")
def me(user: VisitorDep) -> UserPublic:
    return _public(user)


@router.get("/me/swipes", response_model=list[SwipePublic], summary="My swipes, oldest first")
def my_swipes(user: VisitorDep, feed: FeedDep) -> list[SwipePublic]:
    return [SwipePublic(item_id=s.item_id, liked=s.liked, at=s.at) for s in feed.swipes(user)]


@router.post("/me/swipes", status_code=status.HTTP_204_NO_CONTENT,
             summary="Like or dislike an item; the feed adapts (a first swipe makes a guest)")
def swipe(body: SwipeIn, user: UserDep, feed: FeedDep) -> None:
    feed.swipe(user, body.item_id, body.liked)


@router.get("/me/feed", response_model=Feed, summary="My next items (never shown twice)",
            description="Without a session the feed is the cold-start spread and nothing is "
            "remembered (as with `peek`).")
def my_feed(
    user: VisitorDep,
    feed: FeedDep,
    filters: QueryFiltersDep,
    n: Annotated[int, Query(ge=1, le=100)] = 10,
    peek: Annotated[
        bool, Query(description="Look without marking the items as shown (a page's preview).")
    ] = False,
) -> Feed:
    remember = not peek and user is not ANONYMOUS
    return Feed(items=[ResultPublic.of(r)
                       for r in feed.next(user, n, filters, mark_shown=remember)])


@router.get("/me/likes", response_model=list[ItemPublic], summary="Items I liked")
def my_likes(user: VisitorDep, feed: FeedDep) -> list[ItemPublic]:
    return [ItemPublic.of(i) for i in feed.likes(user)]


UserId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/users/{user_id}/swipes", response_model=list[SwipePublic],
            summary="A user's swipes (only your own)")
def user_swipes(user_id: UserId, user: VisitorDep, feed: FeedDep) -> list[SwipePublic]:
    if user_id != user.id:
        raise HTTPException(403, "you can only see your own swipes")
    return my_swipes(user, feed)


@router.get("/users/{user_id}/likes", response_model=list[ItemPublic],
            summary="A user's likes (only your own)")
def user_likes(user_id: UserId, user: VisitorDep, feed: FeedDep) -> list[ItemPublic]:
    if user_id != user.id:
        raise HTTPException(403, "you can only see your own likes")
    return my_likes(user, feed)


@router.post("/accounts", response_model=Session, status_code=status.HTTP_201_CREATED,
             summary="Create an account (adopts the current guest's swipes)",
             description="Rate-limited per client (429 with Retry-After).")
async def register(
    body: Credentials,
    request: Request,
    settings: SettingsDep,
    users: UsersDep,
    guards: GuardsDep,
) -> Session:
    guards.new_accounts.take(client_key(request))
    user, token = await guards.hashing.run(
        users.register, body.username, body.password, session_token(request, settings)
    )
    remember_session(request, token, users.lifetimes.session_ttl, header=True)
    return Session(user=_public(user), token=token)


@router.post("/sessions/guest", response_model=Session, status_code=status.HTTP_201_CREATED,
             summary="Start a new guest session (API clients)",
             description="Rate-limited per client (429 with Retry-After).")
def new_guest(request: Request, users: UsersDep, guards: GuardsDep) -> Session:
    user, token = start_guest(request, guards, users)
    return Session(user=_public(user), token=token)


@router.post("/sessions", response_model=Session, summary="Log in",
             description="Failed logins are rate-limited per client: beyond the limit the "
             "answer is 429 with Retry-After, without checking the password.")
async def login(body: Credentials, request: Request, users: UsersDep,
                guards: GuardsDep) -> Session:
    client = client_key(request)
    guards.auth_failures.take(client)
    found = await guards.hashing.run(users.login, body.username, body.password)
    if found is None:
        raise HTTPException(401, "wrong username or password")
    guards.auth_failures.refund(client)  # only failures count
    user, token = found
    remember_session(request, token, users.lifetimes.session_ttl, header=True)
    return Session(user=_public(user), token=token)


@router.delete("/sessions/current", status_code=status.HTTP_204_NO_CONTENT, summary="Log out")
def logout(request: Request, settings: SettingsDep, users: UsersDep) -> None:
    token = session_token(request, settings)
    if token:
        users.logout(token)
    forget_session(request)
