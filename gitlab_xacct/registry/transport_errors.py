"""Why a request got no HTTP answer: our `TransportError` family, and the exceptions of
requests, urllib3, ssl and the socket layer translated into it, each with a `reason` of a few
words for log lines and errors (a refused tunnel names the proxy and its answer; a certificate
that is not trusted is told apart from any other TLS failure)."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from gitlab_xacct.network import Proxy

DEFAULT_PORTS = {"http": 80, "https": 443}


_TUNNEL = re.compile(r"Tunnel connection failed: (\d{3})\s*([^'\")]*)")


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


def timed_out(exc: BaseException) -> bool:
    """A timeout somewhere in the chain (urllib3 counts a refused connection as a connect
    timeout, NewConnectionError: that one is not)."""
    return any(
        isinstance(c, TimeoutError | urllib3.exceptions.TimeoutError)
        and not isinstance(c, urllib3.exceptions.NewConnectionError)
        for c in _causes(exc)
    )


def mapped(
    exc: requests.RequestException, url: str, proxy: Proxy | None, timeout: tuple[float, float]
) -> TransportError:
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or DEFAULT_PORTS[parts.scheme.lower()]}"
    if isinstance(exc, requests.exceptions.ProxyError) and proxy is not None:
        return _proxy_error(exc, proxy, where, timeout)
    if isinstance(exc, requests.exceptions.SSLError):
        return _tls_error(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectTimeout(f"no connection to {where} within {timeout[0]:g} s")
    if isinstance(exc, requests.exceptions.ReadTimeout) or timed_out(exc):
        return ReadTimeout("read timed out")
    if isinstance(exc, requests.exceptions.InvalidHeader | requests.exceptions.InvalidURL):
        return TransportError(f"not a valid request ({exc})")
    return TransportError(why(exc))


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
    if timed_out(exc):
        return ConnectTimeout(f"the proxy {proxy.name}: no answer within {timeout[0]:g} s")
    return TransportError(f"the proxy {proxy.name}: {why(exc)}")


def _tls_error(exc: BaseException) -> TLSError:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return TLSError(f"{cause.verify_message or cause.reason}", certificate=True)
        if isinstance(cause, ssl.CertificateError):
            return TLSError(str(cause), certificate=True)
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            return TLSError(f"TLS handshake failed ({cause.reason or cause})", certificate=False)
    return TLSError(f"TLS handshake failed ({why(exc)})", certificate=False)


# Most specific first: all of them are OSErrors.
_WORDS: tuple[tuple[type[BaseException], str], ...] = (
    (TimeoutError, "read timed out"),
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset by peer"),
    (ConnectionAbortedError, "connection aborted"),
    (BrokenPipeError, "connection broken (broken pipe)"),
)


def why(exc: BaseException) -> str:
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
