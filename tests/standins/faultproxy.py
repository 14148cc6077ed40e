"""A reverse proxy on 127.0.0.1 that forwards to one upstream and can fail chosen requests.

Put it between a client and moto (or the registry) to prove retries: ``fail_next`` answers the
next N matching requests itself (e.g. 400 Throttling in STS's XML, 503 with Retry-After),
``drop_next`` cuts their connection after part of the body (the upstream never sees it),
``reset_next`` forwards part of the body to the upstream and then resets both connections (the
upstream sees a request die mid-body, as behind a failing load balancer), ``stall_next`` takes
the request and never answers, ``slow_next`` passes bytes both ways at a trickle, and
``rewrite_next`` forwards and then changes headers of the answer (a lying Docker-Content-Digest),
``lose_answer_next`` lets the request take effect upstream and resets before the answer,
``cut_answer_next`` breaks a download off mid-body;
every other request goes through. ``Blackhole`` is a port that never completes a connection.
It counts requests per AWS action (``Action=`` of a query API in the query string or the form
body, or the ``X-Amz-Target`` of a JSON API such as ECR) and per method and path.

Headers pass through unchanged, Host included: SigV4 signs the Host header, and moto in auth
mode recomputes the signature from the Host it receives, so a rewritten Host fails with
SignatureDoesNotMatch (``rewrite_host=True`` exists to show that). The registry builds its
upload ``Location`` from Host too, so keeping it also keeps clients on the proxy. Hop-by-hop
headers (Connection, Transfer-Encoding, Expect...) are the proxy's own on each side.

Bodies stream both ways in 64 KiB pieces (Content-Length or chunked in, the same out), so
registry blobs are never held whole; only a form-encoded body of at most 1 MiB is read ahead,
to find its ``Action``. Every socket has a timeout; ``stop()`` (or leaving the ``with`` block)
closes the listener and any open client connection.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import socket
import struct
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import SplitResult, parse_qs, urlsplit
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
FORM_LIMIT = 1024 * 1024
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",  # the handler answers 100-continue itself
    }
)


def aws_query_error(
    code: str = "Throttling",
    message: str = "Rate exceeded",
    *,
    error_type: str = "Sender",
    request_id: str | None = None,
) -> bytes:
    """An error body of the AWS query protocol (STS, IAM), as STS sends it."""
    return (
        f"<ErrorResponse><Error><Type>{escape(error_type)}</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{escape(request_id or str(uuid.uuid4()))}</RequestId></ErrorResponse>"
    ).encode()


def aws_json_error(code: str = "ThrottlingException", message: str = "Rate exceeded") -> bytes:
    """An error body of the AWS JSON protocol (ECR): ``{"__type": ..., "message": ...}``."""
    return json.dumps({"__type": code, "message": message}).encode()


@dataclass(frozen=True)
class RequestInfo:
    """What a fault predicate sees of one request (header names in lower case)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    action: str | None


