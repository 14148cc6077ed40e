"""A compressed archive is unpacked only when its members fit in the temporary folder."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry import tarindex

MIB = 1024 * 1024


class Usage(NamedTuple):
    total: int
    used: int
    free: int


def gzip_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def free_space(free: int) -> Callable[[object], Usage]:
    return lambda _path: Usage(total=free, used=0, free=free)


def test_a_member_bigger_than_the_free_space_is_refused_before_unpacking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8 MiB of zeros compress to a few KiB: the archive's size says nothing about what it holds.
    archive = gzip_tar(tmp_path / "bomb.tar.gz", {"blobs/big": bytes(8 * MIB)})
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    monkeypatch.setattr(shutil, "disk_usage", free_space(60 * MIB))

    with pytest.raises(ConfigError) as refused, tarindex.open_archive(archive, lambda _n: True):
        pass
    message = str(refused.value)
    assert f"unpacking blobs/big needs {8 * MIB} bytes" in message
    assert "set TMPDIR to a folder with room" in message
    assert list(scratch.iterdir()) == []  # nothing written, the scratch folder removed


def test_members_that_fit_are_unpacked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = gzip_tar(tmp_path / "ok.tar.gz", {"blobs/small": b"x" * 1000})
    monkeypatch.setattr(shutil, "disk_usage", free_space(100 * MIB))
    with tarindex.open_archive(archive, lambda _n: True) as files:
        assert files.regular["blobs/small"].size == 1000
