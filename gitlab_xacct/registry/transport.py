"""HTTP/1.1 for the registry client: connections, TLS, proxies and redirects over `http1.py`.

A copy is a handful of requests; importing requests and urllib3 (or even `http.client`, which
brings the `email` package) cost more than all of them when every blob is already in place
(scenario 2 of `docs/benchmarks.md`). This module gives the client what it used from them, and
nothing else:

- keep-alive connections pooled per (scheme, host, port, TLS mode, proxy), shared by threads;
  an idle connection the peer has closed is noticed before it is used;
- a connect timeout and a read timeout (between two reads of the socket), told apart in errors;
- TLS verified against the system trust store (OpenSSL's `SSL_CERT_FILE` and `SSL_CERT_DIR`
  apply), or not verified at all for a host the user listed as insecure; `ssl` is imported and
  the trust store loaded only when a TLS connection is made;
- `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (lower case first, as curl reads them): a CONNECT
  tunnel for https, absolute request targets for http; `NO_PROXY` entries match a host, its
  subdomains, `HOST:PORT`, an IP address or a CIDR range, or `*`;
- redirects for GET and HEAD (at most 10), without `Authorization` once the host changes;
- request bodies streamed from an iterable with a length; answers read into the caller's buffer.

No answer at all is a `TransportError` whose `reason` says why in a few words.
"""

from __future__ import annotations

import base64
import io
import os
import select
import socket
import threading
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

from gitlab_xacct.errors import ConfigError, PushError
from gitlab_xacct.registry import http1
from gitlab_xacct.registry.http1 import Headers
from gitlab_xacct.secrets import Secret

if TYPE_CHECKING:
    import ssl

MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_BUFFERED_LIMIT = 1024 * 1024  # a non-streamed answer is read whole up to this, then cut
_READ_BUFFER = 64 * 1024  # the socket reader's buffer: answer heads, small bodies, chunk sizes
_DEFAULT_PORTS = {"http": 80, "https": 443}


class StreamedBody(Sized, Iterable[bytes], Protocol):
    """A request body sent piece by piece; its length becomes the Content-Length."""


Body = bytes | StreamedBody | None


