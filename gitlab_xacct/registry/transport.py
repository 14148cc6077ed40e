"""The registry client's HTTP: one requests session per registry, in twine's style.

`Transport` is the session factory and what the client needs on top of requests:

- a User-Agent, keep-alive connections pooled per host (sized to the upload parallelism),
  connect and read timeouts told apart in errors; no retries inside (`retry.py` decides);
- TLS and proxies by `gitlab_xacct.network`, the policy of every connection of a run: the
  system trust store (or the CA bundle the variables name), proxies by the variables of the
  settings' mapping with our `NO_PROXY` dialect (requests' own reading of the environment is
  off: it knows neither CIDR ranges nor `HOST:PORT`);
- redirects for GET and HEAD (at most 10), followed here rather than by requests: without
  `Authorization` once the host changes, and with TLS verified on any host but the one the
  caller said is insecure;
- request bodies streamed from an iterable with a length; answers never decoded (blob and
  manifest bytes are what the registry served: `Accept-Encoding: identity`, raw reads), a body
  cut short of its `Content-Length` an error, never an end;
- a request line or header with a control character refused before it is sent (a hostile
  `Location` cannot smuggle a second request).

No answer at all is a `TransportError` whose `reason` says why in a few words.
"""

from __future__ import annotations

import io
import os
import re
import ssl
from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from gitlab_xacct import network
from gitlab_xacct.errors import PushError
from gitlab_xacct.network import Proxy

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_BUFFERED_LIMIT = 1024 * 1024  # a non-streamed answer is read whole up to this, then cut
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A request target or header value with a control character or a line break could smuggle a
# second request onto the connection: such input (a hostile Location, say) is refused.
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TUNNEL = re.compile(r"Tunnel connection failed: (\d{3})\s*([^'\")]*)")

Headers = CaseInsensitiveDict
# Our own warning names a host listed as insecure, once (remote.connect); urllib3's would
# repeat on every request.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


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


class ProxyRefused(TransportError):
    """The proxy answered, and refused: its answer (a 407, a 403) is final, not worth another
    try and never a reason to go around it."""


class TLSError(TransportError):
    """The TLS handshake failed; `certificate`: because the peer's certificate was not trusted
    (never worth another try, never a reason to fall back to plain HTTP)."""

    def __init__(self, reason: str, *, certificate: bool) -> None:
        super().__init__(reason)
        self.certificate = certificate


