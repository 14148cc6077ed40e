"""Job cancellation: GitLab stops a job with SIGTERM (then SIGKILL), Ctrl-C sends SIGINT.

While `installed()`, the first signal sets a flag and raises `Cancelled` wherever the main thread
is (a handler runs in the main thread only). Worker threads see the flag at their next read
(`check()` in the blob read loops) and stop too; the push engine calls `check()` right before
each manifest PUT, so a cancelled push never tags. A second signal ends the process at once.

The main thread does not wait for uploads still in flight: `leave()` ends the process as soon as
the one-line message is out, because concurrent.futures joins its worker threads at interpreter
exit, and an upload blocked in a socket would hold the process until its timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_CODES = frozenset(128 + s for s in SIGNALS)  # 143 and 130, as a shell reports them


class Cancelled(BaseException):
    """The job was cancelled by a signal; exit code 128 + the signal's number.

    Not an XacctError: like KeyboardInterrupt it derives from BaseException, so that no
    library's `except Exception` takes it for a failure worth retrying (botocore wraps whatever
    Exception interrupts a request into a retryable HTTPClientError, and sends it again).
    """

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"cancelled by {self.signal_name}")


class _State:
    """What the handler saw and what the push engine tagged before it; one per process."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0
        self.lock = threading.Lock()
        self.tagged: list[str] = []
        self.sending = ""  # the tag whose manifest PUT is in flight


_STATE = _State()


def requested() -> bool:
    return _STATE.event.is_set()


def check() -> None:
    """Raise `Cancelled` once a signal has arrived; cheap enough for every chunk of a blob."""
    if _STATE.event.is_set():
        raise Cancelled(_STATE.signum)


@contextmanager
def tagging(reference: str) -> Iterator[None]:
    """Around the manifest PUT of a tag: refused once cancelled; remembered when it went through
    (or was in flight when the signal came), so the cancellation message never denies a tag."""
    check()
    with _STATE.lock:
        _STATE.sending = reference
    yield
    with _STATE.lock:
        _STATE.tagged.append(reference)
        _STATE.sending = ""


def tagged() -> tuple[str, ...]:
    with _STATE.lock:
        return tuple(_STATE.tagged)


def sending() -> str:
    with _STATE.lock:
        return _STATE.sending


def message(command: str, exc: Cancelled) -> str:
    """The one line a cancelled run ends with: what stopped, and what did or did not land."""
    done, in_flight = tagged(), sending()
    if command not in ("push", "copy"):
        return f"{command} cancelled by {exc.signal_name} before it finished"
    if done or in_flight:
        parts = [f"after tagging {', '.join(done)}"] if done else []
        if in_flight:
            parts.append(f"while tagging {in_flight} (that tag may have landed)")
        return (
            f"{command} cancelled by {exc.signal_name} {' and '.join(parts)}; no other tag was "
            "pushed (a rerun pushes them, reusing the blobs already uploaded)"
        )
    return (
        f"{command} cancelled by {exc.signal_name}: no manifest was uploaded, nothing was "
        "tagged (a rerun reuses the blobs already uploaded)"
    )


def _handler(signum: int, _frame: FrameType | None) -> None:
    if _STATE.event.is_set():  # the user insists: no more unwinding
        leave(128 + signum)
    _STATE.signum = signum
    _STATE.event.set()
    raise Cancelled(signum)


@contextmanager
def installed() -> Iterator[None]:
    """Handle SIGTERM and SIGINT inside the block (main thread only; elsewhere a no-op); the
    previous handlers and a clear state come back on exit, so in-process callers (tests) are
    left as they were."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        with _STATE.lock:
            _STATE.event.clear()
            _STATE.signum = 0
            _STATE.tagged.clear()
            _STATE.sending = ""


def leave(code: int) -> None:
    """End the process now with `code`, output flushed, without joining threads still blocked
    in an upload (no atexit handlers run: call this only once everything is cleaned up)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)
