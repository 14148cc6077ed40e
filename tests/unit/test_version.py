"""The version the CLI reports is the one the package is built and released with."""

from __future__ import annotations

import tomllib
from pathlib import Path

from gitlab_xacct import __version__

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_version_is_pyprojects() -> None:
    assert __version__ == tomllib.loads(PYPROJECT.read_text())["project"]["version"]


def test_version_is_installed_metadata() -> None:
    from importlib.metadata import version

    assert __version__ == version("gitlab-xacct")
