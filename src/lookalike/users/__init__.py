"""Users, sessions, swipes and preference vectors, in the catalog's own database (its SQLite
file, or its PostgreSQL schema). Swipes and shown items are kept by item id, never by rowid or
vector: re-encoding the catalog with another model (`lookalike.catalog.reembed`) keeps them all.

A visitor becomes a guest with an opaque random session token when it first writes something
(a swipe); only the token's SHA-256 is stored (a 256-bit random token needs no slow hash: it
cannot be guessed, and a stolen database does not reveal live tokens). An account adds a
username and an argon2 password hash to the same user row, so a guest who registers keeps their
swipes and preference.

Nothing lives forever unless it is an account: a guest with no request for `guest_ttl` is
deleted with its swipes, likes and feed; an account's session unused for `session_ttl` ends (the
account stays); an account keeps at most `sessions_per_user` sessions; and at most `guest_max`
guests are kept. `Users.expire()` does the deleting (the server runs it periodically); expired
sessions are refused at once, before any cleanup.

    users = Users(catalog.store)
    user, token = users.create_guest()
    users.by_token(token) == user
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from numpy.typing import NDArray

from lookalike.catalog.database import Connection
from lookalike.catalog.store import CatalogStore
from lookalike.errors import LookalikeError

if TYPE_CHECKING:
    from lookalike.config import Settings

__all__ = [
    "ANONYMOUS",
    "Expired",
    "InvalidUsernameError",
    "Lifetimes",
    "Resumed",
    "Swipe",
    "User",
    "UserCounts",
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
    created_at TEXT NOT NULL,
    last_seen TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    last_seen TEXT
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

#: Catalogs made before sessions expired have no last_seen columns: added, and filled with
#: the creation time, when such a catalog is opened.
_SEEN_COLUMNS = (("users", "last_seen"), ("sessions", "last_seen"))
_SEEN_INDEXES = """
CREATE INDEX IF NOT EXISTS users_guest_seen ON users(is_guest, last_seen);
CREATE INDEX IF NOT EXISTS sessions_seen ON sessions(last_seen);
"""

#: A session's last-seen time is written at most once per this fraction of its lifetime (not
#: on every request): it then expires between 99 % and 100 % of its TTL after its last use.
REFRESH_FRACTION = 0.01

#: Rows one cleanup transaction deletes: the store's lock is released between batches, so a
#: large cleanup never holds up searches for long.
_BATCH = 500

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


#: The caller without a session: no row, nothing stored for it, id 0 (no database gives a
#: row id 0), so every read of its swipes, likes or feed history is empty.
ANONYMOUS = User(id=0, username=None, is_guest=True, created_at=datetime(1970, 1, 1, tzinfo=UTC))


@dataclass(frozen=True)
class Swipe:
    item_id: str
    liked: bool
    at: datetime


@dataclass(frozen=True)
class Lifetimes:
    """How long idle guests and sessions live, and how many are kept (see the module notes)."""

    guest_ttl: timedelta = timedelta(days=30)
    session_ttl: timedelta = timedelta(days=30)
    sessions_per_user: int = 10
    guest_max: int = 1_000_000

    @classmethod
    def of(cls, settings: Settings) -> Lifetimes:
        return cls(settings.guest_ttl, settings.session_ttl, settings.sessions_per_user,
                   settings.guest_max)

    def ttl(self, is_guest: bool) -> timedelta:
        return self.guest_ttl if is_guest else self.session_ttl


@dataclass(frozen=True)
class Resumed:
    """A live session's user. `refreshed`: its last-seen time was just moved forward, so its
    lifetime (`ttl`) starts again now and a client's cookie should be renewed."""

    user: User
    refreshed: bool
    ttl: timedelta


@dataclass(frozen=True)
class Expired:
    """What one `Users.expire()` deleted."""

    guests: int
    sessions: int


