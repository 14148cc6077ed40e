"""A cancelled job (SIGTERM) or Ctrl-C (SIGINT) in the middle of a push, for real.

The CLI runs as a subprocess and pushes three layers (8, 48 and 48 MiB) through a throttled
relay, so the signal lands while two uploads are in flight in worker threads: after the first
layer is stored (asked of the registry itself) and once the proxy has seen the third layer's
upload start. Then: exit 143/130 within a bound, one line on stderr, no manifest PUT, no tag, no
report, no temp file; and a rerun completes, uploading only the blobs the registry lacks (counted
at the proxy), so the blobs of the cancelled run are reused.

Login, credentials and the credential helper are cancelled while STS does not answer (a loopback
listener that reads and never replies): same exit codes, nothing written.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import pytest

from tests.imagefactory import LayoutInfo, random_layer, write_oci_layout
from tests.integration.conftest import CLI, Job
from tests.standins.faultproxy import FaultProxy
from tests.standins.servers import loopback_http

HELPER = str(Path(sys.executable).with_name("docker-credential-xacct"))
MIB = 1024 * 1024
RATE = 16 * MIB  # bytes per second into the registry while a test wants the push slow
STOP_BOUND = 2.0  # seconds from the signal to the process's exit
WAIT = 60.0  # bound on every wait for the push to reach the point where the signal lands
CODES = {"SIGTERM": 143, "SIGINT": 130}
REPOSITORY = "team/app"


# ---- a throttled TCP relay -------------------------------------------------------------------


@dataclass
class Throttle:
    """127.0.0.1:PORT -> upstream, the client's bytes at most `rate` per second (None: as fast
    as they come); answers pass unthrottled. Sockets time out; stop() closes them all."""

    upstream: tuple[str, int]
    rate: float | None = RATE
    sent: int = 0
    _sockets: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None

    @property
    def url(self) -> str:
        assert self._listener is not None
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> Self:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while (listener := self._listener) is not None:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.upstream, timeout=30)
            client.settimeout(30)
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, throttled: bool) -> None:
        started, moved = time.monotonic(), 0
        try:
            while data := source.recv(64 * 1024):
                sink.sendall(data)
                if throttled:
                    moved += len(data)
                    with self._lock:
                        self.sent += len(data)
                    rate = self.rate
                    if rate:  # sleep until the bytes so far fit the rate
                        time.sleep(max(0.0, started + moved / rate - time.monotonic()))
                    else:
                        started, moved = time.monotonic(), 0
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


# ---- a listener that never answers (STS hanging) ------------------------------------------------


@dataclass
class Silent:
    """Accepts connections and reads what comes, never answering; counts requests begun."""

    received: int = 0
    _sockets: list[socket.socket] = field(default_factory=list)
    _listener: socket.socket | None = None

    @property
    def url(self) -> str:
        assert self._listener is not None
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> Self:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while (listener := self._listener) is not None:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(60)
            self._sockets.append(client)
            threading.Thread(target=self._read, args=(client,), daemon=True).start()

    def _read(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                self.received += len(data)


# ---- running the CLI and signalling it ------------------------------------------------------


@dataclass
class Running:
    """A CLI process whose stdout and stderr are read as they come (bounded pipes never fill)."""

    process: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, argv: list[str], env: dict[str, str], stdin: str | None = None) -> Running:
        process = subprocess.Popen(
            argv, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        )  # fmt: skip
        running = cls(process)
        if stdin is not None:
            assert process.stdin is not None
            process.stdin.write(stdin)
            process.stdin.close()
        for stream, lines in ((process.stdout, running.out), (process.stderr, running.err)):
            threading.Thread(target=_collect, args=(stream, lines), daemon=True).start()
        return running

    def until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"exited {self.process.returncode} before {what}:\n{self.stderr}")
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"no {what} within {WAIT} s:\n{self.stderr}")
            time.sleep(0.02)

    def cancel(self, name: str) -> tuple[int, float]:
        """Send the signal; (exit code, seconds until the process was gone)."""
        sent = time.monotonic()
        self.process.send_signal(getattr(signal, name))
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            pytest.fail(f"still running 30 s after {name}:\n{self.stderr}")
        elapsed = time.monotonic() - sent
        time.sleep(0.1)  # let the reader threads drain the pipes' last lines
        return code, elapsed

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    @property
    def stdout(self) -> str:
        return "".join(self.out)


def _collect(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


# ---- the registry, asked directly ----------------------------------------------------------


def has_blob(job: Job, digest: str) -> bool:
    answer = loopback_http().head(
        f"{job.registry.url}/v2/{REPOSITORY}/blobs/{digest}",
        auth=(job.registry.username, job.registry.password),
        timeout=10,
    )
    return answer.status_code == 200


def tags(job: Job) -> list[str]:
    answer = loopback_http().get(
        f"{job.registry.url}/v2/{REPOSITORY}/tags/list",
        auth=(job.registry.username, job.registry.password),
        timeout=10,
    )
    return list(answer.json().get("tags") or []) if answer.status_code == 200 else []


def uploads(proxy: FaultProxy) -> list[str]:
    """Digests of the blob uploads begun: the PUT ...?digest= that carries a blob (or, chunked,
    closes it); the proxy sees it as it starts."""
    return [
        found[1].replace("%3A", ":")
        for info in proxy.history
        if info.method == "PUT" and "/blobs/uploads/" in info.path
        and (found := re.search(r"digest=(sha256(?::|%3A)[0-9a-f]{64})", info.query))
    ]  # fmt: skip


def manifest_puts(proxy: FaultProxy) -> int:
    return sum(1 for i in proxy.history if i.method == "PUT" and "/manifests/" in i.path)


def blob_heads(proxy: FaultProxy) -> set[str]:
    return {
        info.path.rsplit("/", 1)[1]
        for info in proxy.history
        if info.method == "HEAD" and "/blobs/" in info.path
    }


# ---- push and copy ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, LayoutInfo]]:
    """One image per test case (different bytes), so no case finds another's blobs."""
    made = {}
    for number, case in enumerate(CASES):
        layout = tmp_path_factory.mktemp("cancel") / "layout"
        seed = 7100 + 10 * number
        layers = [random_layer(size * MIB, seed=seed + n) for n, size in enumerate((8, 48, 48))]
        made[case] = (layout, write_oci_layout(layout, layers, ref="latest"))
    return made