class TransportError(Exception):
    """No HTTP answer. `reason` says why in a few words, for log lines and errors."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectTimeout(TransportError):
    """No connection within the connect timeout."""


class ReadTimeout(TransportError):
    """Connected, then nothing read within the read timeout."""


class TLSError(TransportError):
    """The TLS handshake failed; `certificate`: because the peer's certificate was not trusted
    (never worth another try, never a reason to fall back to plain HTTP)."""

    def __init__(self, reason: str, *, certificate: bool) -> None:
        super().__init__(reason)
        self.certificate = certificate


class Response:
    """An answer: status, headers, the URL that gave it (after redirects), and its body, either
    read already (`stream=False`) or read by the caller from the connection."""

    def __init__(
        self,
        status_code: int,
        reason: str,
        headers: Headers,
        url: str,
        *,
        body: Any,  # with readinto(): an `http1.Body` on the connection, or io.BytesIO
        release: Any = None,  # called with True when the connection can be reused
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers
        self.url = url
        self._body = body
        self._release = release
        self._content: bytes | None = None
        self._finished = False

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Bytes of the body into `buffer`; 0 at its end. A connection that breaks off mid-body
        is a TransportError."""
        try:
            count: int = self._body.readinto(buffer)
        except (OSError, http1.ProtocolError) as exc:
            self.close()
            raise TransportError(f"the answer broke off ({_why(exc)})") from None
        if not count:
            self._finish(reuse=True)
        return count

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return self.content
        buffer = bytearray(size)
        count = self.readinto(buffer)
        return bytes(buffer[:count])

    @property
    def content(self) -> bytes:
        """The whole body (what is left of it)."""
        if self._content is None:
            pieces = []
            while piece := self.read(64 * 1024):
                pieces.append(piece)
            self._content = b"".join(pieces)
        return self._content

    @classmethod
    def of(cls, status_code: int, headers: Mapping[str, str], content: bytes, url: str) -> Response:
        """An answer made of bytes (the unit tests' in-process registry)."""
        return cls(status_code, "", Headers(headers.items()), url, body=io.BytesIO(content))

    def json(self) -> Any:
        import json  # only error bodies and tokens need it

        return json.loads(self.content)

    def close(self) -> None:
        """Done with the answer: its connection is reused when the body was read to the end."""
        self._finish(reuse=False)

    def _finish(self, *, reuse: bool) -> None:
        if self._finished:
            return
        self._finished = True
        release, self._release = self._release, None
        if release is not None:
            release(reuse)
        else:
            self._body.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None  # Proxy-Authorization, from the proxy URL's user:password


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a connection goes and how: one pool per route."""

    scheme: str
    host: str
    port: int
    verify: bool
    proxy: Proxy | None

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS[self.scheme] == self.port
        return host if default else f"{host}:{self.port}"


class _Connection:
    """One connection of a route: dialled with the connect timeout, tunnelled through the proxy
    when there is one, wrapped in TLS for https, then given the read timeout."""

    def __init__(self, route: _Route, timeouts: tuple[float, float]) -> None:
        self.route = route
        self.timeouts = timeouts
        self.sock: socket.socket | None = None
        self.reader: io.BufferedReader | None = None

    def connect(self) -> None:
        route = self.route
        connect_timeout, read_timeout = self.timeouts
        sock = _open(route, connect_timeout)
        try:
            if route.scheme == "https":
                sock = _handshake(sock, route.host, verify=route.verify)
            sock.settimeout(read_timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.reader = cast(io.BufferedReader, sock.makefile("rb", buffering=_READ_BUFFER))

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.sock is not None:
            self.sock.close()
        self.sock = self.reader = None

    def dropped(self) -> bool:
        """An idle connection the peer closed (or wrote to out of turn): not reusable."""
        if self.sock is None:
            return False  # connected on its next request
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


class Transport:
    """Pooled HTTP(S) for one client. Thread-safe: each request holds its connection alone."""

    def __init__(
        self,
        *,
        user_agent: str,
        pool: int = 8,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._user_agent = user_agent
        self._pool = max(pool, 1)
        self._env = os.environ if env is None else env
        self._idle: dict[_Route, list[_Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeout: tuple[float, float] = (10.0, 300.0),
        verify: bool = True,
        allow_redirects: bool = False,
        stream: bool = False,
    ) -> Response:
        """Send one request (and follow redirects for GET and HEAD when asked)."""
        sent = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(
                method, url, sent, body, timeout=timeout, verify=verify, stream=stream
            )
            location = response.headers.get("Location")
            if not (allow_redirects and response.status_code in _REDIRECTS and location):
                return response
            response.close()
            target = urljoin(url, location)
            if not _same_origin(url, target):
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
            url = target
        raise TransportError(f"more than {MAX_REDIRECTS} redirects")

    def route(self, url: str, *, verify: bool = True) -> _Route:
        return self._route(urlsplit(url), url, verify=verify)

    def _route(self, parts: SplitResult, url: str, *, verify: bool) -> _Route:
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {url!r}")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise TransportError(f"not a valid port in {url!r}") from None
        host = parts.hostname
        proxy = proxy_for(scheme, host, port, self._env)
        return _Route(scheme, host, port, verify or scheme == "http", proxy)

    def speaks_tls(self, host: str, timeout: tuple[float, float]) -> bool:
        """Whether `host` (HOST[:PORT], port 443 by default) answers a TLS ClientHello with a TLS
        record: a ServerHello, or an alert when it would refuse our hello. Only the first bytes
        of its answer are read, so no `ssl`, trust store or key exchange is spent on a registry
        that speaks plain HTTP (it answers "HTTP/1.1 400" or hangs up). This only decides
        between TLS and plain HTTP for a loopback or listed host: the real connection then does
        the verified handshake, and its failure is an error, never a downgrade."""
        route = self.route(f"https://{host}/", verify=False)
        try:
            sock = _open(route, timeout[0])
        except (TransportError, OSError):
            return False
        try:
            sock.settimeout(timeout[1])
            sock.sendall(_client_hello(route.host))
            answer = b""
            for _ in range(2):  # a record header's first two bytes, in at most two reads
                data = sock.recv(2 - len(answer))
                answer += data
                if not data or len(answer) == 2:
                    break
        except (TransportError, OSError):
            return False
        finally:
            sock.close()
        return len(answer) == 2 and answer[0] in _TLS_RECORDS and answer[1] == 3

    # ---- one exchange ----------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body,
        *,
        timeout: tuple[float, float],
        verify: bool,
        stream: bool,
    ) -> Response:
        parts = urlsplit(url)
        route = self._route(parts, url, verify=verify)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        if route.proxy is not None and route.scheme == "http":
            target = f"http://{route.netloc}{target}"  # a forward proxy takes absolute targets
        connection = self._checkout(route, timeout)
        try:
            answer, reader = _exchange(
                connection, method, target, self._headers(route, method, headers, body), body
            )
        except BaseException:
            connection.close()
            raise
        body_reader = http1.Body(reader, answer)

        def release(reuse: bool) -> None:
            if reuse and body_reader.done and not answer.will_close:
                self._checkin(connection)
            else:
                connection.close()

        response = Response(
            answer.status,
            answer.reason,
            answer.headers,
            url,
            body=body_reader,
            release=release,
        )
        if method == "HEAD" or not stream:
            _buffer(response)
        return response

    def _headers(
        self, route: _Route, method: str, given: Mapping[str, str], body: Body
    ) -> dict[str, str]:
        headers = {"Host": route.netloc, "User-Agent": self._user_agent, "Accept": "*/*"}
        headers.update(given)
        if body is not None:
            headers["Content-Length"] = str(len(body))
        elif method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = "0"
        if route.proxy is not None and route.scheme == "http" and route.proxy.authorization:
            headers["Proxy-Authorization"] = route.proxy.authorization
        return headers

    def _checkout(self, route: _Route, timeout: tuple[float, float]) -> _Connection:
        with self._lock:
            idle = self._idle.get(route, [])
            while idle:
                connection = idle.pop()
                if not connection.dropped():
                    connection.timeouts = timeout
                    if connection.sock is not None:
                        connection.sock.settimeout(timeout[1])
                    return connection
                connection.close()
        return _Connection(route, timeout)

    def _checkin(self, connection: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(connection.route, [])
            if not self._closed and len(idle) < self._pool:
                idle.append(connection)
                return
        connection.close()


def _exchange(
    connection: _Connection, method: str, target: str, headers: dict[str, str], body: Body
) -> tuple[http1.Answer, io.BufferedReader]:
    """Send the request and read the answer's head; errors of the network mapped to
    TransportError, errors of the body's own source passed on as they are."""
    try:
        head = http1.request_head(method, target, headers)
    except ValueError as exc:  # a hostile Location, say: never sent, never retried
        raise PushError(str(exc)) from None
    try:
        if connection.sock is None:
            connection.connect()
        sock, reader = connection.sock, connection.reader
        if sock is None or reader is None:
            raise TransportError("connection closed")
        sock.sendall(head + body if isinstance(body, bytes) else head)
    except OSError as exc:
        raise _mapped(exc) from None
    if body is not None and not isinstance(body, bytes):
        for piece in body:  # the source's errors (a corrupt blob, a cancel) pass through
            try:
                sock.sendall(piece)
            except OSError as exc:
                raise _mapped(exc) from None
    try:
        return http1.read_answer(reader, method), reader
    except (OSError, http1.ProtocolError) as exc:
        raise _mapped(exc) from None


