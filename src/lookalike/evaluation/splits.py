"""Train/test splits by group (e.g. contributor), never by image; saved so runs compare."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from lookalike.errors import LookalikeError


class SplitMismatchError(LookalikeError, ValueError):
    """A saved split does not belong to the data set it is used with."""


@dataclass(frozen=True)
class GroupSplit:
    """Which groups are held out for testing. Everything else is training data."""

    test_groups: frozenset[str]
    test_fraction: float
    seed: int
    column: str = "group"

    def test_mask(self, groups: Sequence[str]) -> NDArray[np.bool_]:
        return np.asarray([g in self.test_groups for g in groups], dtype=bool)

    def train_mask(self, groups: Sequence[str]) -> NDArray[np.bool_]:
        return ~self.test_mask(groups)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "column": self.column,
                    "seed": self.seed,
                    "test_fraction": self.test_fraction,
                    "test_groups": sorted(self.test_groups),
                },
                indent=1,
            )
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> GroupSplit:
        data = json.loads(path.read_text())
        return cls(
            test_groups=frozenset(str(g) for g in data["test_groups"]),
            test_fraction=float(data["test_fraction"]),
            seed=int(data["seed"]),
            column=str(data.get("column", "group")),
        )


def group_split(
    groups: Sequence[str], test_fraction: float = 0.5, seed: int = 0, column: str = "group"
) -> GroupSplit:
    """Hold out round(test_fraction x number of groups) whole groups, chosen by `seed`; with
    two groups or more, at least one is held out and at least one is kept.

    Deterministic: depends only on the set of groups, the fraction and the seed.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be between 0 and 1")
    unique = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    n_test = round(test_fraction * len(unique))
    if len(unique) >= 2:
        n_test = min(max(n_test, 1), len(unique) - 1)
    test = frozenset(unique[i] for i in order[:n_test])
    return GroupSplit(test_groups=test, test_fraction=test_fraction, seed=seed, column=column)


def groups_fingerprint(groups: Sequence[str]) -> str:
    """Short digest of the set of groups: which data set (or subset) a split belongs to."""
    return hashlib.sha256("\n".join(sorted(set(groups))).encode()).hexdigest()[:10]


def load_or_create_split(
    path: Path, groups: Sequence[str], test_fraction: float = 0.5, seed: int = 0
) -> GroupSplit:
    """The split saved at `path`, or a new one saved there.

    A saved split must belong to these groups: one that holds out groups this data set does not
    have (a split of another data set or of a subset) is refused with an error naming the file,
    never silently used. Groups added since the split was saved count as training groups."""
    if path.is_file():
        split = GroupSplit.load(path)
        present = set(groups)
        foreign = sorted(g for g in split.test_groups if g not in present)
        if foreign:
            raise SplitMismatchError(
                f"{path}: this split holds out {len(foreign)} of its {len(split.test_groups)} "
                f"groups that are not in the data set (e.g. {', '.join(foreign[:3])}): it "
                "belongs to another data set; delete it or pass another split file"
            )
        return split
    split = group_split(groups, test_fraction, seed)
    split.save(path)
    return split