CASES = ("push-SIGTERM", "push-SIGINT", "copy-SIGTERM", "copy-SIGINT")


@pytest.mark.parametrize("case", CASES)
def test_cancel_mid_push_then_rerun_reuses_the_blobs(
    job: Job, tmp_path: Path, images: dict[str, tuple[Path, LayoutInfo]], case: str
) -> None:
    command, name = case.split("-")
    layout, info = images[case]
    first, second, third = info.layer_digests
    tag = f"cancel-{case.lower()}"
    report = tmp_path / "out" / "report.env"
    report.parent.mkdir()
    host, port = job.registry.url.removeprefix("http://").split(":")
    with Throttle((host, int(port))) as throttle, FaultProxy(throttle.url) as proxy:
        argv = _argv(job, command, layout, proxy.url, tag=tag, report=report)
        env = job.env(XACCT_REGISTRY_ENDPOINT=proxy.url, XACCT_PARALLELISM="2")
        running = Running.start(argv, env)
        # The signal lands with the first layer stored and the other two uploading.
        running.until(lambda: has_blob(job, first), "first layer stored")
        running.until(lambda: third in uploads(proxy), "third layer's upload")
        in_flight = not has_blob(job, second) and not has_blob(job, third)
        code, elapsed = running.cancel(name)
        job.outputs += [running.stdout, running.stderr]
        print(
            f"{case}: exit {code} {elapsed:.2f} s after the signal, {throttle.sent} bytes relayed"
        )

        assert in_flight, "the signal was meant to land with two uploads in flight"
        assert code == CODES[name], running.stderr
        assert elapsed < STOP_BOUND, f"{elapsed:.2f} s from {name} to exit"
        last = running.stderr.splitlines()[-1]
        assert last == (
            f"gitlab-xacct: {command} cancelled by {name}: no manifest was uploaded, nothing was "
            "tagged (a rerun reuses the blobs already uploaded)"
        )
        assert "Traceback" not in running.stderr
        assert running.stdout == ""
        assert manifest_puts(proxy) == 0
        assert tag not in tags(job)
        assert job.skopeo_inspect(f"{REPOSITORY}:{tag}").returncode != 0
        assert list(report.parent.iterdir()) == []  # no report, no temp file beside it

        # The rerun completes, uploading only what the registry lacks.
        stored = {d for d in (*info.layer_digests, info.config_digest) if has_blob(job, d)}
        assert first in stored
        missing = {second, third, info.config_digest} - stored
        assert missing
        proxy.reset_counts()
        throttle.rate = None
        rerun = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=180, check=False
        )
        job.outputs += [rerun.stdout, rerun.stderr]
        assert rerun.returncode == 0, rerun.stderr
        assert sorted(uploads(proxy)) == sorted(missing)
        assert {first, second, third, info.config_digest} <= blob_heads(proxy)
        assert manifest_puts(proxy) == 1
    assert tag in tags(job)
    assert job.inspect(f"{REPOSITORY}:{tag}")["Digest"] == info.manifest_digest
    if command == "push":
        assert f"XACCT_IMAGE_DIGEST={info.manifest_digest}" in report.read_text()


