"""Users, sessions and accounts on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lookalike.catalog import CatalogStore
from lookalike.errors import LookalikeError
from lookalike.users import (
    InvalidUsernameError,
    UsernameTakenError,
    Users,
    WeakPasswordError,
)


@pytest.fixture
def users(tmp_path: Path) -> Users:
    return Users(CatalogStore(tmp_path / "catalog.sqlite"))


def test_guest_token_finds_its_user_and_only_a_hash_is_stored(users: Users) -> None:
    user, token = users.create_guest()
    assert user.is_guest and user.username is None
    assert users.by_token(token) == user
    assert users.by_token(token + "x") is None
    assert users.by_token("") is None
    other, other_token = users.create_guest()
    assert other.id != user.id and other_token != token
    raw = sqlite3.connect(users.store.path).execute("SELECT token_hash FROM sessions").fetchall()
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
    stored = sqlite3.connect(users.store.path).execute("SELECT password_hash FROM users").fetchone()
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