def _buffer(response: Response) -> None:
    """Read a non-streamed answer whole (bounded), so its connection goes back to the pool."""
    data = bytearray()
    piece = bytearray(64 * 1024)
    try:
        while len(data) <= _BUFFERED_LIMIT:
            count = response._body.readinto(piece)
            if not count:
                break
            data += piece[:count]
    except (OSError, http1.ProtocolError) as exc:
        response.close()
        raise TransportError(f"the answer broke off ({_why(exc)})") from None
    if len(data) > _BUFFERED_LIMIT:
        del data[_BUFFERED_LIMIT:]
        response.close()  # more than an answer we wait for holds: the connection goes
    else:
        response._finish(reuse=True)
    response._body = io.BytesIO(bytes(data))


def _open(route: _Route, timeout: float) -> socket.socket:
    """A socket that speaks to the route's host: dialled directly, or through its proxy (a
    CONNECT tunnel for https; a forward proxy takes http requests as they are)."""
    proxy = route.proxy
    if proxy is None:
        return _dial(route.host, route.port, timeout)
    try:
        sock = _dial(proxy.host, proxy.port, timeout)
    except TransportError as exc:
        # Say whose door it was: "connection refused" alone points at the registry.
        raise type(exc)(f"the proxy {proxy.host}:{proxy.port}: {exc.reason}") from None
    if route.scheme == "https":
        try:
            _tunnel(sock, route, proxy)
        except BaseException:
            sock.close()
            raise
    return sock


