"""A fingerprint of (id, vector) pairs: tells whether an index holds what SQLite holds.

A file checksum proves a file is the one that was written; it cannot tell that the file was
written from other data than the catalog now holds (a process killed between a SQLite commit
and its index save, a rowid reused by a new item, vectors re-embedded by `lookalike repair`).
The fingerprint can: it is the sum (mod 2**64) of one 64-bit hash per (id, vector), so

- it does not depend on order, and is kept up to date by adding and subtracting rows;
- any change of one float's bits, or of which id a vector belongs to, changes it (the floats'
  bits, taken as 64-bit words, enter with odd multipliers, then the row is mixed with its id).

It is not cryptographic: it guards against accidents, the files' SHA-256 against damage.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["Fingerprint", "row_hashes"]

_MASK = (1 << 64) - 1
_BLOCK_WORDS = 1 << 22  # words hashed at once: bounds the temporaries to 32 MB


def _coefficients(dim: int) -> NDArray[np.uint64]:
    rng = np.random.default_rng(0x100C0A11CE)
    return rng.integers(0, 2**63, size=dim, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _mix(h: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser, elementwise (uint64 arithmetic wraps)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def row_hashes(ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> NDArray[np.uint64]:
    """One 64-bit hash per (id, vector) row."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) == 0:
        return np.zeros(0, dtype=np.uint64)
    matrix = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), -1)
    # pairs of floats as one 64-bit word (no conversion, half the products); odd widths as 32
    words = matrix.view(np.uint64) if matrix.shape[1] % 2 == 0 else matrix.view(np.uint32)
    coeffs = _coefficients(words.shape[1])
    block = max(1, _BLOCK_WORDS // max(1, words.shape[1]))
    out = np.empty(len(ids), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, len(ids), block):
            part = words[start : start + block]
            linear = np.einsum("ij,j->i", part, coeffs, dtype=np.uint64, casting="unsafe")
            tagged = linear + ids[start : start + block].astype(np.uint64) * np.uint64(
                0x9E3779B97F4A7C15
            )
            out[start : start + block] = _mix(tagged)
    return out


class Fingerprint:
    """The running sum of `row_hashes` over an index's rows."""

    def __init__(self, value: int = 0) -> None:
        self.value = value & _MASK

    @classmethod
    def of(cls, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> Fingerprint:
        return cls().add(ids, vectors)

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        return cls(int(text, 16))

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> Fingerprint:
        self.value = (self.value + int(row_hashes(ids, vectors).sum(dtype=np.uint64))) & _MASK
        return self

    def remove(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> Fingerprint:
        self.value = (self.value - int(row_hashes(ids, vectors).sum(dtype=np.uint64))) & _MASK
        return self

    def __str__(self) -> str:
        return f"{self.value:016x}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fingerprint) and other.value == self.value

    def __hash__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"Fingerprint({self})"