@dataclass
class Fault:
    """Answer the next `remaining` matching requests with this status, headers and body."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    matches: Callable[[RequestInfo], bool]
    remaining: int
    served: int = 0
    drop_after: int | None = None  # read this many body bytes, then cut the connection
    reset_after: int | None = None  # forward this many body bytes (< 0: all but that many), reset
    stall: float | None = None  # take the request, answer nothing for this many seconds
    rate: int | None = None  # bytes per second both ways
    rewrite: tuple[tuple[str, str], ...] = ()  # answer headers replaced after forwarding
    lose_answer: bool = False  # forward whole, let the upstream answer, reset the client
    cut_answer: int | None = None  # relay this many bytes of the answer's body, then reset


def _matcher(
    action: str | None,
    method: str | None,
    path: str | re.Pattern[str] | None,
    predicate: Callable[[RequestInfo], bool] | None,
) -> Callable[[RequestInfo], bool]:
    def matches(info: RequestInfo) -> bool:
        if action is not None and info.action != action:
            return False
        if method is not None and info.method.upper() != method.upper():
            return False
        if isinstance(path, str) and info.path != path:
            return False
        if isinstance(path, re.Pattern) and path.search(info.path) is None:
            return False
        return predicate is None or predicate(info)

    return matches


class _Body:
    """The request body as it arrives: fixed length, chunked, or none."""

    def __init__(self, stream: BufferedIOBase, headers: Mapping[str, str]) -> None:
        self._stream = stream
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self.length = None if self.chunked or length is None else int(length)
        self._left = self.length or 0
        self._done = not self.chunked and not self._left

    def chunks(self) -> Iterator[bytes]:
        while not self._done:
            piece = self._read_fixed() if not self.chunked else self._read_chunk()
            if piece:
                yield piece

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    def drain(self) -> None:
        for _ in self.chunks():
            pass

    def _read_fixed(self) -> bytes:
        piece = self._stream.read(min(CHUNK, self._left))
        if not piece:
            raise ConnectionError("client closed the connection mid-body")
        self._left -= len(piece)
        self._done = self._left == 0
        return piece

    def _read_chunk(self) -> bytes:
        if self._left == 0:
            size_line = self._stream.readline(1024)
            if not size_line:
                raise ConnectionError("client closed the connection mid-body")
            self._left = int(size_line.split(b";", 1)[0].strip(), 16)
            if self._left == 0:
                while self._stream.readline(1024).strip():  # trailers up to the blank line
                    pass
                self._done = True
                return b""
        piece = self._stream.read(min(CHUNK, self._left))
        if not piece:
            raise ConnectionError("client closed the connection mid-body")
        self._left -= len(piece)
        if self._left == 0:
            self._stream.readline(16)  # the CRLF after the chunk
        return piece


def _action_of(query: str, headers: Mapping[str, str], form: bytes) -> str | None:
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    for source in (query, form.decode("utf-8", "replace")):
        found = parse_qs(source).get("Action")
        if found:
            return found[0]
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: ClassVar[FaultProxy]

    def setup(self) -> None:
        super().setup()  # applies the class's `timeout` (set by FaultProxy.start) to the socket
        self.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("faultproxy %s: " + format, self.address_string(), *args)

    def _handle(self) -> None:
        if self.path.startswith(("http://", "https://")):
            # Absolute form: a client using this as its HTTP_PROXY. Forward it to the upstream
            # in origin form, and count it, so tests can tell proxied calls from direct ones.
            target = urlsplit(self.path)
            self.path = (target.path or "/") + (f"?{target.query}" if target.query else "")
            self.owner._count_proxied()
        path, _, query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = _Body(self.rfile, headers)
        form = b""
        form_encoded = headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        )
        if form_encoded and body.length is not None and body.length <= FORM_LIMIT:
            form = body.read_all()
        info = RequestInfo(self.command, path, query, headers, _action_of(query, headers, form))
        fault = self.owner._arrived(info)
        if fault is not None and fault.drop_after is not None:
            self._drop(body, fault.drop_after)
            return
        if fault is not None and fault.stall is not None:
            self._stall(body, fault.stall)
            return
        if fault is not None and fault.status == 0:  # reset, slow or rewrite: forwarded
            self._forward(body, form, fault)
            return
        if fault is not None:
            body.drain()  # the connection stays usable for the client's next request
            self._answer(fault.status, fault.headers, fault.body)
            return
        self._forward(body, form)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _drop(self, body: _Body, after: int) -> None:
        """A connection lost mid-request: read `after` bytes of the body, then cut both ways
        without an answer. The upstream never sees the request."""
        received = 0
        for piece in body.chunks():
            received += len(piece)
            if received >= after:
                break
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _stall(self, body: _Body, seconds: float) -> None:
        """A peer that took the request and went silent: no answer until `seconds` have
        passed (or the proxy stops), then the connection closes."""
        with contextlib.suppress(OSError, ConnectionError):
            body.drain()
        self.owner._stopping.wait(seconds)
        self.close_connection = True
        _reset(self.connection)

    def _answer(self, status: int, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, body: _Body, form: bytes, fault: Fault | None = None) -> None:
        upstream = self.owner.upstream
        connection = http.client.HTTPConnection(
            upstream.hostname or "127.0.0.1", upstream.port or 80, timeout=self.owner.timeout
        )
        try:
            connection.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            host = self.headers.get("Host")
            if host is None or self.owner.rewrite_host:
                host = upstream.netloc
            connection.putheader("Host", host)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP | {"host", "content-length"}:
                    connection.putheader(name, value)
            self._send_body(connection, body, form, fault)
            response = connection.getresponse()
        except _Cut:
            # Both sides lose the connection mid-body, without an answer.
            if connection.sock is not None:
                _reset(connection.sock)
            connection.close()
            self.close_connection = True
            _reset(self.connection)
            return
        except OSError as error:
            connection.close()
            self.close_connection = True
            message = f"faultproxy: upstream {upstream.netloc} failed: {error}".encode()
            self._answer(502, (("Content-Type", "text/plain"),), message)
            return
        try:
            if fault is not None and fault.lose_answer:
                response.read()  # the upstream has done the request and answered...
                self.close_connection = True
                _reset(self.connection)  # ...and the answer never reaches the client
                return
            self._relay(response, fault)
        finally:
            connection.close()

    def _send_body(
        self,
        connection: http.client.HTTPConnection,
        body: _Body,
        form: bytes,
        fault: Fault | None = None,
    ) -> None:
        pieces = _paced(body.chunks(), fault.rate if fault else None)
        cut = fault.reset_after if fault else None
        if cut is not None and cut < 0:
            cut = max(0, (body.length or 0) + cut)
        if body.chunked:
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for piece in _cut(pieces, cut):
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            connection.send(b"0\r\n\r\n")
        elif body.length is not None:
            connection.putheader("Content-Length", str(body.length))
            connection.endheaders()
            if form:
                connection.send(form)
            for piece in _cut(pieces, cut):
                connection.send(piece)
        else:
            connection.endheaders()

    def _relay(self, response: http.client.HTTPResponse, fault: Fault | None = None) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        replaced = {name.lower(): value for name, value in fault.rewrite} if fault else {}
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP | {"content-length"} | replaced.keys():
                self.send_header(name, value)
        for name, value in fault.rewrite if fault else ():
            self.send_header(name, value)
        rate = fault.rate if fault else None
        bodiless = self.command == "HEAD" or response.status in (204, 304)
        if bodiless or (length is not None and not response.chunked):
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            pieces = _paced(_read_all(response) if not bodiless else iter(()), rate)
            try:
                for piece in _cut(pieces, fault.cut_answer if fault else None):
                    self.wfile.write(piece)
                    self.wfile.flush()
            except _Cut:  # the answer breaks off mid-body
                self.close_connection = True
                _reset(self.connection)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in _paced(_read_all(response), rate):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")


class _Cut(Exception):
    """The body reached the byte where a reset was asked for."""


def _cut(pieces: Iterator[bytes], at: int | None) -> Iterator[bytes]:
    """The pieces up to byte `at`, then _Cut (None: all of them)."""
    sent = 0
    for piece in pieces:
        if at is not None and sent + len(piece) >= at:
            if at > sent:
                yield piece[: at - sent]
            raise _Cut
        sent += len(piece)
        yield piece
    if at is not None:
        raise _Cut


def _paced(pieces: Iterator[bytes], rate: int | None) -> Iterator[bytes]:
    """The pieces, re-cut to pass at most `rate` bytes per second (None: as they come)."""
    if rate is None:
        yield from pieces
        return
    step = max(1, rate // 10)
    for piece in pieces:
        for start in range(0, len(piece), step):
            time.sleep(0.1)
            yield piece[start : start + step]


def _read_all(response: http.client.HTTPResponse) -> Iterator[bytes]:
    while piece := response.read(CHUNK):
        yield piece


def _reset(connection: socket.socket) -> None:
    """Close with a TCP RST (linger 0), as a crashed peer or load balancer would."""
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes the client connections itself

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("faultproxy: connection from %s ended with an error", client_address)


@dataclass
class FaultProxy:
    """``with FaultProxy(moto.url) as proxy:`` then point the client at ``proxy.url``."""

    upstream_url: str
    timeout: float = 30.0
    rewrite_host: bool = False
    history_size: int = 1000
    upstream: SplitResult = field(init=False, repr=False)
    history: deque[RequestInfo] = field(init=False, repr=False)
    injected: int = field(init=False, default=0)
    proxied: int = field(init=False, default=0)  # requests that came as to a forward proxy
    _actions: Counter[str] = field(init=False, default_factory=Counter, repr=False)
    _routes: Counter[tuple[str, str]] = field(init=False, default_factory=Counter, repr=False)
    _faults: list[Fault] = field(init=False, default_factory=list, repr=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)
    _connections: set[socket.socket] = field(init=False, default_factory=set, repr=False)
    _server: _Server | None = field(init=False, default=None, repr=False)
    _thread: threading.Thread | None = field(init=False, default=None, repr=False)
    _stopping: threading.Event = field(init=False, default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.upstream = urlsplit(self.upstream_url)
        if self.upstream.scheme != "http" or not self.upstream.hostname:
            raise ValueError(f"upstream must be http://host:port, got {self.upstream_url!r}")
        self.history = deque(maxlen=self.history_size)

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not running; call start()")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        # Each proxy gets its own handler class; `timeout` bounds every read and write of it.
        handler = type("FaultProxyHandler", (_Handler,), {"owner": self, "timeout": self.timeout})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"faultproxy->{self.upstream.netloc}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # stalled handlers give up their wait
        server.shutdown()  # returns once serve_forever has left its loop
        server.server_close()
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # wakes a handler blocked on a read
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- faults ---------------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        *,
        status: int,
        body: bytes | str = b"",
        action: str | None = None,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        predicate: Callable[[RequestInfo], bool] | None = None,
        retry_after: int | str | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer the next `count` requests that match every given criterion.

        `path` is the exact path (no query) or a regex searched in it. Faults are tried in the
        order they were added; a spent one stays in place with ``remaining == 0``.
        """
        data = body.encode() if isinstance(body, str) else body
        extra = list((headers or {}).items())
        if content_type is None and data:
            content_type = "application/json" if data.startswith(b"{") else "text/xml"
        if content_type is not None:
            extra.append(("Content-Type", content_type))
        if retry_after is not None:
            extra.append(("Retry-After", str(retry_after)))
        fault = Fault(
            status=status,
            body=data,
            headers=tuple(extra),
            matches=_matcher(action, method, path, predicate),
            remaining=count,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def drop_next(
        self,
        count: int,
        *,
        after_bytes: int,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        predicate: Callable[[RequestInfo], bool] | None = None,
    ) -> Fault:
        """Cut the connection of the next `count` matching requests after `after_bytes` bytes
        of their body (0: before reading any), as a dying load balancer would."""
        fault = Fault(
            status=0,
            body=b"",
            headers=(),
            matches=_matcher(None, method, path, predicate),
            remaining=count,
            drop_after=after_bytes,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def reset_next(
        self,
        count: int,
        *,
        after_bytes: int,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        predicate: Callable[[RequestInfo], bool] | None = None,
    ) -> Fault:
        """Forward the next `count` matching requests, but only `after_bytes` bytes of their
        body (negative: all but the last that many), then reset both connections: the upstream
        sees the request die mid-body, the client gets no answer."""
        return self._add(
            Fault(0, b"", (), _matcher(None, method, path, predicate), count,
                  reset_after=after_bytes)
        )  # fmt: skip

    def stall_next(
        self,
        count: int,
        *,
        seconds: float,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        predicate: Callable[[RequestInfo], bool] | None = None,
    ) -> Fault:
        """Take the next `count` matching requests whole and answer nothing for `seconds`
        (or until the proxy stops); the upstream never sees them."""
        matches = _matcher(None, method, path, predicate)
        return self._add(Fault(0, b"", (), matches, count, stall=seconds))

    def slow_next(
        self,
        count: int,
        *,
        rate: int,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        predicate: Callable[[RequestInfo], bool] | None = None,
    ) -> Fault:
        """Forward the next `count` matching requests at `rate` bytes per second, request body
        and answer body alike (in tenths of a second: a slow peer, never a silent one)."""
        return self._add(
            Fault(0, b"", (), _matcher(None, method, path, predicate), count, rate=rate)
        )

    def rewrite_next(
        self,
        count: int,
        *,
        headers: Mapping[str, str],
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        predicate: Callable[[RequestInfo], bool] | None = None,
    ) -> Fault:
        """Forward the next `count` matching requests and replace these headers of the answer
        (e.g. a Docker-Content-Digest that does not match what the upstream stored)."""
        return self._add(
            Fault(0, b"", (), _matcher(None, method, path, predicate), count,
                  rewrite=tuple(headers.items()))
        )  # fmt: skip

    def lose_answer_next(
        self,
        count: int,
        *,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        predicate: Callable[[RequestInfo], bool] | None = None,
    ) -> Fault:
        """Forward the next `count` matching requests whole and wait for the upstream's answer,
        then reset the client's connection instead of relaying it: the request took effect,
        the client cannot know."""
        matches = _matcher(None, method, path, predicate)
        return self._add(Fault(0, b"", (), matches, count, lose_answer=True))

    def cut_answer_next(
        self,
        count: int,
        *,
        after_bytes: int,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        predicate: Callable[[RequestInfo], bool] | None = None,
    ) -> Fault:
        """Forward the next `count` matching requests and relay only `after_bytes` bytes of the
        answer's body (one with a Content-Length), then reset: a download that breaks off."""
        matches = _matcher(None, method, path, predicate)
        return self._add(Fault(0, b"", (), matches, count, cut_answer=after_bytes))

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def throttle_next(self, count: int, action: str, *, retry_after: int | None = None) -> Fault:
        """STS/IAM's throttling answer (HTTP 400, code Throttling) for the next `count` calls."""
        return self.fail_next(
            count, status=400, body=aws_query_error(), action=action, retry_after=retry_after
        )

    def fail_sequence(
        self,
        statuses: Sequence[int],
        *,
        retry_after: int | None = None,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        predicate: Callable[[RequestInfo], bool] | None = None,
    ) -> list[Fault]:
        """A burst: the next matching requests are answered with these statuses in order (a
        registry error body, and `Retry-After` when given)."""
        body = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "fault injected"}]})
        return [
            self.fail_next(1, status=status, body=body, retry_after=retry_after, method=method,
                           path=path, predicate=predicate)
            for status in statuses
        ]  # fmt: skip

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ---- counts ---------------------------------------------------------------------------

    def action_count(self, action: str) -> int:
        with self._lock:
            return self._actions[action]

    def route_count(self, method: str, path: str) -> int:
        with self._lock:
            return self._routes[(method.upper(), path)]

    @property
    def actions(self) -> dict[str, int]:
        with self._lock:
            return dict(self._actions)

    @property
    def routes(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._routes)

    def reset_counts(self) -> None:
        with self._lock:
            self._actions.clear()
            self._routes.clear()
            self.history.clear()
            self.injected = 0

    # ---- called by the handler threads --------------------------------------------------

    def _count_proxied(self) -> None:
        with self._lock:
            self.proxied += 1

    def _arrived(self, info: RequestInfo) -> Fault | None:
        with self._lock:
            if info.action is not None:
                self._actions[info.action] += 1
            self._routes[(info.method.upper(), info.path)] += 1
            self.history.append(info)
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(info):
                    fault.remaining -= 1
                    fault.served += 1
                    self.injected += 1
                    return fault
        return None

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class Blackhole:
    """A loopback port that accepts no connection: its one-place backlog is taken by a socket of
    its own, so the kernel drops every further SYN and a client waits out its connect timeout."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._filler = socket.socket()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> Self:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self._filler.settimeout(2)
        self._filler.connect(self._listener.getsockname())
        return self

    def __exit__(self, *exc: object) -> None:
        self._filler.close()
        self._listener.close()
