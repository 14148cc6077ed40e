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
from collections.abc import Iterable, Mapping, Sized
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from gitlab_xacct import network
from gitlab_xacct.errors import PushError
from gitlab_xacct.network import Proxy
from gitlab_xacct.registry.transport_errors import (
    DEFAULT_PORTS,
    ReadTimeout,
    TLSError,
    TransportError,
    mapped,
    timed_out,
    why,
)

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_BUFFERED_LIMIT = 1024 * 1024  # a non-streamed answer is read whole up to this, then cut
# A request target or header value with a control character or a line break could smuggle a
# second request onto the connection: such input (a hostile Location, say) is refused.
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

Headers = CaseInsensitiveDict
# Our own warning names a host listed as insecure, once (remote.connect); urllib3's would
# repeat on every request.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


class StreamedBody(Sized, Iterable[bytes], Protocol):
    """A request body sent piece by piece; its length becomes the Content-Length."""


Body = bytes | StreamedBody | None


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
            if timed_out(exc):
                raise ReadTimeout("read timed out") from None
            raise TransportError(f"the answer broke off ({why(exc)})") from None
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
        if host.get("scheme") == "https":  # loading the trust store is ~40 ms of CPU: only for TLS
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
        if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
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
            raise mapped(exc, url, proxy, timeout) from None
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


# ---- headers ---------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def _same_origin(before: str, after: str) -> bool:
    """Credentials follow a redirect only to the same host and port (https may replace http)."""
    old, new = urlsplit(before), urlsplit(after)
    if (old.hostname or "").lower() != (new.hostname or "").lower():
        return False
    old_port = old.port or DEFAULT_PORTS.get(old.scheme, 0)
    new_port = new.port or DEFAULT_PORTS.get(new.scheme, 0)
    if old.scheme == new.scheme:
        return old_port == new_port
    return (old.scheme, new.scheme, old_port, new_port) == ("http", "https", 80, 443)
