"""accel.atomic: the whole new file or the old one, never a part, and no temporary left."""

import os

import pytest

from accel.atomic import atomic_open, atomic_write


def test_replaces_whole_files_with_ordinary_permissions(tmp_path):
    path = tmp_path / "a.json"
    atomic_write(path, "old\n")
    atomic_write(path, "new\n")
    assert path.read_text() == "new\n"
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "a.csv"
    atomic_write(path, "old\n")
    with pytest.raises(ZeroDivisionError), atomic_open(path, newline="") as f:
        f.write("half of the new")
        1 / 0  # noqa: B018
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_mode_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"^mode must be 'w' or 'wb', not 'a'$"), \
            atomic_open(tmp_path / "x", "a"):
        pass
