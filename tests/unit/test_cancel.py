"""Cancellation in-process: a real signal to this process, the handler, the push engine's stop."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TextIO

import pytest

from gitlab_xacct import cancel, cli
from gitlab_xacct.commands import credential_helper
from gitlab_xacct.config.engine import EngineOptions
from gitlab_xacct.registry.blobs import ResponseStream, VerifiedStream, _Reader
from gitlab_xacct.registry.client import Registry
from gitlab_xacct.registry.image import OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST, Blob, ImageManifest
from gitlab_xacct.registry.progress import Progress
from gitlab_xacct.registry.push import Target, _counted, push_many
from gitlab_xacct.registry.tee import Tee
from gitlab_xacct.registry.transport import Response

CODES: dict[int, int] = {signal.SIGTERM.value: 143, signal.SIGINT.value: 130}
WAIT = 5.0  # a signal to ourselves is handled at once; this only bounds a broken handler


def _signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(WAIT)  # interrupted by the handler's exception
    raise AssertionError("the signal did not interrupt the main thread")


@pytest.mark.parametrize("signum", sorted(CODES))
def test_a_signal_becomes_cancelled_with_the_shell_exit_code(signum: int) -> None:
    before = {s: signal.getsignal(s) for s in cancel.SIGNALS}
    with pytest.raises(cancel.Cancelled) as caught, cancel.installed():
        _signal_self(signum)
    assert caught.value.exit_code == CODES[signum]
    assert caught.value.signal_name == signal.Signals(signum).name
    # Leaving the block puts the previous handlers back and forgets the cancellation.
    assert {s: signal.getsignal(s) for s in cancel.SIGNALS} == before
    assert not cancel.requested()
    cancel.check()


def test_worker_threads_see_the_flag_at_their_next_check() -> None:
    seen: list[BaseException] = []
    started, go = threading.Event(), threading.Event()

    def worker() -> None:
        started.set()
        go.wait(WAIT)
        try:
            cancel.check()
        except cancel.Cancelled as exc:
            seen.append(exc)

    with cancel.installed():
        thread = threading.Thread(target=worker)
        thread.start()
        assert started.wait(WAIT)
        with pytest.raises(cancel.Cancelled):
            _signal_self(signal.SIGTERM)
        go.set()
        thread.join(WAIT)
    assert len(seen) == 1
    assert seen[0].args == ("cancelled by SIGTERM",)


def test_installed_outside_the_main_thread_changes_nothing() -> None:
    before = signal.getsignal(signal.SIGTERM)
    inside: list[object] = []

    def other() -> None:
        with cancel.installed():
            inside.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(WAIT)
    assert inside == [before]


# ---- the push engine ------------------------------------------------------------------------


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _SignalOnRead(io.RawIOBase):
    """A layer that sends SIGTERM to the process after its first MiB has been read."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._left = size
        self._sent = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left < len(buffer) * 2 and not self._sent:
            self._sent = True
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + WAIT  # until the main thread has run the handler
            while not cancel.requested() and time.monotonic() < deadline:
                time.sleep(0.001)
        n = min(len(buffer), self._left)
        buffer[:n] = b"\0" * n
        self._left -= n
        return n