@dataclass(frozen=True)
class UserCounts:
    guests: int
    accounts: int
    sessions: int


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(at: datetime) -> str:
    """A stored time that sorts as text (always with microseconds, always UTC)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _row_to_user(row: Any) -> User:
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
    """Accounts, guest sessions, swipes, shown items and preference vectors of one catalog.

    `clock` gives the current time (UTC); tests pass their own to step through lifetimes."""

    def __init__(
        self,
        store: CatalogStore,
        password_min_length: int = 8,
        lifetimes: Lifetimes | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.password_min_length = password_min_length
        self.lifetimes = lifetimes or Lifetimes()
        self.clock = clock
        with store.connection() as conn:
            conn.executescript(SCHEMA)
            for table, column in _SEEN_COLUMNS:
                if column not in store.dialect.columns(conn, table):
                    with contextlib.suppress(sqlite3.OperationalError):  # another process won
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
                conn.execute(f"UPDATE {table} SET {column} = created_at WHERE {column} IS NULL")
            conn.executescript(_SEEN_INDEXES)

    @classmethod
    def from_settings(cls, store: CatalogStore, settings: Settings) -> Users:
        return cls(store, settings.password_min_length, Lifetimes.of(settings))

    # -- sessions and accounts ---------------------------------------------------------------

    def _new_session(self, conn: Connection, user_id: int) -> str:
        """A new session for the user; beyond `sessions_per_user` the least recently used of
        its sessions end."""
        token = secrets.token_urlsafe(32)
        now = _stamp(self.clock())
        conn.execute(
            "INSERT INTO sessions(token_hash, user_id, created_at, last_seen) VALUES (?, ?, ?, ?)",
            (_token_hash(token), user_id, now, now),
        )
        conn.execute("UPDATE users SET last_seen = ? WHERE id = ?", (now, user_id))
        conn.execute(
            "DELETE FROM sessions WHERE user_id = ? AND token_hash NOT IN ("
            " SELECT token_hash FROM sessions WHERE user_id = ?"
            " ORDER BY last_seen DESC, created_at DESC LIMIT ?)",
            (user_id, user_id, self.lifetimes.sessions_per_user),
        )
        return token

    def _get(self, conn: Connection, user_id: int) -> User:
        row = conn.execute(
            "SELECT id, username, is_guest, created_at FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return _row_to_user(row)

    def create_guest(self) -> tuple[User, str]:
        """A new guest user and its session token (shown once; only its hash is stored)."""
        now = self.clock()
        with self.store.transaction() as conn:
            user_id = int(conn.execute(
                "INSERT INTO users(username, password_hash, is_guest, created_at, last_seen)"
                " VALUES (NULL, NULL, 1, ?, ?) RETURNING id",
                (now.isoformat(), _stamp(now)),
            ).fetchone()[0])
            token = self._new_session(conn, user_id)
            return self._get(conn, user_id), token

    def by_token(self, token: str) -> User | None:
        """The user of a live session (an expired one is None), without touching it."""
        found = self._live(token)
        return None if found is None else found[0]

    def _live(self, token: str) -> tuple[User, datetime] | None:
        if not token:
            return None
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT u.id, u.username, u.is_guest, u.created_at, s.last_seen FROM sessions s"
                " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?",
                (_token_hash(token),),
            ).fetchone()
        if row is None:
            return None
        user = _row_to_user(row)
        seen = datetime.fromisoformat(row["last_seen"])
        if self.clock() - seen >= self.lifetimes.ttl(user.is_guest):
            return None
        return user, seen

    def resume(self, token: str) -> Resumed | None:
        """The user of a live session, counting this as a use: its last-seen time moves to now
        when it is older than 1 % of its lifetime (one write per session per that interval,
        never one per request)."""
        found = self._live(token)
        if found is None:
            return None
        user, seen = found
        ttl = self.lifetimes.ttl(user.is_guest)
        now = self.clock()
        if now - seen < ttl * REFRESH_FRACTION:
            return Resumed(user, refreshed=False, ttl=ttl)
        with self.store.transaction() as conn:
            conn.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?",
                         (_stamp(now), _token_hash(token)))
            conn.execute("UPDATE users SET last_seen = ? WHERE id = ?", (_stamp(now), user.id))
        return Resumed(user, refreshed=True, ttl=ttl)

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
                now = self.clock()
                user_id = int(conn.execute(
                    "INSERT INTO users(username, password_hash, is_guest, created_at, last_seen)"
                    " VALUES (?, ?, 0, ?, ?) RETURNING id",
                    (name, pw_hash, now.isoformat(), _stamp(now)),
                ).fetchone()[0])
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
        """End the session. A guest's data goes with its last session: nothing could reach it
        again."""
        with self.store.transaction() as conn:
            row = conn.execute("SELECT user_id FROM sessions WHERE token_hash = ?",
                               (_token_hash(token),)).fetchone()
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))
            if row is not None:
                conn.execute(
                    "DELETE FROM users WHERE id = ? AND is_guest = 1 AND NOT EXISTS ("
                    " SELECT 1 FROM sessions WHERE user_id = ?)",
                    (row[0], row[0]),
                )

    # -- expiry ------------------------------------------------------------------------------

    def _delete_batches(self, sql: str, *params: object) -> int:
        """Run a `DELETE ... LIMIT ?`-style statement (its last parameter is the batch size)
        until it deletes nothing, one transaction per batch."""
        total = 0
        while True:
            with self.store.transaction() as conn:
                deleted = conn.execute(sql, (*params, _BATCH)).rowcount
            total += max(deleted, 0)
            if deleted < _BATCH:
                return total

    def expire(self) -> Expired:
        """Delete guests idle past `guest_ttl` (their swipes, likes, feed and preference go
        with them), account sessions idle past `session_ttl`, guests left without any session,
        and the least recently seen guests beyond `guest_max`. Accounts are never deleted."""
        now = self.clock()
        life = self.lifetimes
        guests = self._delete_batches(
            "DELETE FROM users WHERE id IN (SELECT id FROM users"
            " WHERE is_guest = 1 AND last_seen < ? LIMIT ?)",
            _stamp(now - life.guest_ttl),
        )
        sessions = self._delete_batches(
            "DELETE FROM sessions WHERE token_hash IN (SELECT s.token_hash FROM sessions s"
            " JOIN users u ON u.id = s.user_id WHERE s.last_seen < ? AND u.is_guest = 0 LIMIT ?)",
            _stamp(now - life.session_ttl),
        )
        guests += self._delete_batches(
            "DELETE FROM users WHERE id IN (SELECT u.id FROM users u WHERE u.is_guest = 1"
            " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id) LIMIT ?)"
        )
        with self.store.connection() as conn:
            excess = conn.execute("SELECT count(*) FROM users WHERE is_guest = 1").fetchone()[0]
        excess -= life.guest_max
        while excess > 0:
            with self.store.transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM users WHERE id IN (SELECT id FROM users WHERE is_guest = 1"
                    " ORDER BY last_seen, id LIMIT ?)",
                    (min(excess, _BATCH),),
                ).rowcount
            if deleted <= 0:
                break
            guests += deleted
            excess -= deleted
        return Expired(guests=guests, sessions=sessions)

    def counts(self) -> UserCounts:
        with self.store.connection() as conn:
            guests, accounts = conn.execute(
                "SELECT coalesce(sum(is_guest), 0), coalesce(sum(1 - is_guest), 0) FROM users"
            ).fetchone()
            sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
        return UserCounts(guests=int(guests), accounts=int(accounts), sessions=int(sessions))

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
