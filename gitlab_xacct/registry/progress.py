"""Push progress: a line per blob, totals every few seconds in a job log, a live bar on a tty."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger("gitlab_xacct.registry.push")

CI_INTERVAL = 5.0  # seconds between totals in a job log: enough to show life, not to flood it
TTY_INTERVAL = 0.2


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Counts bytes read from the source; a reporter thread prints totals while it runs."""

    def __init__(self, total_bytes: int, total_blobs: int, stream: TextIO | None = None) -> None:
        self.total_bytes = total_bytes
        self.total_blobs = total_blobs
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._lock = threading.Lock()
        self._bytes = 0
        self._blobs = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.total_bytes:
            self._thread = threading.Thread(target=self._report, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self._tty:
            self._stream.write("\r\x1b[K")

    def advance(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    def blob_started(self, digest: str, blob_size: int, where: str) -> None:
        log.info("upload   %s (%s) to %s", digest, size(blob_size), where)

    def blob_counted(self) -> None:
        """A blob that needed no bytes moved (mounted); its line was logged where it happened."""
        with self._lock:
            self._blobs += 1

    def blob_done(self, digest: str, blob_size: int, elapsed: float, how: str = "uploaded") -> None:
        with self._lock:
            self._blobs += 1
        rate = size(blob_size / max(elapsed, 1e-6))
        log.info("%-8s %s (%s in %.1f s, %s/s)", how, digest, size(blob_size), elapsed, rate)

    def line(self) -> str:
        with self._lock:
            done, blobs = self._bytes, self._blobs
        elapsed = max(time.monotonic() - self._started, 1e-6)
        percent = 100 * done / self.total_bytes if self.total_bytes else 100.0
        return (
            f"progress: {size(done)} of {size(self.total_bytes)} ({percent:.0f}%), "
            f"{blobs}/{self.total_blobs} blobs, {size(done / elapsed)}/s"
        )

    def _report(self) -> None:
        interval = TTY_INTERVAL if self._tty else CI_INTERVAL
        while not self._stop.wait(interval):
            if self._tty:
                self._stream.write("\r\x1b[K" + self.line())
                self._stream.flush()
            else:
                log.info("%s", self.line())