class _Stuck(io.RawIOBase):
    """A layer whose reads block until released: an upload stuck in a socket."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self._release = release

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self._release.wait(30)
        return 0


class _Recorder(Registry):
    """Records what reaches it; reads each blob the way an upload does."""

    def __init__(self) -> None:
        self.host = "registry.test"
        self.base_url = f"https://{self.host}"
        self.calls: list[str] = []
        self.ended: set[str] = set()  # uploads over, done or not
        self._lock = threading.Lock()

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        return None

    def blob_exists(self, repository: str, digest: str) -> bool:
        return False

    def upload_blob(self, repository: str, blob: Blob) -> None:
        try:
            with blob.open() as stream:
                while stream.read(1024 * 1024):
                    pass
            with self._lock:
                self.calls.append(f"blob {blob.digest}")
        finally:
            with self._lock:
                self.ended.add(blob.digest)

    def put_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str
    ) -> str:
        with self._lock:
            self.calls.append(f"manifest {reference}")
        return _digest(manifest)


def test_a_cancelled_push_stops_without_waiting_and_puts_no_manifest() -> None:
    size = 8 * 1024 * 1024
    release = threading.Event()
    signalling = Blob(digest=_digest(b"\0" * size), size=size, media_type=OCI_LAYER_TAR,
                      open=lambda: io.BufferedReader(_SignalOnRead(size)))  # fmt: skip
    stuck = Blob(digest=_digest(b"stuck"), size=5, media_type=OCI_LAYER_TAR,
                 open=lambda: io.BufferedReader(_Stuck(release)))  # fmt: skip
    config = Blob(digest=_digest(b"{}"), size=2, media_type=OCI_CONFIG,
                  open=lambda: io.BytesIO(b"{}"))  # fmt: skip
    manifest = b'{"schemaVersion":2}'
    image = ImageManifest(manifest=manifest, media_type=OCI_MANIFEST, digest=_digest(manifest),
                          config=config, layers=(stuck, signalling))  # fmt: skip
    registry = _Recorder()
    started = time.monotonic()
    returned: list[float] = []

    def push() -> None:
        try:
            push_many([Target(registry, "team/app")], image, ("v1",),
                      options=EngineOptions(parallelism=2))  # fmt: skip
        finally:
            returned.append(time.monotonic() - started)
            # Leaving installed() forgets the signal (the CLI exits right after): stay inside
            # until the signalling upload has had its next read.
            deadline = time.monotonic() + WAIT
            while signalling.digest not in registry.ended and time.monotonic() < deadline:
                time.sleep(0.01)

    try:
        with pytest.raises(cancel.Cancelled), cancel.installed():
            push()
    finally:
        release.set()  # let the stuck worker go, and see it end: it logs, and no test may see that
        for thread in threading.enumerate():
            if thread.name.startswith("push"):
                thread.join(WAIT)
    assert returned[0] < 5, "the engine waited for an upload stuck in flight"
    assert not [c for c in registry.calls if c.startswith("manifest")]
    assert f"blob {signalling.digest}" not in registry.calls  # stopped at its next read


# ---- every read loop of a transfer stops once cancelled ---------------------------------------

DATA = b"x" * (3 * 1024 * 1024)
LAYER = Blob(digest=_digest(DATA), size=len(DATA), media_type=OCI_LAYER_TAR,
             open=lambda: io.BytesIO(DATA))  # fmt: skip


def _response() -> Response:
    """What ResponseStream reads: an answer whose body is DATA."""
    return Response.of(200, {}, DATA, "http://registry.test/v2/")


def _tee_reads() -> None:
    tee = Tee(LAYER, 2, lambda n: None)
    try:
        tee.feed()
    finally:  # each upload gets the bytes, or the feeder's error rather than a wait
        for blob in tee.blobs:
            with blob.open() as stream:
                assert stream.read() == DATA


LOOPS: dict[str, Callable[[], object]] = {
    "monolithic upload body": lambda: list(VerifiedStream(LAYER)),
    "chunked upload body": lambda: list(_Reader(LAYER).piece(0, len(DATA))),
    "counted source read": lambda: _counted(LAYER, Progress(len(DATA), 1)).open().read(),
    "source registry stream": lambda: ResponseStream(_response()).read(1024),
    "tee feeding two uploads": _tee_reads,
}


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_every_transfer_loop_stops_once_cancelled(loop: str) -> None:
    LOOPS[loop]()  # reads everything while no signal has come
    with cancel.installed():
        with pytest.raises(cancel.Cancelled):
            _signal_self(signal.SIGTERM)
        with pytest.raises(cancel.Cancelled):
            LOOPS[loop]()


# ---- the two entry points --------------------------------------------------------------------


@pytest.mark.parametrize("signum", sorted(CODES))
def test_cli_prints_one_line_and_returns_the_shell_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], signum: int
) -> None:
    def runner(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
        _signal_self(signum)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "copy", replace(cli.COMMANDS["copy"], run=runner))
    assert cli.main(["copy", "oci:x", "docker://r.example.org/a:b"], env={}) == CODES[signum]
    err = capsys.readouterr().err
    name = signal.Signals(signum).name
    assert err == (
        f"gitlab-xacct: copy cancelled by {name}: no manifest was uploaded, nothing was tagged "
        "(a rerun reuses the blobs already uploaded)\n"
    )


def test_cli_names_the_tags_that_landed_before_the_signal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def runner(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
        with cancel.tagging("r.example.org/team/app:v1"):
            pass
        with cancel.tagging("r.example.org/team/app:v2"):
            _signal_self(signal.SIGTERM)  # the signal lands during the second tag's PUT
        return 0

    monkeypatch.setitem(cli.COMMANDS, "push", replace(cli.COMMANDS["push"], run=runner))
    assert cli.main(["push"], env={}) == 143
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "gitlab-xacct: push cancelled by SIGTERM after tagging r.example.org/team/app:v1 and "
        "while tagging r.example.org/team/app:v2 (that tag may have landed); no other tag was "
        "pushed (a rerun pushes them, reusing the blobs already uploaded)"
    ]
    assert cancel.tagged() == ()  # forgotten once main returns


def test_credential_helper_answers_the_shell_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def get(env: Mapping[str, str], stdin: TextIO, stdout: TextIO, now: datetime) -> int:
        _signal_self(signal.SIGINT)
        return 0

    monkeypatch.setitem(credential_helper._ACTIONS, "get", get)
    out = io.StringIO()
    assert credential_helper.main(["get"], {}, io.StringIO("h"), out) == 130
    assert out.getvalue() == "docker-credential-xacct: cancelled by SIGINT\n"
