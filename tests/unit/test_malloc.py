"""The allocator setting is harmless: callable twice, and the CLI still runs after it."""

from __future__ import annotations

from gitlab_xacct._malloc import keep_transfer_buffers


def test_keep_transfer_buffers_is_idempotent() -> None:
    keep_transfer_buffers()
    keep_transfer_buffers()
    data = bytearray(1024 * 1024)  # allocation still works as before
    assert len(data) == 1024 * 1024
