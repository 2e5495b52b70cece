"""Users, sessions and accounts on a real SQLite file, and the same tests on a real PostgreSQL
server (`database_url`: each test runs on both)."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from databases import store_for
from lookalike.errors import LookalikeError
from lookalike.users import (
    Expired,
    InvalidUsernameError,
    Lifetimes,
    UserCounts,
    UsernameTakenError,
    Users,
    WeakPasswordError,
)


@pytest.fixture
def users(tmp_path: Path, database_url: str | None) -> Users:
    return Users(store_for(tmp_path, database_url))


def test_guest_token_finds_its_user_and_only_a_hash_is_stored(users: Users) -> None:
    user, token = users.create_guest()
    assert user.is_guest and user.username is None
    assert users.by_token(token) == user
    assert users.by_token(token + "x") is None
    assert users.by_token("") is None
    other, other_token = users.create_guest()
    assert other.id != user.id and other_token != token
    with users.store.connection() as conn:
        raw = conn.execute("SELECT token_hash FROM sessions").fetchall()
    assert all(token not in r[0] for r in raw)


def test_register_adopts_the_guests_swipes_and_preference(users: Users) -> None:
    guest, token = users.create_guest()
    users.record_swipe(guest, "a", True)
    users.set_preference(guest, np.ones(4, dtype=np.float32))
    user, new_token = users.register("Alice", "correct horse", guest_token=token)
    assert user.id == guest.id and not user.is_guest and user.username == "Alice"
    assert [s.item_id for s in users.swipes(user)] == ["a"]
    np.testing.assert_array_equal(users.preference(user), np.ones(4))
    assert users.by_token(token) is None  # the guest token is revoked
    assert users.by_token(new_token) == user


def test_register_rejects_taken_names_and_weak_passwords(users: Users) -> None:
    users.register("bob", "long enough pw")
    with pytest.raises(UsernameTakenError):
        users.register("BOB", "another good pw")
    with pytest.raises(WeakPasswordError):
        users.register("carol", "short")
    with pytest.raises(WeakPasswordError):
        users.register("dave", "aaaaaaaaaaaa")
    with pytest.raises(InvalidUsernameError):
        users.register("x y", "long enough pw")
    assert issubclass(UsernameTakenError, LookalikeError)


def test_login_and_logout(users: Users) -> None:
    user, _ = users.register("erin", "s3cret-password")
    assert users.login("erin", "wrong password") is None
    assert users.login("nobody", "s3cret-password") is None
    got = users.login("erin", "s3cret-password")
    assert got is not None and got[0] == user
    users.logout(got[1])
    assert users.by_token(got[1]) is None
    with users.store.connection() as conn:
        stored = conn.execute("SELECT password_hash FROM users").fetchone()
    assert stored[0].startswith("$argon2")


def test_swipes_and_preferences_are_per_user(users: Users) -> None:
    a, _ = users.create_guest()
    b, _ = users.create_guest()
    users.record_swipe(a, "x", True)
    users.record_swipe(a, "y", False)
    users.record_swipe(a, "x", False)  # a second verdict replaces the first
    assert [(s.item_id, s.liked) for s in users.swipes(a)] == [("y", False), ("x", False)]
    assert users.swipes(b) == [] and users.shown(b) == set()
    assert users.shown(a) == {"x", "y"}
    assert users.preference(b) is None


def test_swipe_update_runs_in_the_same_transaction(users: Users) -> None:
    a, _ = users.create_guest()
    users.record_swipe(a, "x", True, update=lambda v: np.full(3, 1 if v is None else 2, "f4"))
    users.record_swipe(a, "y", True, update=lambda v: v * 3 if v is not None else v)
    np.testing.assert_array_equal(users.preference(a), np.full(3, 3.0))


# -- lifetimes: idle guests and sessions expire (issue 17) ---------------------------------------


class Clock:
    """A clock the test moves by hand (the real one would need days of waiting)."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


