"""Unit tests: no network, and no ambient AWS_*, CI_* or XACCT_* variables leaking in."""

from __future__ import annotations

import os
import socket

import pytest

_AMBIENT_PREFIXES = ("AWS_", "CI_", "XACCT_", "GITLAB_")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_AMBIENT_PREFIXES):
            monkeypatch.delenv(name)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError("network is blocked in unit tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
