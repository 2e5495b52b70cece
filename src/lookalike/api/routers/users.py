"""Shoppers: guest sessions by default, optional accounts, and their own swipes, feed and
likes under /me. Nobody can read or change another user's data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from lookalike.api.deps import (
    FeedDep,
    QueryFiltersDep,
    SettingsDep,
    UserDep,
    UsersDep,
    clear_session,
    reject_unknown_query,
    session_token,
    set_session,
)
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
from lookalike.users import User

router = APIRouter(
    tags=["users"],
    dependencies=[Depends(reject_unknown_query)],
)


def _public(user: User) -> UserPublic:
    return UserPublic(id=user.id, username=user.username, is_guest=user.is_guest,
                      created_at=user.created_at)


@router.get("/me", response_model=UserPublic, summary="Who I am (a guest is made if needed)")
def me(user: UserDep) -> UserPublic:
    return _public(user)


@router.get("/me/swipes", response_model=list[SwipePublic], summary="My swipes, oldest first")
def my_swipes(user: UserDep, feed: FeedDep) -> list[SwipePublic]:
    return [SwipePublic(item_id=s.item_id, liked=s.liked, at=s.at) for s in feed.swipes(user)]


@router.post("/me/swipes", status_code=status.HTTP_204_NO_CONTENT,
             summary="Like or dislike an item; the feed adapts")
def swipe(body: SwipeIn, user: UserDep, feed: FeedDep) -> None:
    feed.swipe(user, body.item_id, body.liked)


@router.get("/me/feed", response_model=Feed, summary="My next items (never shown twice)")
def my_feed(
    user: UserDep,
    feed: FeedDep,
    filters: QueryFiltersDep,
    n: Annotated[int, Query(ge=1, le=100)] = 10,
    peek: Annotated[
        bool, Query(description="Look without marking the items as shown (a page's preview).")
    ] = False,
) -> Feed:
    return Feed(items=[ResultPublic.of(r)
                       for r in feed.next(user, n, filters, mark_shown=not peek)])


@router.get("/me/likes", response_model=list[ItemPublic], summary="Items I liked")
def my_likes(user: UserDep, feed: FeedDep) -> list[ItemPublic]:
    return [ItemPublic.of(i) for i in feed.likes(user)]


@router.get("/users/{user_id}/swipes", response_model=list[SwipePublic],
            summary="A user's swipes (only your own)")
def user_swipes(user_id: int, user: UserDep, feed: FeedDep) -> list[SwipePublic]:
    if user_id != user.id:
        raise HTTPException(403, "you can only see your own swipes")
    return my_swipes(user, feed)


@router.get("/users/{user_id}/likes", response_model=list[ItemPublic],
            summary="A user's likes (only your own)")
def user_likes(user_id: int, user: UserDep, feed: FeedDep) -> list[ItemPublic]:
    if user_id != user.id:
        raise HTTPException(403, "you can only see your own likes")
    return my_likes(user, feed)


@router.post("/accounts", response_model=Session, status_code=status.HTTP_201_CREATED,
             summary="Create an account (adopts the current guest's swipes)")
def register(
    body: Credentials,
    request: Request,
    response: Response,
    settings: SettingsDep,
    users: UsersDep,
) -> Session:
    user, token = users.register(body.username, body.password,
                                 guest_token=session_token(request, settings))
    set_session(response, settings, token)
    return Session(user=_public(user), token=token)


@router.post("/sessions/guest", response_model=Session, status_code=status.HTTP_201_CREATED,
             summary="Start a new guest session (API clients)")
def new_guest(response: Response, settings: SettingsDep, users: UsersDep) -> Session:
    user, token = users.create_guest()
    set_session(response, settings, token)
    return Session(user=_public(user), token=token)


@router.post("/sessions", response_model=Session, summary="Log in")
def login(body: Credentials, response: Response, settings: SettingsDep,
          users: UsersDep) -> Session:
    found = users.login(body.username, body.password)
    if found is None:
        raise HTTPException(401, "wrong username or password")
    user, token = found
    set_session(response, settings, token)
    return Session(user=_public(user), token=token)


@router.delete("/sessions/current", status_code=status.HTTP_204_NO_CONTENT, summary="Log out")
def logout(request: Request, response: Response, settings: SettingsDep, users: UsersDep) -> None:
    token = session_token(request, settings)
    if token:
        users.logout(token)
    clear_session(response, settings)