DAY = timedelta(days=1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def timed_users(path: Path, clock: Clock, database_url: str | None = None,
                **lifetimes: Any) -> Users:
    life = Lifetimes(**{"guest_ttl": 2 * DAY, "session_ttl": 10 * DAY, **lifetimes})
    return Users(store_for(path, database_url), lifetimes=life, clock=clock)


def rows(users: Users, table: str) -> int:
    with users.store.connection() as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_an_idle_guest_expires_with_its_swipes_likes_and_feed(tmp_path: Path,
                                                              clock: Clock,
                                                              database_url: str | None) -> None:
    users = timed_users(tmp_path, clock, database_url)
    idle, idle_token = users.create_guest()
    users.record_swipe(idle, "a", True, update=lambda v: np.ones(4, dtype=np.float32))
    users.mark_shown(idle, ["b", "c"])
    active, active_token = users.create_guest()
    users.record_swipe(active, "a", False)
    for _ in range(4):  # the active guest comes back every 12 hours; the idle one never does
        clock.advance(DAY / 2)
        assert users.resume(active_token) is not None
    clock.advance(timedelta(hours=1))  # 49 h: past the idle guest's 48 h
    assert users.by_token(idle_token) is None  # refused at once, before any cleanup
    assert users.resume(idle_token) is None
    expired = users.expire()
    assert expired.guests == 1
    assert users.get(idle.id) is None
    assert users.swipes(idle) == [] and users.shown(idle) == set()
    assert users.preference(idle) is None
    assert users.by_token(active_token) == active
    assert [s.item_id for s in users.swipes(active)] == ["a"]
    assert rows(users, "sessions") == 1 and rows(users, "swipes") == 1
    assert rows(users, "feed_shown") == 1 and rows(users, "preferences") == 0


def test_an_account_session_expires_but_the_account_and_its_data_stay(
    tmp_path: Path, clock: Clock, database_url: str | None
) -> None:
    users = timed_users(tmp_path, clock, database_url)
    user, token = users.register("frank", "good long password")
    users.record_swipe(user, "x", True)
    clock.advance(11 * DAY)
    assert users.by_token(token) is None
    assert users.expire() == Expired(guests=0, sessions=1)
    assert rows(users, "sessions") == 0
    assert users.get(user.id) == user
    again = users.login("frank", "good long password")
    assert again is not None and [s.item_id for s in users.swipes(again[0])] == ["x"]


def test_use_renews_a_session_once_per_hundredth_of_its_lifetime(tmp_path: Path,
                                                                 clock: Clock,
                                                                 database_url: str | None) -> None:
    users = timed_users(tmp_path, clock, database_url)
    _, token = users.create_guest()  # guest_ttl 48 h: renewed at most every 28.8 min
    clock.advance(timedelta(minutes=20))
    first = users.resume(token)
    assert first is not None and not first.refreshed and first.ttl == 2 * DAY
    clock.advance(timedelta(minutes=20))  # 40 min since the last write
    second = users.resume(token)
    assert second is not None and second.refreshed
    clock.advance(timedelta(minutes=1))
    third = users.resume(token)
    assert third is not None and not third.refreshed
    clock.advance(2 * DAY - timedelta(minutes=2))  # 47 h 58 min after the renewal
    assert users.resume(token) is not None


def test_a_guest_who_signs_out_is_gone(users: Users) -> None:
    guest, token = users.create_guest()
    users.record_swipe(guest, "a", True)
    users.logout(token)
    assert users.get(guest.id) is None and rows(users, "swipes") == 0
    account, account_token = users.register("gina", "long enough pw")
    users.logout(account_token)
    assert users.get(account.id) == account


def test_an_account_keeps_only_its_latest_sessions(tmp_path: Path, clock: Clock,
                                                   database_url: str | None) -> None:
    users = timed_users(tmp_path, clock, database_url, sessions_per_user=3)
    users.register("hank", "long enough pw")
    tokens = []
    for _ in range(5):
        clock.advance(timedelta(minutes=1))
        found = users.login("hank", "long enough pw")
        assert found is not None
        tokens.append(found[1])
    assert rows(users, "sessions") == 3
    assert [users.by_token(t) is not None for t in tokens] == [False, False, True, True, True]


def test_beyond_guest_max_the_least_recently_seen_guests_go(tmp_path: Path,
                                                            clock: Clock,
                                                            database_url: str | None) -> None:
    users = timed_users(tmp_path, clock, database_url, guest_max=3)
    made = []
    for _ in range(5):
        clock.advance(timedelta(hours=1))
        made.append(users.create_guest())
    clock.advance(timedelta(hours=1))
    assert users.resume(made[0][1]) is not None  # the oldest guest came back: it is recent now
    account, _ = users.register("ivan", "long enough pw")
    assert users.expire().guests == 2
    assert [users.get(u.id) is not None for u, _ in made] == [True, False, False, True, True]
    assert users.counts() == UserCounts(guests=3, accounts=1, sessions=4)
    assert users.get(account.id) == account


def test_a_catalog_from_before_expiry_is_upgraded_in_place(tmp_path: Path, clock: Clock) -> None:
    db = tmp_path / "catalog.sqlite"
    old = sqlite3.connect(db)
    old.executescript(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT UNIQUE COLLATE NOCASE,"
        " password_hash TEXT, is_guest INTEGER NOT NULL, created_at TEXT NOT NULL);"
        "CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL"
        " REFERENCES users(id) ON DELETE CASCADE, created_at TEXT NOT NULL);"
    )
    made = "2030-01-01T00:00:00+00:00"
    old.execute("INSERT INTO users VALUES (1, NULL, NULL, 1, ?)", (made,))
    token = "an-old-guest-token"
    old.execute("INSERT INTO sessions VALUES (?, 1, ?)",
                (hashlib.sha256(token.encode()).hexdigest(), made))
    old.commit()
    old.close()
    users = timed_users(tmp_path, clock)
    assert users.by_token(token) is not None  # its age counts from its creation
    clock.advance(3 * DAY)
    assert users.by_token(token) is None
    assert users.expire().guests == 1
