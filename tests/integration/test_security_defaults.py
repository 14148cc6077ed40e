"""Security defaults, proved against real peers: TLS is verified and never silently downgraded,
files that hold credentials are private from their first byte, reports hold none, and reading an
archive never writes outside its temporary folder.

No DNS is needed for a non-loopback host: the CLI reaches `r.example.org` through a CONNECT
proxy on loopback (HTTPS_PROXY, as a corporate runner would), which tunnels every connection to
a docker-registry serving TLS with a self-signed certificate for that name. The proxy records
every request, so a plain-HTTP retry would be seen.
"""

from __future__ import annotations

import gzip
import os
import re
import select
import socket
import socketserver
import ssl
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.tarindex import open_archive
from gitlab_xacct.secrets import Secret
from gitlab_xacct.token_cache import CachedToken, CacheKey, TokenCache
from tests.imagefactory import TarEntry, make_layer, tar_bytes, write_oci_layout
from tests.integration.conftest import CLI, Job
from tests.standins.servers import StandinError, stop_process

HOST = "r.example.org"  # never resolved: the proxy tunnels it to the TLS registry
TUNNEL_IDLE = 30.0


# ---- a TLS registry with a self-signed certificate ---------------------------------------


@dataclass
class TlsRegistry:
    process: subprocess.Popen[bytes]
    port: int
    storage: Path
    log: Path

    def blobs(self) -> set[str]:
        return {p.name for p in self.storage.rglob("*") if p.is_file()}


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRegistry]:
    """docker-registry over TLS (`http.tls`), anonymous, on a port the kernel picks."""
    work = tmp_path_factory.mktemp("tls-registry")
    cert, key = _self_signed(work)
    config = work / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
        "http:\n  addr: 127.0.0.1:0\n  secret: local-standin\n"
        f"  tls:\n    certificate: {cert}\n    key: {key}\n"
    )
    log = work / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        port = _wait_for_port(process, log)
        yield TlsRegistry(process, port, work / "data", log)
    finally:
        stop_process(process)


def _wait_for_port(process: subprocess.Popen[bytes], log: Path, timeout: float = 10.0) -> int:
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if found:
            url = f"https://127.0.0.1:{found[1]}/v2/"
            try:
                with urllib.request.urlopen(url, context=unverified, timeout=2):
                    return int(found[1])
            except OSError:
                pass
        time.sleep(0.05)
    raise StandinError(f"the TLS registry did not start: {log.read_text(errors='replace')}")


# ---- a CONNECT proxy that records every request ------------------------------------------


@dataclass
class Proxy:
    target_port: int
    requests: list[str] = field(default_factory=list)
    server: socketserver.ThreadingTCPServer | None = None
    refusal: bytes = b""  # the answer to every CONNECT instead of a tunnel (as squid denies)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def plain(self) -> list[str]:
        """Requests that were not a CONNECT tunnel: plain HTTP sent through the proxy."""
        return [r for r in self.requests if not r.startswith("CONNECT ")]

    def tunnels(self) -> list[str]:
        return [r for r in self.requests if r.startswith("CONNECT ")]


