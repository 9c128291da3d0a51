"""Files a run writes get the mode a plain write gives them: ``0o666 & ~umask`` (they are
written to a ``tempfile.mkstemp`` file, created ``0o600``, then moved into place), an existing
file's mode when it is replaced, and directories ``0o777 & ~umask``."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import pytest

from fastctrl import Controller, ControllerConfig, io
from fastctrl.profile import synthetic_profile


@contextmanager
def umask(mask: int):
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def write_everything(out) -> list:
    """A JSON file, a controller (config.json + model.safetensors), a profile table (Parquet
    and CSV) with its feature store (safetensors), text and a figure-like bytes file."""
    io.write_json(out / "new_dir" / "record.json", {"a": 1})
    io.write_text(out / "summary.md", "# x\n")
    io.write_with(out / "blob.bin", lambda p: p.write_bytes(b"\0" * 10))
    Controller(ControllerConfig(image_dim=8, text_dim=8)).save_pretrained(out / "ctrl")
    prof = synthetic_profile(20, seed=0, image_dim=8, text_dim=8)
    prof.save(out / "p.parquet")
    prof.save(out / "p.csv")
    files = sorted(p for p in out.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"record.json", "model.safetensors", "config.json", "p.parquet", "p.csv"} <= names
    assert any(p.suffix == ".safetensors" and p.parent == out for p in files)  # feature store
    return files


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize(
    "mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_written_files_follow_the_umask(tmp_path, mask, file_mode, dir_mode):
    with umask(mask):
        assert io.current_umask() == mask
        files = write_everything(tmp_path)
    assert {p.relative_to(tmp_path).as_posix(): oct(mode(p)) for p in files} == {
        p.relative_to(tmp_path).as_posix(): oct(file_mode) for p in files
    }
    assert mode(tmp_path / "new_dir") == dir_mode
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary file left behind


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "r.json"
    with umask(0o022):
        io.write_json(path, {"v": 1})
        os.chmod(path, 0o640)
        io.write_json(path, {"v": 2})
    assert mode(path) == 0o640 and io.read_json(path) == {"v": 2}


def test_current_umask_leaves_the_umask_as_it_was():
    with umask(0o027):
        assert io.current_umask() == 0o027
        assert io.current_umask() == 0o027
        assert os.umask(0o027) == 0o027
