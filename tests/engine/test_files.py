"""Atomic writes: the whole file or nothing, with the permissions any new file gets."""

import os
import stat

import pytest

from engine.files import write_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it after."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_the_umask_gives_new_files(tmp_path, umask, mask, mode):
    umask(mask)
    write_atomic(tmp_path / "figure.png", b"data")
    assert stat.S_IMODE((tmp_path / "figure.png").stat().st_mode) == mode


def test_replacing_a_file_keeps_the_data_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "trace.npz"
    write_atomic(target, b"old")
    write_atomic(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["trace.npz"]


def test_a_failed_write_leaves_nothing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError):
        write_atomic(blocker / "figure.png", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]
