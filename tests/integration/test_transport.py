"""The registry client's HTTP transport on real loopback sockets: keep-alive pooling, streamed
bodies, redirects that drop credentials across hosts, timeouts told apart, TLS verified or not,
proxies (forward and CONNECT) and NO_PROXY."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitlab_xacct import network
from gitlab_xacct.errors import ConfigError, PushError
from gitlab_xacct.network import bypasses, proxy_for
from gitlab_xacct.registry.transport import Transport
from gitlab_xacct.registry.transport_errors import (
    ConnectTimeout,
    ReadTimeout,
    TLSError,
    TransportError,
)

TIMEOUT = (2.0, 2.0)


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int  # the client port: one per TCP connection


@dataclass
class Peer:
    """A loopback HTTP/1.1 server whose answers a test sets; it records every request."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def _handler(peer: Peer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            peer.seen.append(
                Seen(self.command, self.path, dict(self.headers.items()), body,
                     self.client_address[1])
            )  # fmt: skip
            key = self.path.split("?", 1)[0]
            if "://" in key:  # a forward proxy's absolute target
                key = "/" + key.split("/", 3)[3]
            status, headers, content = peer.routes.get(key, (404, {}, b"not here"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_CONNECT = _any

        def log_message(self, *_: object) -> None:
            pass

    return Handler


@contextmanager
def _serving(tls: ssl.SSLContext | None = None) -> Iterator[Peer]:
    """A Peer on a free loopback port (over TLS with `tls`), stopped with a bounded join."""
    found = Peer()
    found.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    found.server.daemon_threads = True
    if tls is not None:
        found.server.socket = tls.wrap_socket(found.server.socket, server_side=True)
    thread = threading.Thread(target=found.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()
        thread.join(timeout=5)


@contextmanager
def _one_connection(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback listener whose first connection `answer` handles; yields its port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                answer(connection)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield int(listener.getsockname()[1])
        thread.join(timeout=10)


@pytest.fixture
def peer() -> Iterator[Peer]:
    with _serving() as found:
        yield found


@pytest.fixture
def other(peer: Peer) -> Iterator[Peer]:
    """A second server: another origin."""
    with _serving() as found:
        yield found


@pytest.fixture
def transport() -> Iterator[Transport]:
    made = Transport(user_agent="test/1", env={})
    yield made
    made.close()


# ---- requests and connections ---------------------------------------------------------------


def test_keep_alive_connections_are_reused(peer: Peer, transport: Transport) -> None:
    peer.routes["/v2/"] = (200, {"Docker-Distribution-Api-Version": "registry/2.0"}, b"{}")
    for _ in range(3):
        response = transport.request("GET", f"{peer.url}/v2/", timeout=TIMEOUT)
        assert (response.status_code, response.content) == (200, b"{}")
        assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    head = transport.request("HEAD", f"{peer.url}/v2/", timeout=TIMEOUT)
    assert head.status_code == 200
    assert len({s.connection for s in peer.seen}) == 1
    assert peer.seen[0].headers["User-Agent"] == "test/1"


def test_plain_http_never_loads_the_trust_store(
    peer: Peer, transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the system store is ~40 ms of CPU: a run whose registries speak plain HTTP
    (loopback, a listed insecure host) should not pay it."""
    built: list[bool] = []
    real = network.ssl_context

    def recording(env: Mapping[str, str], *, verify: bool = True) -> ssl.SSLContext:
        built.append(verify)
        return real(env, verify=verify)

    monkeypatch.setattr(network, "ssl_context", recording)
    peer.routes["/v2/"] = (200, {}, b"{}")
    assert transport.request("GET", f"{peer.url}/v2/", timeout=TIMEOUT).status_code == 200
    assert built == []
    assert peer.seen[0].headers["Host"] == peer.host


def test_a_connection_the_peer_closed_is_not_reused(peer: Peer, transport: Transport) -> None:
    peer.routes["/bye"] = (200, {"Connection": "close"}, b"bye")
    peer.routes["/v2/"] = (200, {}, b"{}")
    assert transport.request("GET", f"{peer.url}/bye", timeout=TIMEOUT).content == b"bye"
    assert transport.request("GET", f"{peer.url}/v2/", timeout=TIMEOUT).status_code == 200
    assert len({s.connection for s in peer.seen}) == 2


def test_a_streamed_body_goes_with_its_length(peer: Peer, transport: Transport) -> None:
    class Pieces:
        def __len__(self) -> int:
            return 6

        def __iter__(self) -> Iterator[bytes]:
            yield from (b"abc", b"def")

    peer.routes["/up"] = (201, {"Location": "/v2/x"}, b"")
    response = transport.request("PUT", f"{peer.url}/up?digest=d", body=Pieces(), timeout=TIMEOUT)
    assert response.status_code == 201
    (seen,) = peer.seen
    assert (seen.target, seen.body, seen.headers["Content-Length"]) == (
        "/up?digest=d",
        b"abcdef",
        "6",
    )


def test_a_post_without_a_body_says_so(peer: Peer, transport: Transport) -> None:
    peer.routes["/start"] = (202, {}, b"")
    transport.request("POST", f"{peer.url}/start", timeout=TIMEOUT)
    assert peer.seen[0].headers["Content-Length"] == "0"


def test_an_error_of_the_body_source_passes_through_and_drops_the_connection(
    peer: Peer, transport: Transport
) -> None:
    class Corrupt(Exception):
        pass

    class Broken:
        def __len__(self) -> int:
            return 10

        def __iter__(self) -> Iterator[bytes]:
            yield b"12345"
            raise Corrupt

    peer.routes["/v2/"] = (200, {}, b"{}")
    transport.request("GET", f"{peer.url}/v2/", timeout=TIMEOUT)
    with pytest.raises(Corrupt):
        transport.request("PUT", f"{peer.url}/up", body=Broken(), timeout=TIMEOUT)
    transport.request("GET", f"{peer.url}/v2/", timeout=TIMEOUT)
    gets = [s.connection for s in peer.seen if s.method == "GET"]
    assert gets[0] != gets[1], "the half-sent connection went back to the pool"


def test_a_streamed_answer_is_read_into_the_callers_buffer(
    peer: Peer, transport: Transport
) -> None:
    peer.routes["/blob"] = (200, {}, b"x" * 100_000)
    response = transport.request("GET", f"{peer.url}/blob", timeout=TIMEOUT, stream=True)
    buffer = bytearray(65536)
    total = 0
    while count := response.readinto(buffer):
        total += count
    assert total == 100_000
    response.close()
    transport.request("GET", f"{peer.url}/blob", timeout=TIMEOUT)
    assert len({s.connection for s in peer.seen}) == 1, "a body read to its end frees the line"


@pytest.mark.parametrize("stream", [True, False])
def test_an_answer_cut_off_mid_body_is_a_transport_error(
    transport: Transport, stream: bool
) -> None:
    """A connection closed before the Content-Length is never taken for the end of the body."""

    def cut(connection: socket.socket) -> None:
        connection.recv(4096)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)

    with _one_connection(cut) as port, pytest.raises(TransportError, match="broke off"):
        _drain(transport, f"http://127.0.0.1:{port}/blob", stream=stream)


def _drain(transport: Transport, url: str, *, stream: bool) -> int:
    response = transport.request("GET", url, timeout=TIMEOUT, stream=stream)
    total = 0
    while count := response.readinto(bytearray(4096)):
        total += count
    return total


# ---- redirects -----------------------------------------------------------------------------


def test_redirects_are_followed_for_get_and_credentials_stay_home(
    peer: Peer, other: Peer, transport: Transport
) -> None:
    peer.routes["/v2/a/blobs/d"] = (307, {"Location": f"{other.url}/storage/d"}, b"")
    peer.routes["/v2/a/blobs/same"] = (307, {"Location": "/v2/a/blobs/there"}, b"")
    peer.routes["/v2/a/blobs/there"] = (200, {}, b"here")
    other.routes["/storage/d"] = (200, {}, b"blob bytes")
    secret = {"Authorization": "Bearer sentinel-token"}

    away = transport.request("GET", f"{peer.url}/v2/a/blobs/d", headers=secret,
                             timeout=TIMEOUT, allow_redirects=True)  # fmt: skip
    home = transport.request("GET", f"{peer.url}/v2/a/blobs/same", headers=secret,
                             timeout=TIMEOUT, allow_redirects=True)  # fmt: skip

    assert (away.content, away.url) == (b"blob bytes", f"{other.url}/storage/d")
    assert "Authorization" not in other.seen[0].headers
    assert home.content == b"here"
    assert peer.seen[-1].headers["Authorization"] == "Bearer sentinel-token"


def test_redirects_are_not_followed_unless_asked(peer: Peer, transport: Transport) -> None:
    peer.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    assert transport.request("PUT", f"{peer.url}/loop", timeout=TIMEOUT).status_code == 302
    with pytest.raises(TransportError, match="redirects"):
        transport.request("GET", f"{peer.url}/loop", timeout=TIMEOUT, allow_redirects=True)
    assert len(peer.seen) == 1 + 11


# ---- no answer ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_refused_and_silent_peers_are_told_apart(transport: Transport) -> None:
    with pytest.raises(TransportError) as refused:
        transport.request("GET", f"http://127.0.0.1:{_free_port()}/v2/", timeout=TIMEOUT)
    assert refused.value.reason == "connection refused"
    assert not isinstance(refused.value, ConnectTimeout | ReadTimeout)

    with socket.socket() as silent:  # accepts (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v2/"
        with pytest.raises(ReadTimeout):
            transport.request("GET", url, timeout=(2.0, 0.3))


def test_a_peer_that_closes_without_answering(transport: Transport) -> None:
    def hang_up(connection: socket.socket) -> None:
        connection.recv(4096)

    with _one_connection(hang_up) as port, pytest.raises(TransportError) as caught:
        transport.request("GET", f"http://127.0.0.1:{port}/", timeout=TIMEOUT)
    assert caught.value.reason == "connection closed without an answer"


def test_a_redirect_that_would_smuggle_a_request_is_refused_not_retried(
    transport: Transport,
) -> None:
    """A Location with a line break would put a second request on the connection."""

    def redirect(connection: socket.socket) -> None:
        connection.recv(4096)
        connection.sendall(
            b"HTTP/1.1 307 Temporary Redirect\r\n"
            b"Location: /v2/a HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        )

    with _one_connection(redirect) as port, pytest.raises(PushError, match="unsafe request"):
        transport.request(
            "GET", f"http://127.0.0.1:{port}/v2/", timeout=TIMEOUT, allow_redirects=True
        )


@pytest.mark.parametrize(
    "headers", [{"X-Note": "a\r\nX-Injected: 1"}, {"Bad Name": "v"}, {"X-Nul": "a\x00b"}]
)
def test_a_header_that_would_smuggle_a_field_is_refused(
    peer: Peer, transport: Transport, headers: dict[str, str]
) -> None:
    with pytest.raises(PushError, match="unsafe header"):
        transport.request("GET", f"{peer.url}/v2/", headers=headers, timeout=TIMEOUT)
    assert peer.seen == []


# ---- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    cert, key = _certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with _serving(context) as found:
        found.routes["/v2/"] = (200, {}, b"{}")
        yield found


def test_an_untrusted_certificate_is_a_certificate_error(
    tls_peer: Peer, transport: Transport
) -> None:
    with pytest.raises(TLSError) as caught:
        transport.request("GET", f"https://{tls_peer.host}/v2/", timeout=TIMEOUT)
    assert caught.value.certificate
    answer = transport.request("GET", f"https://{tls_peer.host}/v2/", timeout=TIMEOUT, verify=False)
    assert answer.content == b"{}"


def test_verification_is_off_for_the_insecure_host_only_not_where_it_redirects(
    tls_peer: Peer, tmp_path: Path
) -> None:
    """`verify=False` is for the host the user listed: a redirect to another host (here the
    same untrusted certificate on another port) is verified, and fails."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert, key = _certificate(tmp_path)
    context.load_cert_chain(cert, key)
    before = len(tls_peer.seen)
    with _serving(context) as insecure:
        insecure.routes["/v2/a/blobs/d"] = (307, {"Location": f"https://{tls_peer.host}/v2/"}, b"")
        insecure.routes["/v2/here"] = (307, {"Location": "/v2/there"}, b"")
        insecure.routes["/v2/there"] = (200, {}, b"same host")
        made = Transport(user_agent="t", env={})
        try:
            home = made.request("GET", f"https://{insecure.host}/v2/here", timeout=TIMEOUT,
                                verify=False, allow_redirects=True)  # fmt: skip
            assert home.content == b"same host"
            with pytest.raises(TLSError) as caught:
                made.request("GET", f"https://{insecure.host}/v2/a/blobs/d", timeout=TIMEOUT,
                             verify=False, allow_redirects=True)  # fmt: skip
        finally:
            made.close()
    assert caught.value.certificate
    assert len(tls_peer.seen) == before, "the redirect's target was reached unverified"


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_the_tls_probe_tells_tls_from_plain_http(
    tls_peer: Peer, peer: Peer, transport: Transport
) -> None:
    assert transport.speaks_tls(tls_peer.host, TIMEOUT)
    assert not transport.speaks_tls(peer.host, TIMEOUT)
    assert not transport.speaks_tls(f"127.0.0.1:{_free_port()}", TIMEOUT)


def test_a_plain_http_peer_answering_tls_is_not_a_certificate_error(
    peer: Peer, transport: Transport
) -> None:
    with pytest.raises(TLSError) as caught:
        transport.request("GET", f"https://{peer.host}/v2/", timeout=TIMEOUT)
    assert not caught.value.certificate


# ---- proxies --------------------------------------------------------------------------------


def test_a_forward_proxy_gets_absolute_targets_and_its_credentials(peer: Peer) -> None:
    """`peer` plays the proxy: plain HTTP goes to it with the whole URL as the target."""
    peer.routes["/v2/"] = (200, {}, b"{}")
    env = {"http_proxy": f"http://me:p%40ss@{peer.host}", "no_proxy": "elsewhere.test"}
    proxied = Transport(user_agent="t", env=env)
    try:
        answer = proxied.request("GET", "http://registry.test:5000/v2/", timeout=TIMEOUT)
    finally:
        proxied.close()
    assert answer.status_code == 200
    (seen,) = peer.seen
    assert seen.target == "http://registry.test:5000/v2/"
    assert seen.headers["Host"] == "registry.test:5000"
    assert seen.headers["Proxy-Authorization"] == "Basic bWU6cEBzcw=="  # me:p@ss


def test_https_goes_through_a_connect_tunnel(tls_peer: Peer) -> None:
    """A minimal CONNECT proxy in front of the TLS peer: the request arrives through it."""
    tunnels: list[bytes] = []

    def tunnel(client: socket.socket) -> None:
        tunnels.append(client.recv(4096))
        upstream = socket.create_connection(("127.0.0.1", int(tls_peer.host.split(":")[1])))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        pipes = [threading.Thread(target=_pipe, args=pair, daemon=True)
                 for pair in ((client, upstream), (upstream, client))]  # fmt: skip
        for pipe in pipes:
            pipe.start()
        for pipe in pipes:
            pipe.join(timeout=10)

    with _one_connection(tunnel) as port:
        proxied = Transport(user_agent="t", env={"HTTPS_PROXY": f"127.0.0.1:{port}"})
        try:
            answer = proxied.request(
                "GET", f"https://{tls_peer.host}/v2/", timeout=TIMEOUT, verify=False
            )
            assert answer.content == b"{}"
        finally:
            proxied.close()
    assert tunnels[0].startswith(f"CONNECT {tls_peer.host} HTTP/1.".encode())


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        sink.close()


def test_a_proxy_that_cannot_be_reached_is_named() -> None:
    proxied = Transport(user_agent="t", env={"HTTPS_PROXY": f"127.0.0.1:{_free_port()}"})
    try:
        with pytest.raises(TransportError) as caught:
            proxied.request("GET", "https://registry.test/v2/", timeout=TIMEOUT)
    finally:
        proxied.close()
    assert caught.value.reason.startswith("the proxy 127.0.0.1:")
    assert caught.value.reason.endswith(": connection refused")


def test_a_proxy_that_refuses_the_tunnel_is_named(peer: Peer) -> None:
    peer.routes["registry.test:443"] = (407, {"Proxy-Authenticate": "Basic"}, b"")
    proxied = Transport(user_agent="t", env={"https_proxy": peer.url})
    try:
        with pytest.raises(
            TransportError, match=r"refused to connect to registry.test:443 \(HTTP 407"
        ):
            proxied.request("GET", "https://registry.test/v2/", timeout=TIMEOUT)
    finally:
        proxied.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://proxy.lan:3128"}, ("proxy.lan", 3128)),
        ({"https_proxy": "proxy.lan:8080", "HTTPS_PROXY": "http://other:1"}, ("proxy.lan", 8080)),
        ({"ALL_PROXY": "http://proxy.lan"}, ("proxy.lan", 80)),
        ({"HTTP_PROXY": "http://proxy.lan:3128"}, None),  # https needs HTTPS_PROXY
        ({"HTTPS_PROXY": "http://proxy.lan:3128", "NO_PROXY": "registry.test"}, None),
    ],
)
def test_the_proxy_for_an_https_registry(
    env: dict[str, str], expected: tuple[str, int] | None
) -> None:
    found = proxy_for("https", "registry.test", 443, env)
    assert (None if found is None else (found.host, found.port)) == expected


@pytest.mark.parametrize("value", ["https://proxy.lan:3128", "socks5://proxy.lan", "http://p:x"])
def test_an_unusable_proxy_variable_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="HTTPS_PROXY"):
        proxy_for("https", "registry.test", 443, {"HTTPS_PROXY": value})


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypassed"),
    [
        ("registry.test", 443, "*", True),
        ("registry.test", 443, "registry.test", True),
        ("cdn.registry.test", 443, ".registry.test", True),
        ("cdn.registry.test", 443, "registry.test", True),
        ("notregistry.test", 443, "registry.test", False),
        ("127.0.0.1", 5000, "127.0.0.1", True),
        ("127.0.0.1", 5000, "127.0.0.1:5000", True),  # requests never matched this one
        ("127.0.0.1", 5001, "127.0.0.1:5000", False),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("11.1.2.3", 443, "10.0.0.0/8", False),
        ("::1", 5000, "[::1]:5000", True),
        ("::1", 5000, "::1", True),
        ("registry.test", 443, " other.test , registry.test ", True),
        ("registry.test", 443, "", False),
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str, bypassed: bool) -> None:
    assert bypasses(host, port, no_proxy) is bypassed
