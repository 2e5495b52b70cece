"""Users, sessions, swipes and preference vectors, in the catalog's own SQLite file.

Every visitor starts as a guest with an opaque random session token; only the token's
SHA-256 is stored (a 256-bit random token needs no slow hash: it cannot be guessed, and a
stolen database does not reveal live tokens). An account adds a username and an argon2 password
hash to the same user row, so a guest who registers keeps their swipes and preference.

    users = Users(catalog.store)
    user, token = users.create_guest()
    users.by_token(token) == user
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from numpy.typing import NDArray

from lookalike.catalog.store import CatalogStore
from lookalike.errors import LookalikeError

__all__ = [
    "InvalidUsernameError",
    "Swipe",
    "User",
    "UserError",
    "UsernameTakenError",
    "Users",
    "WeakPasswordError",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT UNIQUE COLLATE NOCASE,
    password_hash TEXT,
    is_guest INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);
CREATE TABLE IF NOT EXISTS swipes (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    item_id TEXT NOT NULL,
    liked INTEGER NOT NULL,
    at TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, item_id)
);
CREATE TABLE IF NOT EXISTS feed_shown (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    item_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (user_id, item_id)
);
CREATE TABLE IF NOT EXISTS preferences (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    updated_at TEXT NOT NULL
);
"""

USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_hasher = PasswordHasher()


class UserError(LookalikeError):
    """A user-facing account problem (taken username, weak password...)."""


class UsernameTakenError(UserError):
    """Another account already has that username."""


class WeakPasswordError(UserError):
    """The password is too short or too simple."""


class InvalidUsernameError(UserError):
    """The username is empty, too long or has characters other than letters, digits, . _ -"""


@dataclass(frozen=True)
class User:
    id: int
    username: str | None
    is_guest: bool
    created_at: datetime


