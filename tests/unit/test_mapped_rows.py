"""Row files of the embedded store read by position (`mapped.RowReader`): the rows asked for,
in the order asked, whether consecutive, scattered (announced to the kernel first), repeated or
reversed; positions outside the file's valid rows and files cut short are clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.index import mapped


def _file(tmp_path: Path, rows: int = 3000, width: int = 700) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(0).standard_normal((rows, width)).astype(np.float32)
    path = tmp_path / "rows.vectors"
    mapped.write(path, data)
    return path, data


@pytest.mark.parametrize("positions", [
    [5], [10, 11, 12, 13], [2999, 0, 1500, 7, 8, 9, 2000], [4, 4, 4], list(range(300, 0, -7)),
])
def test_rows_come_back_as_asked(tmp_path: Path, positions: list[int]) -> None:
    path, data = _file(tmp_path)
    reader = mapped.RowReader(path, np.float32, data.shape[1], len(data))
    got = reader(np.asarray(positions))
    np.testing.assert_array_equal(got, data[positions])


def test_outside_rows_and_short_files_are_errors(tmp_path: Path) -> None:
    path, data = _file(tmp_path)
    reader = mapped.RowReader(path, np.float32, data.shape[1], len(data))
    with pytest.raises(IndexError):
        reader(np.asarray([0, len(data)]))
    with pytest.raises(IndexError):
        reader(np.asarray([-1]))
    assert reader(np.zeros(0, dtype=np.int64)).shape == (0, data.shape[1])
    longer = mapped.RowReader(path, np.float32, data.shape[1], len(data) + 10)
    with pytest.raises(mapped.DamagedFileError):
        longer(np.asarray([3, len(data) + 5]))