def _argv(
    job: Job, command: str, layout: Path, endpoint: str, *, tag: str, report: Path
) -> list[str]:
    if command == "push":
        return [CLI, "push", "--source", f"oci:{layout}:latest", "--tag", tag,
                "--repository", REPOSITORY, "--dotenv", str(report)]  # fmt: skip
    host = endpoint.removeprefix("http://")
    creds = f"{job.registry.username}:{job.registry.password}"
    return [CLI, "copy", f"oci:{layout}:latest", f"docker://{host}/{REPOSITORY}:{tag}",
            "--dest-creds", creds]  # fmt: skip


# ---- the AWS side: STS does not answer -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CODES))
@pytest.mark.parametrize("command", ["credentials", "login", "helper"])
def test_cancel_while_sts_hangs(job: Job, tmp_path: Path, command: str, name: str) -> None:
    written = tmp_path / "written"
    written.mkdir()
    with Silent() as sts:
        env = job.env(AWS_ENDPOINT_URL=sts.url, XACCT_CREDENTIAL_CACHE="false")
        if command == "helper":
            running = Running.start([HELPER, "get"], env, stdin=job.registry.host)
        elif command == "login":
            config = written / "config.json"
            running = Running.start([CLI, "login", "--docker-config", str(config)], env)
        else:
            output = written / "credentials.json"
            argv = [CLI, "credentials", "--format", "json", "--output", str(output)]
            running = Running.start(argv, env)
        running.until(lambda: sts.received > 0, "a request to STS")
        code, elapsed = running.cancel(name)
    job.outputs += [running.stdout, running.stderr]
    print(f"{command}-{name}: exit {code} {elapsed:.2f} s after the signal")

    assert code == CODES[name], running.stdout + running.stderr
    assert elapsed < STOP_BOUND, f"{elapsed:.2f} s from {name} to exit"
    assert "Traceback" not in running.stderr
    assert list(written.iterdir()) == []
    if command == "helper":  # a helper's caller reads its stdout: the error is said there
        assert running.stdout == f"docker-credential-xacct: cancelled by {name}\n"
    else:
        assert running.stderr.splitlines()[-1] == (
            f"gitlab-xacct: {command} cancelled by {name} before it finished"
        )
        assert running.stdout == ""
