"""Splits are by group, deterministic, and round-trip through their file."""

from __future__ import annotations

from pathlib import Path

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
    assert load_or_create_split(path, ["other"], 0.5, seed=9) == s
