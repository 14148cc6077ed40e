"""One trust store and one proxy dialect for every connection of a run: the registry's session
and botocore's STS client, against a private CA (a CA and a leaf made here) and a real proxy
(tinyproxy, on loopback)."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import botocore.exceptions
import botocore.session
import pytest

from gitlab_xacct.aws.credentials import client, new_session
from gitlab_xacct.registry.transport import Transport
from gitlab_xacct.registry.transport_errors import TLSError
from tests.standins.servers import stop_process

TIMEOUT = (5.0, 5.0)
_IDENTITY = (
    b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    b"<GetCallerIdentityResult><Arn>arn:aws:iam::111111111111:user/ci</Arn>"
    b"<UserId>AIDAEXAMPLE</UserId><Account>111111111111</Account></GetCallerIdentityResult>"
    b"<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
)
_VARIABLES = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
_PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@dataclass
class Peer:
    """A TLS server with a leaf of a private CA: STS's GetCallerIdentity for POST, a registry's
    /v2/ for GET."""

    ca: Path
    port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(_IDENTITY, "text/xml")

    def do_GET(self) -> None:
        self._answer(b"{}", "application/json")

    def _answer(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    folder = tmp_path_factory.mktemp("private-ca")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    leaf, leaf_key, request = folder / "leaf.pem", folder / "leaf.key", folder / "leaf.csr"
    extensions = folder / "leaf.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             "/CN=Test Private CA", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(leaf_key), "-out", str(request))  # fmt: skip
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(extensions),
             "-out", str(leaf))  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(leaf, leaf_key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Peer(ca, int(server.server_address[1]))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Tinyproxy:
    url: str
    log: Path

    def connects(self) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return re.findall(r"Established connection to host \"([^\"]+)\"", text)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    port = _free_port()
    log = tmp_path / "tinyproxy.log"
    config = tmp_path / "tinyproxy.conf"
    config.write_text(
        f'Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile "{log}"\nLogLevel Connect\n'
        "MaxClients 16\nAllow 127.0.0.1\n"
    )
    process = subprocess.Popen(
        ["tinyproxy", "-d", "-c", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"tinyproxy did not start: {log.read_text(errors='replace')}")
        yield Tinyproxy(f"http://127.0.0.1:{port}", log)
    finally:
        stop_process(process)


@contextmanager
def _environment(monkeypatch: pytest.MonkeyPatch, **values: str) -> Iterator[dict[str, str]]:
    """The process environment botocore reads, and the same values as the settings' mapping."""
    with monkeypatch.context() as patch:
        for name in (*_VARIABLES, *_PROXIES, "NO_PROXY", "no_proxy"):
            patch.delenv(name, raising=False)
        for name, value in values.items():
            patch.setenv(name, value)
        yield values


def _identity(peer: Peer) -> str:
    session = new_session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret-example")
    return client(session, "sts", "us-east-1").get_caller_identity()["Account"]


def _registry(peer: Peer, env: dict[str, str]) -> int:
    transport = Transport(user_agent="test", env=env)
    try:
        return transport.request("GET", f"{peer.url}/v2/", timeout=TIMEOUT).status_code
    finally:
        transport.close()


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"])
def test_a_private_ca_is_trusted_by_sts_and_the_registry_alike(
    peer: Peer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """SSL_CERT_FILE (the system store moved), AWS_CA_BUNDLE or REQUESTS_CA_BUNDLE: whichever
    names the private CA, both kinds of connection trust it (botocore's bundled CA file is
    never used)."""
    with _environment(
        monkeypatch, **{variable: str(peer.ca), "AWS_ENDPOINT_URL_STS": peer.url}
    ) as env:
        assert _identity(peer) == "111111111111"
        assert _registry(peer, env) == 200


def test_without_the_private_ca_both_refuse_the_certificate(
    peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _environment(monkeypatch, AWS_ENDPOINT_URL_STS=peer.url) as env:
        with pytest.raises(botocore.exceptions.SSLError):
            _identity(peer)
        with pytest.raises(TLSError) as caught:
            _registry(peer, env)
        assert caught.value.certificate


@pytest.mark.parametrize(
    ("no_proxy", "proxied"), [("10.0.0.0/8", True), ("127.0.0.0/8", False), ("", True)]
)
def test_no_proxy_decides_alike_for_sts_and_the_registry(
    peer: Peer,
    tinyproxy: Tinyproxy,
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
    proxied: bool,
) -> None:
    """A CIDR range in NO_PROXY (which botocore's own reading does not understand) sends STS
    direct exactly when it sends the registry direct."""
    with _environment(
        monkeypatch,
        HTTPS_PROXY=tinyproxy.url,
        NO_PROXY=no_proxy,
        SSL_CERT_FILE=str(peer.ca),
        AWS_ENDPOINT_URL_STS=peer.url,
    ) as env:
        assert _identity(peer) == "111111111111"
        after_sts = len(tinyproxy.connects())
        assert _registry(peer, env) == 200
        after_registry = len(tinyproxy.connects())
    assert (after_sts, after_registry) == ((1, 2) if proxied else (0, 0)), tinyproxy.connects()
