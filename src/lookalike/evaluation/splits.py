"""Train/test splits by group (e.g. contributor), never by image; saved so runs compare."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


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
    """Hold out round(test_fraction x number of groups) whole groups, chosen by `seed`.

    Deterministic: depends only on the set of groups, the fraction and the seed.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be between 0 and 1")
    unique = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    n_test = round(test_fraction * len(unique))
    test = frozenset(unique[i] for i in order[:n_test])
    return GroupSplit(test_groups=test, test_fraction=test_fraction, seed=seed, column=column)


def load_or_create_split(
    path: Path, groups: Sequence[str], test_fraction: float = 0.5, seed: int = 0
) -> GroupSplit:
    """The split saved at `path`, or a new one saved there."""
    if path.is_file():
        return GroupSplit.load(path)
    split = group_split(groups, test_fraction, seed)
    split.save(path)
    return split
