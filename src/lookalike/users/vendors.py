"""Vendors: shops or sellers that write to the catalog with an API key of their own, and own
the items they add.

A vendor's key is a random token of 256 bits, shown once when the vendor is added; the
catalog keeps only its SHA-256 digest (a key that random needs no slow password hash: no
guessing shortens a search of 2**256), compared in constant time. Revoking a vendor stops
its key at once; its items stay, owned by it (an admin key can still change them).

Ownership lives in its own table (`item_owners`, one row per owned item, deleted with the
item): an item without a row (every item of a catalog made before vendors, and every item
the admin adds) belongs to nobody, and only an admin key may change it. A vendor's items get
ids in its own namespace, `<vendor>:<its own id>`, so that two vendors' ids never collide and a
bulk upsert finds a vendor's item again by the vendor's own id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from lookalike.catalog.store import CatalogStore
from lookalike.errors import LookalikeError

__all__ = [
    "KEY_PREFIX",
    "Vendor",
    "VendorError",
    "Vendors",
    "key_digest",
]

#: Every vendor key starts with this (tells it apart from the admin key in logs and configs).
KEY_PREFIX = "lkv_"
#: A vendor's name: its items' id prefix, so only characters an item id may hold.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
#: Longest key looked at (longer ones are wrong, without hashing megabytes).
MAX_KEY_CHARS = 200

VENDOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS vendors (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS item_owners (
    item_rowid INTEGER PRIMARY KEY REFERENCES items(rowid) ON DELETE CASCADE ON UPDATE CASCADE,
    vendor_id INTEGER NOT NULL REFERENCES vendors(id),
    external_id TEXT NOT NULL,
    UNIQUE (vendor_id, external_id)
);
"""


class VendorError(LookalikeError):
    """A vendor name that is taken, malformed or unknown."""


@dataclass(frozen=True)
class Vendor:
    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def item_id(self, external_id: str) -> str:
        """The catalog id of this vendor's item `external_id`."""
        return f"{self.name}:{external_id}"


def key_digest(key: str) -> str:
    """SHA-256 of a key, hex (what the catalog stores)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _vendor(row: tuple[object, ...]) -> Vendor:
    return Vendor(
        id=int(str(row[0])), name=str(row[1]), created_at=datetime.fromisoformat(str(row[2])),
        revoked_at=None if row[3] is None else datetime.fromisoformat(str(row[3])),
    )


class Vendors:
    """The vendors of one catalog and who owns which item (tables in the catalog's file)."""

    def __init__(self, store: CatalogStore) -> None:
        self.store = store
        with store.connection() as conn:
            conn.executescript(VENDOR_SCHEMA)

    # -- vendors ---------------------------------------------------------------------------------

    def add(self, name: str) -> tuple[Vendor, str]:
        """A new vendor and its key (shown once: only the key's digest is stored)."""
        name = name.strip().lower()
        if not NAME_PATTERN.fullmatch(name):
            raise VendorError(f"vendor name {name[:60]!r}: use 1 to 40 lowercase letters, digits, "
                              "'-' or '_', starting with a letter or digit")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.store.transaction() as conn:
            if conn.execute("SELECT 1 FROM vendors WHERE name = ?", (name,)).fetchone():
                raise VendorError(f"vendor {name!r} exists (revoked vendors keep their name)")
            conn.execute(
                "INSERT INTO vendors (name, key_digest, created_at) VALUES (?, ?, ?)",
                (name, key_digest(key), _now()),
            )
        return self.get(name), key

    def get(self, name: str) -> Vendor:
        with self.store.connection() as conn:
            row = conn.execute("SELECT id, name, created_at, revoked_at FROM vendors "
                               "WHERE name = ?", (name.strip().lower(),)).fetchone()
        if row is None:
            raise VendorError(f"no vendor {name[:60]!r}")
        return _vendor(tuple(row))

    def list(self) -> list[tuple[Vendor, int]]:
        """Every vendor (revoked ones too) with the number of items it owns."""
        with self.store.connection() as conn:
            rows = conn.execute(
                "SELECT v.id, v.name, v.created_at, v.revoked_at, "
                "(SELECT count(*) FROM item_owners o WHERE o.vendor_id = v.id) "
                "FROM vendors v ORDER BY v.name"
            ).fetchall()
        return [(_vendor(tuple(r)), int(r[4])) for r in rows]

    def revoke(self, name: str) -> Vendor:
        """Stop the vendor's key now (its items stay, still its own)."""
        vendor = self.get(name)
        if vendor.active:
            with self.store.transaction() as conn:
                conn.execute("UPDATE vendors SET revoked_at = ? WHERE id = ?",
                             (_now(), vendor.id))
        return self.get(name)

    def authenticate(self, key: str) -> Vendor | None:
        """The active vendor whose key this is, or None."""
        if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_CHARS:
            return None
        digest = key_digest(key)
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT id, name, created_at, revoked_at, key_digest FROM vendors "
                "WHERE key_digest = ?", (digest,)
            ).fetchone()
        if row is None or not hmac.compare_digest(str(row[4]), digest):
            return None
        vendor = _vendor(tuple(row)[:4])
        return vendor if vendor.active else None

    # -- ownership -------------------------------------------------------------------------------

    def owner(self, item_id: str) -> Vendor | None:
        """The vendor that owns item `item_id`, or None (the admin's alone)."""
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT v.id, v.name, v.created_at, v.revoked_at FROM items i "
                "JOIN item_owners o ON o.item_rowid = i.rowid JOIN vendors v ON v.id = o.vendor_id "
                "WHERE i.id = ?", (item_id,)
            ).fetchone()
        return None if row is None else _vendor(tuple(row))

    def may_change(self, vendor: Vendor | None, item_id: str) -> bool:
        """Whether a writer may change or delete the item: the admin (`vendor` None) any item,
        a vendor only its own."""
        if vendor is None:
            return True
        owner = self.owner(item_id)
        return owner is not None and owner.id == vendor.id

    def set_owner(self, vendor: Vendor, item_id: str, external_id: str) -> None:
        with self.store.transaction() as conn:
            row = conn.execute("SELECT rowid FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise VendorError(f"no item {item_id!r}")
            conn.execute(
                "INSERT OR REPLACE INTO item_owners (item_rowid, vendor_id, external_id) "
                "VALUES (?, ?, ?)", (int(row[0]), vendor.id, external_id),
            )

    def owners(self) -> dict[str, str]:
        """item id → vendor name of every owned item."""
        with self.store.connection() as conn:
            rows = conn.execute(
                "SELECT i.id, v.name FROM item_owners o JOIN items i ON i.rowid = o.item_rowid "
                "JOIN vendors v ON v.id = o.vendor_id"
            ).fetchall()
        return {str(r[0]): str(r[1]) for r in rows}