def _dial(host: str, port: int, timeout: float) -> socket.socket:
    # An ASCII name goes as bytes: a str makes the socket module load the idna codec (~2 ms).
    address = host.encode("ascii") if host.isascii() else host
    try:
        sock = socket.create_connection((address, port), timeout=timeout)  # type: ignore[arg-type]
    except TimeoutError:
        raise ConnectTimeout(f"no connection to {host}:{port} within {timeout:g} s") from None
    except OSError as exc:
        raise _mapped(exc) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _tunnel(sock: socket.socket, route: _Route, proxy: Proxy) -> None:
    """CONNECT through an HTTP proxy: afterwards the socket speaks to the target."""
    host = f"[{route.host}]" if ":" in route.host else route.host
    authority = f"{host}:{route.port}"
    headers = {"Host": authority}
    if proxy.authorization:
        headers["Proxy-Authorization"] = proxy.authorization
    # Unbuffered: the proxy's answer must not be read past its end, where TLS begins.
    reader = sock.makefile("rb", buffering=0)
    try:
        sock.sendall(http1.request_head("CONNECT", authority, headers))
        answer = http1.read_answer(reader, "CONNECT")
    except TimeoutError:
        raise ConnectTimeout(f"the proxy {proxy.host}:{proxy.port} did not answer") from None
    except (OSError, http1.ProtocolError) as exc:
        raise _mapped(exc) from None
    finally:
        reader.close()
    if answer.status != 200:
        raise TransportError(
            f"the proxy {proxy.host}:{proxy.port} refused to connect to {authority} "
            f"(HTTP {answer.status} {answer.reason})"
        )


