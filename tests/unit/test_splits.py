"""Splits are by group, deterministic, and round-trip through their file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.evaluation.report import default_split_path
from lookalike.evaluation.splits import GroupSplit, group_split, load_or_create_split


def test_split_is_by_group_and_deterministic(tmp_path: Path) -> None:
    groups = [str(i % 10) for i in range(100)]
    s = group_split(groups, 0.5, seed=3)
    assert len(s.test_groups) == 5
    test = s.test_mask(groups)
    for g in set(groups):  # a group is wholly in or wholly out
        assert len({bool(t) for t, gg in zip(test, groups, strict=True) if gg == g}) == 1
    assert group_split(list(reversed(groups)), 0.5, seed=3) == s
    assert group_split(groups, 0.5, seed=4) != s
    path = tmp_path / "split.json"
    s.save(path)
    assert GroupSplit.load(path) == s
    assert load_or_create_split(path, groups, 0.5, seed=3) == s
    assert load_or_create_split(path, [*groups, "new"], 0.5, seed=3) == s  # new group: training


def test_split_of_another_data_set_is_refused(tmp_path: Path) -> None:
    """A split saved for a subset (or another data set) must not pass for this one's."""
    full = [str(i) for i in range(40)]
    subset_split = group_split(full[:10], 0.5, seed=0)
    path = tmp_path / "split.json"
    subset_split.save(path)
    assert load_or_create_split(path, full[:10]) == subset_split
    with pytest.raises(ValueError, match=r"split\.json.*not in the data set"):
        load_or_create_split(path, full[20:])


def test_default_split_path_differs_for_a_subset(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    full = [str(i % 30) for i in range(300)]
    a = default_split_path(settings, "clothing-dataset", 0.5, 0, full)
    assert a == default_split_path(settings, "clothing-dataset", 0.5, 0, list(reversed(full)))
    assert a != default_split_path(settings, "clothing-dataset", 0.5, 0, full[:10])
