"""Start and stop the local peers (patched moto, docker-registry) as subprocesses.

Every server binds 127.0.0.1, logs to a file in the caller's directory, is waited for with a
deadline and is stopped by its own pid: nothing here looks for or touches other processes.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_ACCOUNT = "111111111111"
STOP_TIMEOUT = 5.0


class StandinError(RuntimeError):
    """A stand-in did not start; the message names its log file."""


def free_port() -> int:
    # Tiny race between closing and the server binding; start_moto retries on a lost race.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """Terminate this one process, wait with a deadline, kill it if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Server:
    """A stand-in process: its log, its URL, stopped by its own pid."""

    process: subprocess.Popen[bytes]
    log_path: Path
    url: str
    _log_file: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        try:
            stop_process(self.process)
        finally:
            self._log_file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class MotoServer(Server):
    """moto_server with AWS-like cross-account AssumeRole (tests/standins/moto_xacct.py)."""


@dataclass
class Registry(Server):
    """docker-registry with htpasswd basic auth over plain HTTP."""

    host: str = field(kw_only=True)
    username: str = field(kw_only=True)
    password: str = field(kw_only=True, repr=False)


def _spawn(
    argv: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        argv,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )
    return process, log_file


def loopback_http() -> requests.Session:
    """HTTP to 127.0.0.1 only: ignore HTTP(S)_PROXY and netrc from the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


def _wait_http(
    process: subprocess.Popen[bytes], url: str, accept: set[int], timeout: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    http = loopback_http()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StandinError(f"{url} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if http.get(url, timeout=1).status_code in accept:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise StandinError(f"{url} not ready after {timeout}s; log {log}:\n{_tail(log)}")


def start_moto(workdir: Path, *, timeout: float = 20.0, attempts: int = 3) -> MotoServer:
    """Run the patched moto server on a free port, BUILD (111111111111) as default account."""
    workdir.mkdir(parents=True, exist_ok=True)
    # The server is AWS, not an AWS client: no AWS_* of the caller's (an AWS_PROFILE naming a
    # missing profile breaks moto's own boto3 use). Auth starts off so setup can run first.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    env["MOTO_ACCOUNT_ID"] = BUILD_ACCOUNT
    last_error: StandinError | None = None
    for attempt in range(attempts):
        port = free_port()
        log_path = workdir / f"moto-{port}.log"
        argv = [sys.executable, "-m", "tests.standins.moto_xacct", "-H", "127.0.0.1"]
        # cwd is the repository so that "python -m tests.standins..." finds the package.
        process, log_file = _spawn([*argv, "-p", str(port)], log_path, env, cwd=REPO_ROOT)
        url = f"http://127.0.0.1:{port}"
        server = MotoServer(process, log_path, url, log_file)
        try:
            _wait_http(process, f"{url}/moto-api/data.json", {200}, timeout, log_path)
        except StandinError as error:
            server.stop()
            last_error = error
            if "Address already in use" not in _tail(log_path) or attempt == attempts - 1:
                raise
            continue
        return server
    raise last_error or StandinError("moto did not start")


@dataclass(frozen=True)
class RegistryProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    host: str  # 127.0.0.1:PORT


def spawn_registry(workdir: Path, auth: str, *, timeout: float = 10.0) -> RegistryProcess:
    """Run docker-registry with the `auth:` section given (YAML, indented two spaces) on a
    port the kernel picks, read from its log; ready once /v2/ answers 401 without credentials.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {workdir / 'registry-data'}\n"
        "  delete:\n    enabled: true\n"
        "http:\n  addr: 127.0.0.1:0\n  secret: local-standin\n"
        f"auth:\n{auth}"
    )
    log_path = workdir / "registry.log"
    env = {**os.environ, "REGISTRY_HTTP_ADDR": "127.0.0.1:0"}
    process, log_file = _spawn(["docker-registry", "serve", str(config)], log_path, env)
    deadline = time.monotonic() + timeout
    port: str | None = None
    while port is None and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace"))
        port = found.group(1) if found else None
        if port is None:
            time.sleep(0.02)
    if port is None:
        stop_process(process)
        log_file.close()
        raise StandinError(
            f"docker-registry did not report its port; log {log_path}:\n{_tail(log_path)}"
        )
    try:
        # Unauthenticated /v2/ answers 401 once the HTTP server is up (Basic or Bearer).
        wait = max(deadline - time.monotonic(), 1.0)
        _wait_http(process, f"http://127.0.0.1:{port}/v2/", {401}, wait, log_path)
    except StandinError:
        stop_process(process)
        log_file.close()
        raise
    return RegistryProcess(process, log_path, log_file, f"127.0.0.1:{port}")


def start_registry(
    workdir: Path,
    username: str = "AWS",
    password: str = "222222222222-auth-token",  # noqa: S107 - moto's fixed fake ECR token
    *,
    timeout: float = 10.0,
) -> Registry:
    """Run docker-registry on a port the kernel picks; the port is read from its log."""
    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = workdir / "htpasswd"
    # bcrypt is the only hash docker-registry's htpasswd backend accepts.
    entry = subprocess.run(
        ["htpasswd", "-Bbn", username, password],
        check=True,
        capture_output=True,
        timeout=30,
    )
    htpasswd.write_bytes(entry.stdout.strip() + b"\n")
    started = spawn_registry(
        workdir, f"  htpasswd:\n    realm: standin\n    path: {htpasswd}\n", timeout=timeout
    )
    return Registry(
        started.process,
        started.log_path,
        f"http://{started.host}",
        started.log_file,
        host=started.host,
        username=username,
        password=password,
    )