class Response:
    """An answer: status, headers, the URL that gave it (after redirects), and its body, either
    read already (`stream=False`) or read by the caller from the connection, as served."""

    def __init__(
        self,
        status_code: int,
        reason: str,
        headers: Mapping[str, str],
        url: str,
        *,
        body: Any,  # with readinto(): urllib3's raw answer, or io.BytesIO
        release: Any = None,  # called when done with the answer
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers
        self.url = url
        self._body = body
        self._release = release
        self._content: bytes | None = None
        self._finished = False
        self.attempts = 1  # how many sends this answer took, for the error that gives up on it

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Bytes of the body into `buffer`; 0 at its end. A connection that breaks off mid-body
        is a TransportError."""
        try:
            count: int = self._body.readinto(buffer) or 0
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            self.close()
            if _timed_out(exc):
                raise ReadTimeout("read timed out") from None
            raise TransportError(f"the answer broke off ({_why(exc)})") from None
        if not count:
            self.close()
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
        return cls(status_code, "", Headers(headers), url, body=io.BytesIO(content))

    def json(self) -> Any:
        import json

        return json.loads(self.content)

    def close(self) -> None:
        """Done with the answer: its connection is reused when the body was read to the end."""
        if self._finished:
            return
        self._finished = True
        release, self._release = self._release, None
        if release is not None:
            release()
        else:
            self._body.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Adapter(HTTPAdapter):
    """requests' adapter with our TLS contexts instead of certifi's bundle: verified by the
    network policy's trust store, or not verified at all (`verify=False`)."""

    def __init__(self, env: Mapping[str, str], pool: int) -> None:
        self._env = env
        super().__init__(pool_connections=4, pool_maxsize=pool, max_retries=0)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        pool.pop("ca_certs", None)
        pool.pop("ca_cert_dir", None)
        pool["ssl_context"] = network.ssl_context(self._env, verify=bool(verify))
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """The pool's context carries the trust store: nothing to load per connection."""
        conn.cert_reqs = "CERT_REQUIRED" if verify else "CERT_NONE"
        conn.ca_certs = conn.ca_cert_dir = None


def session(user_agent: str, *, pool: int, env: Mapping[str, str]) -> requests.Session:
    """The one session factory (twine's `make_requests_session`): a User-Agent, bytes as
    served, pooling sized to `pool`, requests' environment reading off (`network` decides)."""
    made = requests.Session()
    made.trust_env = False
    made.headers.update({"User-Agent": user_agent, "Accept": "*/*", "Accept-Encoding": "identity"})
    adapter = _Adapter(env, max(pool, 1))
    made.mount("https://", adapter)
    made.mount("http://", adapter)
    return made


class Transport:
    """HTTP(S) for one client, on one requests session. Thread-safe, as urllib3's pools are."""

    def __init__(
        self,
        *,
        user_agent: str,
        pool: int = 8,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._env = os.environ if env is None else env
        self._session = session(user_agent, pool=pool, env=self._env)

    def close(self) -> None:
        self._session.close()

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
        """Send one request (and follow redirects for GET and HEAD when asked). `verify=False`
        holds for the URL's own host only: a redirect elsewhere is verified."""
        sent = dict(headers or {})
        insecure = None if verify else _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(
                method,
                url,
                sent,
                body,
                timeout=timeout,
                verify=insecure is None or _origin(url) != insecure,
                stream=stream,
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

    def proxy(self, url: str) -> Proxy | None:
        return network.proxy_for_url(url, self._env)

    def speaks_tls(self, host: str, timeout: tuple[float, float]) -> bool:
        """Whether `host` (HOST[:PORT], port 443 by default) answers over TLS: a GET of /v2/
        with the certificate unchecked (this only decides between TLS and plain HTTP for a
        loopback or listed host: the real requests then verify it, and a failure there is an
        error, never a downgrade). Refused, silent or not TLS: False. Through a proxy, what
        the proxy answers is the answer: a proxy that cannot be reached or refuses the tunnel
        is a TransportError naming it, never a reason to try plain HTTP."""
        try:
            response = self._send(
                "GET", f"https://{host}/v2/", {}, None, timeout=timeout, verify=False, stream=True
            )
        except TLSError:
            return False
        except TransportError as exc:
            if self.proxy(f"https://{host}/") is not None and exc.reason.startswith("the proxy"):
                raise
            return False
        response.close()
        return True

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
        if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {url!r}")
        _check_safe(method, url, headers)
        proxy = self.proxy(url)
        proxies = {parts.scheme.lower(): proxy.url} if proxy is not None else {}
        data: Any = body
        if body is not None and not isinstance(body, bytes) and len(body) == 0:
            data = b"".join(body)  # requests would send an empty stream chunked
        try:
            answer = self._session.request(
                method,
                url,
                headers=_with_length(headers, body),
                data=data,
                timeout=timeout,
                verify=verify,
                allow_redirects=False,
                stream=True,
                proxies=proxies,
            )
        except requests.RequestException as exc:
            raise _mapped(exc, url, proxy, timeout) from None
        raw = answer.raw
        response = Response(
            answer.status_code,
            answer.reason or "",
            answer.headers,
            url,
            body=raw,
            release=answer.close,
        )
        if method == "HEAD" or not stream:
            _buffer(response)
        return response


def _with_length(headers: Mapping[str, str], body: Body) -> dict[str, str]:
    sent = dict(headers)
    if body is not None:
        sent["Content-Length"] = str(len(body))
    return sent


def _check_safe(method: str, url: str, headers: Mapping[str, str]) -> None:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _UNSAFE_TARGET.search(target) or _UNSAFE_TARGET.search(parts.netloc):
        raise PushError(f"refusing to send an unsafe request line: {method} {target!r}")
    for name, value in headers.items():
        if _UNSAFE_VALUE.search(value) or _UNSAFE_TARGET.search(name):
            raise PushError(f"refusing to send an unsafe header field {name!r}")


def _buffer(response: Response) -> None:
    """Read a non-streamed answer whole (bounded), so its connection goes back to the pool."""
    data = bytearray()
    piece = bytearray(64 * 1024)
    while len(data) <= _BUFFERED_LIMIT:
        count = response.readinto(piece)
        if not count:
            break
        data += piece[:count]
    if len(data) > _BUFFERED_LIMIT:
        del data[_BUFFERED_LIMIT:]
    response.close()  # more than an answer we wait for holds: the connection goes
    response._body = io.BytesIO(bytes(data))
    response._finished = False
    response._release = None


# ---- errors ----------------------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps (requests wraps urllib3, which wraps OSErrors), at most 20."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        yield current
        inner = [getattr(current, "reason", None), current.__cause__, current.__context__]
        inner += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        todo += [i for i in inner if isinstance(i, BaseException)]


def _timed_out(exc: BaseException) -> bool:
    """A timeout somewhere in the chain (urllib3 counts a refused connection as a connect
    timeout, NewConnectionError: that one is not)."""
    return any(
        isinstance(c, TimeoutError | urllib3.exceptions.TimeoutError)
        and not isinstance(c, urllib3.exceptions.NewConnectionError)
        for c in _causes(exc)
    )


def _mapped(
    exc: requests.RequestException, url: str, proxy: Proxy | None, timeout: tuple[float, float]
) -> TransportError:
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or _DEFAULT_PORTS[parts.scheme.lower()]}"
    if isinstance(exc, requests.exceptions.ProxyError) and proxy is not None:
        return _proxy_error(exc, proxy, where, timeout)
    if isinstance(exc, requests.exceptions.SSLError):
        return _tls_error(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectTimeout(f"no connection to {where} within {timeout[0]:g} s")
    if isinstance(exc, requests.exceptions.ReadTimeout) or _timed_out(exc):
        return ReadTimeout("read timed out")
    if isinstance(exc, requests.exceptions.InvalidHeader | requests.exceptions.InvalidURL):
        return TransportError(f"not a valid request ({exc})")
    return TransportError(_why(exc))


def _proxy_error(
    exc: BaseException, proxy: Proxy, where: str, timeout: tuple[float, float]
) -> TransportError:
    for cause in _causes(exc):
        match = _TUNNEL.search(str(cause))
        if match:
            status, reason = match[1], match[2].strip()
            return ProxyRefused(
                f"the proxy {proxy.name} refused to connect to {where} "
                f"(HTTP {status}{' ' + reason if reason else ''})"
            )
    if _timed_out(exc):
        return ConnectTimeout(f"the proxy {proxy.name}: no answer within {timeout[0]:g} s")
    return TransportError(f"the proxy {proxy.name}: {_why(exc)}")


def _tls_error(exc: BaseException) -> TLSError:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return TLSError(f"{cause.verify_message or cause.reason}", certificate=True)
        if isinstance(cause, ssl.CertificateError):
            return TLSError(str(cause), certificate=True)
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            return TLSError(f"TLS handshake failed ({cause.reason or cause})", certificate=False)
    return TLSError(f"TLS handshake failed ({_why(exc)})", certificate=False)


# Most specific first: all of them are OSErrors.
_WORDS: tuple[tuple[type[BaseException], str], ...] = (
    (TimeoutError, "read timed out"),
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset by peer"),
    (ConnectionAbortedError, "connection aborted"),
    (BrokenPipeError, "connection broken (broken pipe)"),
)


def _why(exc: BaseException) -> str:
    causes = list(_causes(exc))
    for cause in causes:
        words = _words(cause)
        if words:
            return words
    for cause in reversed(causes):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    return type(exc).__name__


def _words(cause: BaseException) -> str:
    """A few words for one link of the chain, "" when it says nothing we can name."""
    import http.client
    import socket

    if isinstance(cause, http.client.RemoteDisconnected):
        return "connection closed without an answer"
    if isinstance(cause, http.client.IncompleteRead | urllib3.exceptions.IncompleteRead):
        return "connection closed mid-body"
    for kind, words in _WORDS:
        if isinstance(cause, kind):
            return words
    if isinstance(cause, socket.gaierror):
        return f"host name not found{' (DNS)' if cause.errno == socket.EAI_AGAIN else ''}"
    if isinstance(cause, http.client.BadStatusLine):
        return "not an HTTP answer"
    return ""


# ---- headers ---------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


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