@dataclass(frozen=True)
class Swipe:
    item_id: str
    liked: bool
    at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _row_to_user(row: sqlite3.Row) -> User:
    return User(
        id=int(row["id"]),
        username=row["username"],
        is_guest=bool(row["is_guest"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )


def check_username(username: str) -> str:
    name = username.strip()
    if not 3 <= len(name) <= 40 or not set(name.lower()) <= USERNAME_CHARS:
        raise InvalidUsernameError(
            "a username has 3 to 40 characters: letters, digits, '.', '_' or '-'"
        )
    return name


def check_password(password: str, username: str, min_length: int) -> None:
    if len(password) < min_length:
        raise WeakPasswordError(f"a password needs at least {min_length} characters")
    if len(set(password)) < 4 or password.lower() == username.lower():
        raise WeakPasswordError("that password is too easy to guess")


class Users:
    """Accounts, guest sessions, swipes, shown items and preference vectors of one catalog."""

    def __init__(self, store: CatalogStore, password_min_length: int = 8) -> None:
        self.store = store
        self.password_min_length = password_min_length
        with store.connection() as conn:
            conn.executescript(SCHEMA)

    # -- sessions and accounts ---------------------------------------------------------------

    def _new_session(self, conn: sqlite3.Connection, user_id: int) -> str:
        token = secrets.token_urlsafe(32)
        conn.execute(
            "INSERT INTO sessions(token_hash, user_id, created_at) VALUES (?, ?, ?)",
            (_token_hash(token), user_id, _now().isoformat()),
        )
        return token

    def _get(self, conn: sqlite3.Connection, user_id: int) -> User:
        row = conn.execute(
            "SELECT id, username, is_guest, created_at FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return _row_to_user(row)

    def create_guest(self) -> tuple[User, str]:
        """A new guest user and its session token (shown once; only its hash is stored)."""
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO users(username, password_hash, is_guest, created_at)"
                " VALUES (NULL, NULL, 1, ?)",
                (_now().isoformat(),),
            )
            user_id = int(cur.lastrowid or 0)
            token = self._new_session(conn, user_id)
            return self._get(conn, user_id), token

    def by_token(self, token: str) -> User | None:
        if not token:
            return None
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT u.id, u.username, u.is_guest, u.created_at FROM sessions s"
                " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?",
                (_token_hash(token),),
            ).fetchone()
        return None if row is None else _row_to_user(row)

    def get(self, user_id: int) -> User | None:
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT id, username, is_guest, created_at FROM users WHERE id = ?", (user_id,)
            ).fetchone()
        return None if row is None else _row_to_user(row)

    def register(
        self, username: str, password: str, guest_token: str | None = None
    ) -> tuple[User, str]:
        """Create an account; a guest's token makes the guest *become* the account, keeping its
        swipes and preference. Returns the user and a fresh session token (the guest token is
        revoked, so a token seen before login cannot ride into the account)."""
        name = check_username(username)
        check_password(password, name, self.password_min_length)
        pw_hash = _hasher.hash(password)  # slow on purpose: outside the database lock
        guest = self.by_token(guest_token) if guest_token else None
        with self.store.transaction() as conn:
            taken = conn.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone()
            if taken:
                raise UsernameTakenError(f"the username {name!r} is taken")
            if guest is not None and guest.is_guest:
                conn.execute(
                    "UPDATE users SET username = ?, password_hash = ?, is_guest = 0 WHERE id = ?",
                    (name, pw_hash, guest.id),
                )
                conn.execute("DELETE FROM sessions WHERE user_id = ?", (guest.id,))
                user_id = guest.id
            else:
                cur = conn.execute(
                    "INSERT INTO users(username, password_hash, is_guest, created_at)"
                    " VALUES (?, ?, 0, ?)",
                    (name, pw_hash, _now().isoformat()),
                )
                user_id = int(cur.lastrowid or 0)
            token = self._new_session(conn, user_id)
            return self._get(conn, user_id), token

    def login(self, username: str, password: str) -> tuple[User, str] | None:
        """A new session for the right password, else None (same answer for unknown users)."""
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT id, password_hash FROM users WHERE username = ? AND is_guest = 0",
                (username.strip(),),
            ).fetchone()
        if row is None:
            _hasher.hash(password)  # spend the same time as a real check: no user enumeration
            return None
        try:
            _hasher.verify(row["password_hash"], password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        with self.store.transaction() as conn:
            if _hasher.check_needs_rehash(row["password_hash"]):
                conn.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ?",
                    (_hasher.hash(password), row["id"]),
                )
            token = self._new_session(conn, int(row["id"]))
            return self._get(conn, int(row["id"])), token

    def logout(self, token: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))

    # -- swipes, shown items, preference (used by lookalike.recommend.Feed) -------------------

    def record_swipe(
        self,
        user: User,
        item_id: str,
        liked: bool,
        update: Callable[[NDArray[np.float32] | None], NDArray[np.float32] | None] | None = None,
    ) -> None:
        """Store (or replace) the user's verdict on an item; it also counts as shown.

        `update(old preference or None) -> new preference (None: leave it)` runs in the same
        transaction, so two swipes arriving at once cannot lose one another's change."""
        at = _now().isoformat()
        with self.store.transaction() as conn:
            if update is not None:
                row = conn.execute(
                    "SELECT vector FROM preferences WHERE user_id = ?", (user.id,)
                ).fetchone()
                old = None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()
                new = update(old)
                if new is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO preferences(user_id, vector, updated_at)"
                        " VALUES (?, ?, ?)",
                        (user.id, np.asarray(new, dtype=np.float32).tobytes(), at),
                    )
            seq = conn.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM swipes WHERE user_id = ?", (user.id,)
            ).fetchone()[0]
            conn.execute(
                "INSERT OR REPLACE INTO swipes(user_id, item_id, liked, at, seq)"
                " VALUES (?, ?, ?, ?, ?)",
                (user.id, item_id, int(liked), at, seq),
            )
            conn.execute(
                "INSERT OR IGNORE INTO feed_shown(user_id, item_id, at) VALUES (?, ?, ?)",
                (user.id, item_id, at),
            )

    def swipes(self, user: User) -> list[Swipe]:
        """The user's swipes, oldest first."""
        with self.store.connection() as conn:
            rows = conn.execute(
                "SELECT item_id, liked, at FROM swipes WHERE user_id = ? ORDER BY seq",
                (user.id,),
            ).fetchall()
        return [Swipe(r[0], bool(r[1]), datetime.fromisoformat(r[2])) for r in rows]

    def mark_shown(self, user: User, item_ids: list[str]) -> None:
        at = _now().isoformat()
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO feed_shown(user_id, item_id, at) VALUES (?, ?, ?)",
                [(user.id, i, at) for i in item_ids],
            )

    def shown(self, user: User) -> set[str]:
        """Item ids the feed already showed this user (swiped ones included)."""
        with self.store.connection() as conn:
            rows = conn.execute(
                "SELECT item_id FROM feed_shown WHERE user_id = ?", (user.id,)
            ).fetchall()
        return {r[0] for r in rows}

    def preference(self, user: User) -> NDArray[np.float32] | None:
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT vector FROM preferences WHERE user_id = ?", (user.id,)
            ).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()

    def set_preference(self, user: User, vector: NDArray[np.float32]) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO preferences(user_id, vector, updated_at) VALUES (?, ?, ?)",
                (user.id, np.asarray(vector, dtype=np.float32).tobytes(), _now().isoformat()),
            )