_contexts: dict[bool, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _context(verify: bool) -> ssl.SSLContext:
    """Built once per process: loading the system trust store takes tens of milliseconds."""
    import ssl  # a plain-HTTP registry never pays for it

    with _contexts_lock:
        context = _contexts.get(verify)
        if context is None:
            if verify:
                context = ssl.create_default_context()
            else:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            _contexts[verify] = context
        return context


_TLS_RECORDS = (0x15, 0x16)  # alert, handshake; the byte after is the major version, 3


def _client_hello(host: str) -> bytes:
    """A TLS ClientHello as any client sends it (TLS 1.3 and 1.2 offered, AES-GCM and
    ChaCha20 suites, X25519 and P-256, the host name as SNI unless it is an address), so a TLS
    server answers it with a record instead of hanging up on a malformed hello."""

    def vector(data: bytes, size: int = 2) -> bytes:
        return len(data).to_bytes(size, "big") + data

    def extension(kind: int, data: bytes) -> bytes:
        return kind.to_bytes(2, "big") + vector(data)

    suites = bytes.fromhex("130113021303c02bc02fc02cc030cca9cca8")
    extensions = [
        extension(0x000A, vector(bytes.fromhex("001d0017"))),  # groups: x25519, secp256r1
        extension(0x000B, vector(b"\x00", 1)),  # point formats: uncompressed
        extension(0x000D, vector(bytes.fromhex("040308040401050308050501"))),  # signatures
        extension(0x002B, vector(bytes.fromhex("03040303"), 1)),  # versions: TLS 1.3, 1.2
    ]
    name = host.strip("[]")
    if not _is_address(name) and name.isascii():
        server_name = b"\x00" + vector(name.encode("ascii"))
        extensions.insert(0, extension(0x0000, vector(server_name)))
    hello = (
        b"\x03\x03"  # legacy version: TLS 1.2
        + os.urandom(32)
        + vector(os.urandom(32), 1)  # a session id, as TLS 1.3 clients send for middleboxes
        + vector(suites)
        + vector(b"\x00", 1)  # compression: none
        + vector(b"".join(extensions))
    )
    handshake = b"\x01" + vector(hello, 3)
    return b"\x16\x03\x01" + vector(handshake)


def _is_address(name: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
    except OSError:
        return False
    return True


def _handshake(sock: socket.socket, host: str, *, verify: bool) -> socket.socket:
    import ssl

    # Bytes for an ASCII name: a str makes ssl load the idna codec (~2 ms) to encode it.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    try:
        return _context(verify).wrap_socket(sock, server_hostname=name)
    except ssl.SSLCertVerificationError as exc:
        raise TLSError(f"{exc.verify_message or exc.reason}", certificate=True) from None
    except ssl.CertificateError as exc:  # hostname mismatch on older OpenSSL bindings
        raise TLSError(str(exc), certificate=True) from None
    except ssl.SSLError as exc:
        raise TLSError(f"TLS handshake failed ({exc.reason or exc})", certificate=False) from None
    except TimeoutError:
        raise ConnectTimeout(f"no TLS handshake with {host} in time") from None
    except OSError as exc:
        raise _mapped(exc) from None


# ---- errors ----------------------------------------------------------------------------------


def _mapped(exc: BaseException) -> TransportError:
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, TimeoutError):
        return ReadTimeout("read timed out")
    return TransportError(_why(exc))


# Most specific first: all of them are OSErrors.
_WORDS: tuple[tuple[type[BaseException], str], ...] = (
    (TimeoutError, "read timed out"),
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset by peer"),
    (ConnectionAbortedError, "connection aborted"),
    (BrokenPipeError, "connection broken (broken pipe)"),
)


def _why(exc: BaseException) -> str:
    if isinstance(exc, http1.ProtocolError):
        return exc.reason
    for kind, words in _WORDS:
        if isinstance(exc, kind):
            return words
    if isinstance(exc, socket.gaierror):
        dns = " (DNS)" if exc.errno == socket.EAI_AGAIN else ""
        return f"host name not found{dns}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


# ---- proxies ---------------------------------------------------------------------------------


def _env(env: Mapping[str, str], name: str) -> str:
    return (env.get(name.lower()) or env.get(name.upper()) or "").strip()


def proxy_for(scheme: str, host: str, port: int, env: Mapping[str, str]) -> Proxy | None:
    """The proxy a request to `scheme://host:port` goes through, by the proxy variables."""
    value = _proxy_variable(env, scheme)
    if not value or bypasses(host, port, _env(env, "no_proxy")):
        return None
    return _proxy(value, scheme)


def check_proxies(env: Mapping[str, str]) -> None:
    """Refuse unusable proxy variables up front (exit 2, before any work), not at the first
    request that would go through them."""
    for scheme in ("http", "https"):
        value = _proxy_variable(env, scheme)
        if value:
            _proxy(value, scheme)


def _proxy_variable(env: Mapping[str, str], scheme: str) -> str:
    return _env(env, f"{scheme}_proxy") or _env(env, "all_proxy")


def _proxy(value: str, scheme: str) -> Proxy:
    parts = urlsplit(value if "://" in value else f"http://{value}")
    variable = f"{scheme.upper()}_PROXY"
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ConfigError(
            f"{variable} (or ALL_PROXY): only proxies reached over plain HTTP are supported; "
            "give it as http://HOST:PORT"
        )
    try:
        proxy_port = parts.port or 80
    except ValueError:
        raise ConfigError(
            f"{variable} (or ALL_PROXY): not a valid port; give http://HOST:PORT"
        ) from None
    authorization = None
    if parts.username is not None:
        authorization = basic_authorization(unquote(parts.username), unquote(parts.password or ""))
    return Proxy(parts.hostname, proxy_port, authorization)


def basic_authorization(username: str, password: str) -> str:
    """An `Authorization` (or `Proxy-Authorization`) value for Basic credentials, registered
    for masking: it decodes to the password."""
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {Secret(pair).reveal()}"


def bypasses(host: str, port: int, no_proxy: str) -> bool:
    """Whether `NO_PROXY` exempts `host:port`: `*`, a host and its subdomains (`example.com`
    or `.example.com`), `HOST:PORT`, an IP address, or a CIDR range of addresses."""
    host = host.lower().strip("[]")
    for item in no_proxy.replace(" ", ",").split(","):
        entry = item.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, wanted_port = _split_port(entry)
        if wanted_port is not None and wanted_port != port:
            continue
        if "/" in name and _in_network(host, name):
            return True
        name = name.lstrip(".").strip("[]")
        if host == name or host.endswith("." + name):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:5000
        name, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return name, int(port) if port.isdecimal() and port.isascii() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        if port.isdecimal() and port.isascii():
            return name, int(port)
    return entry, None


def _in_network(host: str, cidr: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _same_origin(before: str, after: str) -> bool:
    """Credentials follow a redirect only to the same host and port (https may replace http)."""
    old, new = urlsplit(before), urlsplit(after)
    if (old.hostname or "").lower() != (new.hostname or "").lower():
        return False
    old_port = old.port or _DEFAULT_PORTS.get(old.scheme, 0)
    new_port = new.port or _DEFAULT_PORTS.get(new.scheme, 0)
    if old.scheme == new.scheme:
        return old_port == new_port
    return (old.scheme, new.scheme, old_port, new_port) == ("http", "https", 80, 443)
