"""Progress: a line per blob, periodic totals in a job log, a live bar only on a terminal."""

from __future__ import annotations

import io
import logging
import time
from typing import BinaryIO, cast

import pytest

from gitlab_xacct.registry import progress as progress_module
from gitlab_xacct.registry.image import OCI_LAYER_TAR, Blob
from gitlab_xacct.registry.progress import Progress, size
from gitlab_xacct.registry.push import _counted

MIB = 1024 * 1024


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_sizes_read_like_a_person_would_write_them() -> None:
    assert [size(0), size(1023), size(1536), size(50 * MIB), size(3 * 1024 * MIB)] == [
        "0 B", "1023 B", "1.5 KiB", "50.0 MiB", "3.0 GiB",
    ]  # fmt: skip


def test_a_job_log_gets_totals_every_interval_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress_module, "CI_INTERVAL", 0.05)
    caplog.set_level(logging.INFO, logger="gitlab_xacct.registry.push")
    log = io.StringIO()  # not a terminal: no bar, no carriage returns
    with Progress(200 * MIB, 4, stream=log) as progress:
        progress.advance(50 * MIB)
        progress.blob_done("sha256:" + "a" * 64, 50 * MIB, 0.5)
        wait_for(lambda: "progress: 50.0 MiB of 200.0 MiB (25%), 1/4 blobs" in caplog.text)
        progress.advance(150 * MIB)
        wait_for(lambda: "progress: 200.0 MiB of 200.0 MiB (100%), 1/4 blobs" in caplog.text)
    assert log.getvalue() == ""
    assert "uploaded sha256:" + "a" * 64 + " (50.0 MiB in 0.5 s, 100.0 MiB/s)" in caplog.text
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]
    assert len(lines) >= 2


def test_totals_stop_when_the_push_ends(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress_module, "CI_INTERVAL", 0.02)
    caplog.set_level(logging.INFO, logger="gitlab_xacct.registry.push")
    with Progress(MIB, 1, stream=io.StringIO()) as progress:
        progress.advance(MIB)
        wait_for(lambda: "progress:" in caplog.text)
    after_exit = len(caplog.records)
    time.sleep(0.1)  # five intervals: a reporter still running would have logged again
    assert len(caplog.records) == after_exit


def test_a_terminal_gets_a_live_bar_that_is_cleared_at_the_end(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress_module, "TTY_INTERVAL", 0.02)
    caplog.set_level(logging.INFO, logger="gitlab_xacct.registry.push")
    terminal = Terminal()
    with Progress(4 * MIB, 2, stream=terminal) as progress:
        progress.advance(2 * MIB)
        wait_for(lambda: "(50%)" in terminal.getvalue())
    shown = terminal.getvalue()
    assert shown.startswith("\r\x1b[K")
    assert shown.endswith("\r\x1b[K")
    assert "progress: 2.0 MiB of 4.0 MiB (50%), 0/2 blobs" in shown
    assert "progress:" not in caplog.text  # the bar replaces the totals lines


def test_nothing_to_send_starts_no_reporter() -> None:
    with Progress(0, 0, stream=io.StringIO()) as progress:
        assert progress.line().startswith("progress: 0 B of 0 B (100%)")
        assert progress._thread is None


def test_a_counted_source_hands_over_its_own_chunks_and_counts_them() -> None:
    chunks = [b"a" * MIB, b"b" * MIB]
    handed = iter(chunks)

    class Source(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return next(handed, b"")

    blob = Blob(
        digest="sha256:" + "0" * 64,
        size=2 * MIB,
        media_type=OCI_LAYER_TAR,
        open=lambda: cast(BinaryIO, Source()),
    )
    progress = Progress(2 * MIB, 1, stream=io.StringIO())
    with _counted(blob, progress).open() as stream:
        read = [stream.read(MIB) for _ in range(3)]
    assert read[0] is chunks[0]  # no buffer filled and copied per chunk
    assert read[1] is chunks[1]
    assert read[2] == b""
    assert progress.line().startswith("progress: 2.0 MiB of 2.0 MiB (100%)")