def _handler(proxy: Proxy) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        timeout = TUNNEL_IDLE

        def handle(self) -> None:
            line = self.rfile.readline(8192).decode("latin-1").strip()
            while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass
            proxy.requests.append(line)
            if not line.startswith("CONNECT "):
                self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            if proxy.refusal:
                self.wfile.write(proxy.refusal)
                return
            with socket.create_connection(("127.0.0.1", proxy.target_port), timeout=5) as up:
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                _pipe(self.connection, up)

    return Handler


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until one side closes or both are idle for TUNNEL_IDLE seconds."""
    sockets = [client, upstream]
    while True:
        ready, _, _ = select.select(sockets, [], [], TUNNEL_IDLE)
        if not ready:
            return
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            (upstream if sock is client else client).sendall(data)


@pytest.fixture
def proxy(tls_registry: TlsRegistry) -> Iterator[Proxy]:
    found = Proxy(tls_registry.port)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(found))
    server.daemon_threads = True
    found.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _through(proxy: Proxy, env: dict[str, str]) -> dict[str, str]:
    """Every HTTP(S) connection through the proxy but loopback ones (moto, the HTTP registry)."""
    return {
        **env,
        "HTTPS_PROXY": proxy.url,
        "HTTP_PROXY": proxy.url,
        "https_proxy": proxy.url,
        "http_proxy": proxy.url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def _layout(root: Path, text: str) -> Path:
    layout = root / "layout"
    write_oci_layout(layout, [make_layer({"tls.txt": text.encode()})])
    return layout


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("gitlab-xacct: error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# ---- TLS ----------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["DEST", "SRC"])
def test_untrusted_certificate_is_an_error_never_plain_http(
    job: Job, proxy: Proxy, tls_registry: TlsRegistry, tmp_path: Path, side: str
) -> None:
    before = tls_registry.blobs()
    remote = f"docker://{HOST}/team/app:tls"
    local = f"docker://{job.registry.host}/team/app:from-tls"
    src, dest = (
        (f"oci:{_layout(tmp_path, side)}:latest", remote) if side == "DEST" else (remote, local)
    )
    env = _through(proxy, job.env(REG_LOGIN=f"AWS:{job.registry.password}"))
    env["XACCT_DEST_CREDS"] = "REG_LOGIN"

    result = job.run("copy", src, dest, env=env)

    assert result.returncode == 4, result.stderr
    assert f"TLS verification failed for {HOST}" in _error_line(result.stderr)
    assert proxy.tunnels(), "the CLI never reached the proxy: the test proves nothing"
    assert proxy.plain() == [], "a plain-HTTP request followed the TLS failure"
    assert len(proxy.tunnels()) == 1, "an untrusted certificate is not transient: no retry"
    assert tls_registry.blobs() == before
    assert result.stdout == ""


def test_a_listed_insecure_host_gets_unverified_tls_not_plain_http(
    job: Job, proxy: Proxy, tls_registry: TlsRegistry, tmp_path: Path
) -> None:
    """The same host, listed by the user: the copy goes through (so the refusal above was TLS
    verification's doing) and still over TLS."""
    before = tls_registry.blobs()
    source = f"oci:{_layout(tmp_path, 'listed')}:latest"

    result = job.run(
        "copy", source, f"docker://{HOST}/team/app:listed", "--insecure-registry", HOST,
        env=_through(proxy, job.env()),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{HOST}/team/app:listed@sha256:")
    assert "TLS verification is off for r.example.org" in result.stderr
    assert proxy.plain() == []
    assert tls_registry.blobs() > before


def test_push_to_an_untrusted_registry_endpoint_is_refused(
    job: Job, proxy: Proxy, tls_registry: TlsRegistry, tmp_path: Path
) -> None:
    """The ECR path: moto answers directly (loopback), the registry endpoint is a remote name
    whose certificate is not trusted; XACCT_INSECURE_REGISTRIES does not weaken ECR."""
    before = tls_registry.blobs()
    env = job.env(
        XACCT_SOURCE=f"oci:{_layout(tmp_path, 'push')}:latest",
        XACCT_REGISTRY_ENDPOINT=f"https://{HOST}",
        XACCT_INSECURE_REGISTRIES=HOST,
        XACCT_DOTENV=str(tmp_path / "xacct.env"),
    )

    result = job.push(env=_through(proxy, env))

    assert result.returncode == 4, result.stderr
    assert f"TLS verification failed for {HOST}" in _error_line(result.stderr)
    assert len(proxy.tunnels()) == 1
    assert proxy.plain() == []
    assert tls_registry.blobs() == before
    assert not (tmp_path / "xacct.env").exists()


def test_loopback_registry_with_an_untrusted_certificate_is_not_downgraded(
    job: Job, tls_registry: TlsRegistry, tmp_path: Path
) -> None:
    """Loopback may use plain HTTP only when it does not speak TLS; a certificate that fails
    verification is an error. The registry's log shows no plain-HTTP request arrived."""
    before = tls_registry.blobs()
    log_before = tls_registry.log.read_text(errors="replace")
    host = f"127.0.0.1:{tls_registry.port}"

    result = job.run(
        "copy", f"oci:{_layout(tmp_path, 'loopback')}:latest", f"docker://{host}/team/app:lo"
    )

    assert result.returncode == 4, result.stderr
    assert f"TLS verification failed for {host}" in _error_line(result.stderr)
    new_log = tls_registry.log.read_text(errors="replace")[len(log_before) :]
    assert "HTTP request to an HTTPS server" not in new_log
    assert tls_registry.blobs() == before


_DENIED = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_AUTH_WANTED = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=p\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


def _only_https_proxy(env: dict[str, str], url: str) -> dict[str, str]:
    """HTTPS_PROXY for everything but moto: the loopback registry too, as curl would."""
    return {**env, "HTTPS_PROXY": url, "https_proxy": url, "NO_PROXY": "", "no_proxy": ""}


@pytest.mark.parametrize("listening", [True, False], ids=["refuses-connect", "not-listening"])
def test_a_loopback_tls_registry_behind_a_failing_proxy_is_never_sent_plain_http(
    job: Job, proxy: Proxy, tls_registry: TlsRegistry, tmp_path: Path, listening: bool
) -> None:
    """Stock squid denies CONNECT to localhost: the failure names the proxy and its answer, and
    nothing goes around it in clear text to the port that speaks TLS."""
    proxy.refusal = _DENIED
    url = proxy.url if listening else f"http://127.0.0.1:{_free_port()}"
    log_before = tls_registry.log.read_text(errors="replace")
    host = f"127.0.0.1:{tls_registry.port}"

    result = job.run(
        "copy", f"oci:{_layout(tmp_path, 'proxied')}:latest", f"docker://{host}/team/app:px",
        env={**_only_https_proxy(job.env(), url), "XACCT_RETRIES": "0"},
    )  # fmt: skip

    assert result.returncode == 5, result.stderr
    line = _error_line(result.stderr)
    proxy_name = url.removeprefix("http://")
    if listening:
        assert f"the proxy {proxy_name} refused to connect to {host} (HTTP 403 Forbidden)" in line
        assert proxy.tunnels()
        assert proxy.plain() == []
    else:
        assert f"the proxy {proxy_name}: connection refused" in line
    new_log = tls_registry.log.read_text(errors="replace")[len(log_before) :]
    assert "HTTP request to an HTTPS server" not in new_log
    assert "http: TLS handshake error" not in new_log, "something reached the registry"


def test_a_proxys_407_is_final_not_retried(job: Job, proxy: Proxy, tmp_path: Path) -> None:
    proxy.refusal = _AUTH_WANTED
    result = job.run(
        "copy", f"oci:{_layout(tmp_path, '407')}:latest", f"docker://{HOST}/team/app:auth",
        env=_only_https_proxy(job.env(), proxy.url),
    )  # fmt: skip

    assert result.returncode == 5, result.stderr
    line = _error_line(result.stderr)
    assert f"refused to connect to {HOST}:443 (HTTP 407 Proxy Authentication Required)" in line
    assert "trying again" not in result.stderr
    assert len(proxy.tunnels()) == 1, "a 407 is an answer, and a final one"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- files holding credentials ------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run_umask0(job: Job, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI with umask 000: anything not chmod-ed on purpose would come out world-writable."""
    result = subprocess.run(
        [CLI, *argv],
        env=env, capture_output=True, text=True, timeout=180, check=False, umask=0,
    )  # fmt: skip
    job.outputs += [result.stdout, result.stderr]
    return result


def _no_temp_files(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_login_docker_config_is_0600_in_new_0700_folders_under_umask_0(
    job: Job, tmp_path: Path
) -> None:
    config = job.home / "fresh" / "docker" / "config.json"

    result = _run_umask0(job, "login", "--docker-config", str(config), env=job.env())

    assert result.returncode == 0, result.stderr
    assert _mode(config) == 0o600
    assert _mode(config.parent) == 0o700
    assert _mode(config.parent.parent) == 0o700
    _no_temp_files(config.parent)


def test_aws_profile_files_are_0600_and_a_symlinked_file_stays_a_link(
    job: Job, tmp_path: Path
) -> None:
    """A dotfile manager's link (~/.aws/credentials -> dotfiles/...) survives: the target is
    updated in place of the link, 0600, and its other profiles are kept."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "aws-credentials"
    target.write_text("[other]\naws_access_key_id = AKIAOTHER\n")
    target.chmod(0o644)
    aws = job.home / ".aws"
    aws.mkdir()
    (aws / "credentials").symlink_to(target)

    result = _run_umask0(
        job, "credentials", "--format", "aws-profile", "--profile", "ourthing", env=job.env()
    )

    assert result.returncode == 0, result.stderr
    assert (aws / "credentials").is_symlink()
    text = target.read_text()
    assert "[other]" in text
    assert "[ourthing]" in text
    assert "aws_secret_access_key" in text
    assert _mode(target) == 0o600
    assert _mode(aws / "config") == 0o600
    _no_temp_files(aws)
    _no_temp_files(dotfiles)


def test_aws_profile_in_a_missing_folder_is_created_0700(job: Job) -> None:
    result = _run_umask0(job, "credentials", "--format", "aws-profile", env=job.env())

    assert result.returncode == 0, result.stderr
    assert _mode(job.home / ".aws") == 0o700
    assert _mode(job.home / ".aws" / "credentials") == 0o600
    assert _mode(job.home / ".aws" / "config") == 0o600


@pytest.mark.parametrize("fmt", ["dotenv", "json", "env"])
def test_credentials_output_file_is_0600_under_umask_0(job: Job, tmp_path: Path, fmt: str) -> None:
    output = tmp_path / "out" / f"aws.{fmt}"
    output.parent.mkdir()

    result = _run_umask0(
        job, "credentials", "--format", fmt, "--output", str(output), env=job.env()
    )

    assert result.returncode == 0, result.stderr
    assert _mode(output) == 0o600
    assert "ASIA" in output.read_text() or "aws_access_key_id" in output.read_text().lower()
    _no_temp_files(output.parent)


def test_token_cache_is_0600_in_a_0700_folder_under_umask_0(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "cache" / "gitlab-xacct")
    now = datetime.now(UTC)
    key = CacheKey("arn:aws:iam::222222222222:role/R", "222222222222", "eu-west-1", "r.example.org")
    token = CachedToken(key, "AWS", Secret("sentinel-token"), now + timedelta(hours=12))
    old = os.umask(0)
    try:
        assert cache.put(token, now)
    finally:
        os.umask(old)

    assert _mode(cache.path) == 0o600
    assert _mode(cache.directory) == 0o700
    assert _mode(cache.directory.parent) == 0o700
    _no_temp_files(cache.directory)


def test_the_push_report_holds_the_image_and_nothing_else(job: Job, tmp_path: Path) -> None:
    report = tmp_path / "xacct.env"
    env = job.env(
        XACCT_SOURCE=f"oci:{_layout(tmp_path, 'report')}:latest",
        XACCT_DOTENV=str(report),
        XACCT_TAGS="report",
    )

    result = job.push(env=env)

    assert result.returncode == 0, result.stderr
    pairs = dict(line.split("=", 1) for line in report.read_text().splitlines())
    assert set(pairs) == {
        "XACCT_IMAGE_URI", "XACCT_IMAGE_DIGEST", "XACCT_IMAGE_TAGS", "XACCT_IMAGE_URIS"
    }  # fmt: skip
    digest = r"sha256:[0-9a-f]{64}"
    assert re.fullmatch(
        rf"{re.escape(job.registry.host)}/team/app@{digest}", pairs["XACCT_IMAGE_URI"]
    )
    assert re.fullmatch(digest, pairs["XACCT_IMAGE_DIGEST"])
    assert pairs["XACCT_IMAGE_TAGS"] == "report"
    assert pairs["XACCT_IMAGE_URIS"] == pairs["XACCT_IMAGE_URI"]
    for secret in job.secrets():
        assert secret not in report.read_text()


# ---- archive extraction ---------------------------------------------------------------------


def _gz_archive(path: Path, entries: list[TarEntry]) -> Path:
    path.write_bytes(gzip.compress(tar_bytes(entries), mtime=0))
    return path


def _layout_entries(root: Path) -> list[TarEntry]:
    layout = _layout(root, "extraction")
    return [
        TarEntry(p.relative_to(layout).as_posix(), p.read_bytes())
        for p in sorted(layout.rglob("*"))
        if p.is_file()
    ]


def _all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_extraction_writes_numbered_regular_files_inside_its_folder_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip archive must be unpacked: a symlink to a folder outside, then a file "through"
    it, a hard link, and a link out of the tree: nothing of it becomes a path on disk."""
    scratch_parent, outside = tmp_path / "tmp", tmp_path / "outside"
    scratch_parent.mkdir()
    outside.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_parent))
    hostile = [
        TarEntry("escape", kind="symlink", link=str(outside)),
        TarEntry("escape/planted", b"written through a symlink\n"),
        TarEntry("up", kind="symlink", link="../../../../outside"),
        TarEntry("hard", kind="hardlink", link=str(outside / "x")),
    ]
    archive = _gz_archive(tmp_path / "image.tar.gz", [*hostile, *_layout_entries(tmp_path)])
    before = _all_files(tmp_path)

    with open_archive(archive, lambda _name: True) as files:
        (scratch,) = scratch_parent.iterdir()
        unpacked = list(scratch.iterdir())
        assert unpacked
        assert all(p.name.isdigit() and p.is_file() and not p.is_symlink() for p in unpacked)
        section = files.get("escape/planted")
        assert section is not None
        assert section.path.parent == scratch
        with pytest.raises(ConfigError, match="outside the archive"):
            files.get("up")

    assert list(outside.iterdir()) == []
    assert list(scratch_parent.iterdir()) == []
    assert _all_files(tmp_path) == before


@pytest.mark.parametrize(
    "hostile",
    [
        TarEntry("../../escaped", b"x"),
        TarEntry("blobs/../../../escaped", b"x"),
        TarEntry("/ABSOLUTE/escaped", b"x"),
    ],
    ids=["dot-dot", "dot-dot-inside", "absolute"],
)
def test_extraction_refuses_unsafe_names_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: TarEntry
) -> None:
    scratch_parent = tmp_path / "tmp"
    scratch_parent.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_parent))
    name = hostile.name.replace("/ABSOLUTE", str(tmp_path))
    entries = [*_layout_entries(tmp_path), TarEntry(name, hostile.data)]
    archive = _gz_archive(tmp_path / "image.tar.gz", entries)
    before = _all_files(tmp_path)

    with pytest.raises(ConfigError, match="unsafe path"), open_archive(archive, lambda _n: True):
        pass

    assert list(scratch_parent.iterdir()) == []
    assert _all_files(tmp_path) == before
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path.parent / "escaped").exists()


def test_uncompressed_archives_are_never_extracted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch_parent = tmp_path / "tmp"
    scratch_parent.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_parent))
    archive = tmp_path / "image.tar"
    archive.write_bytes(tar_bytes(_layout_entries(tmp_path)))

    with open_archive(archive, lambda _name: True) as files:
        assert list(scratch_parent.iterdir()) == []
        section = files.get("index.json")
        assert section is not None
        assert section.path == archive

    with tarfile.open(archive) as check:  # the archive itself is untouched
        assert "index.json" in check.getnames()
