"""HTTP/1.1 on a connected socket (RFC 9112): a request head written out, an answer's head parsed,
its body framed by Content-Length, chunked coding, or the end of the connection.

This is the part of `http.client` the registry client uses, without the `email` package that
`http.client` imports for header parsing (about 12 ms of every start, more than the rest of a copy
with every blob in place). Limits follow http.client's: 64 KiB per line, 100 header fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class Readable(Protocol):
    """What answers are read from: the connection's buffered reader (or a raw one)."""

    def readline(self, size: int = -1, /) -> bytes: ...

    def readinto(self, buffer: WriteableBuffer, /) -> int | None: ...


MAX_LINE = 65536
MAX_HEADERS = 100
# A request target or header value with a control character or a line break could smuggle a
# second request onto the connection: such input (a hostile Location, say) is refused.
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9110 tchar, one or more: methods, header names, authentication schemes and their parameters.
TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN = re.compile(TCHARS)


class ProtocolError(Exception):
    """The peer broke the protocol or the connection; `reason` says how in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def request_head(method: str, target: str, headers: Mapping[str, str]) -> bytes:
    """`METHOD target HTTP/1.1`, the header fields, the empty line; refused when unsafe."""
    if not _TOKEN.fullmatch(method) or _UNSAFE_TARGET.search(target):
        raise ValueError(f"refusing to send an unsafe request line: {method} {target!r}")
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or _UNSAFE_VALUE.search(value):
            raise ValueError(f"refusing to send an unsafe header field {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Headers(Mapping[str, str]):
    """Response headers, case-insensitive; a repeated header's values joined with ", "."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            key = name.lower()
            joined = f"{self._items[key][1]}, {value}" if key in self._items else value
            self._items[key] = (name, joined)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Answer:
    """An answer's status line and header fields, and the framing of its body."""

    def __init__(
        self,
        version: str,
        status: int,
        reason: str,
        fields: list[tuple[str, str]],
        method: str,
    ) -> None:
        self.status = status
        self.reason = reason
        self.fields = fields
        self.headers = headers = Headers(fields)
        connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self.will_close = "close" in connection or (
            version == "HTTP/1.0" and "keep-alive" not in connection
        )
        self.chunked = False
        self.length: int | None = None
        tunnel = method == "CONNECT" and 200 <= status < 300
        if method == "HEAD" or status in (204, 304) or status < 200 or tunnel:
            self.length = 0
        elif headers.get("transfer-encoding"):
            codings = [c.strip().lower() for c in headers["transfer-encoding"].split(",")]
            if codings[-1] != "chunked":
                raise ProtocolError(f"not an HTTP answer (transfer coding {codings[-1]!r})")
            self.chunked = True
        elif headers.get("content-length"):
            values = {v.strip() for v in headers["content-length"].split(",")}
            if len(values) != 1 or not next(iter(values)).isdecimal():
                raise ProtocolError("not an HTTP answer (invalid Content-Length)")
            self.length = int(values.pop())
        else:
            self.will_close = True  # the body ends where the connection does


def read_answer(reader: Readable, method: str) -> Answer:
    """The next final answer on the connection (interim 1xx answers are skipped)."""
    for _ in range(MAX_HEADERS):
        line = _line(reader)
        if not line:
            raise ProtocolError("connection closed without an answer")
        version, status, reason = _status_line(line)
        fields = _fields(reader)
        if 100 <= status < 200 and status != 101:
            continue
        return Answer(version, status, reason, fields, method)
    raise ProtocolError("not an HTTP answer (too many interim answers)")


def _line(reader: Readable) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ProtocolError("not an HTTP answer (a line over 64 KiB)")
    return line


def _status_line(line: bytes) -> tuple[str, int, str]:
    text = line.decode("latin-1").rstrip("\r\n")
    version, _, rest = text.partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdecimal():
        raise ProtocolError(f"not an HTTP answer (status line {text[:40]!r})")
    return version, int(code), reason.strip()


def _fields(reader: Readable) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    while True:
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return fields
        if not line:
            raise ProtocolError("connection closed mid-answer")
        if len(fields) >= MAX_HEADERS:
            raise ProtocolError(f"not an HTTP answer (over {MAX_HEADERS} header fields)")
        text = line.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and fields:  # obsolete line folding: one value
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        name = name.rstrip()  # "Name : value": a proxy must strip it (RFC 9112 5.1); we do too
        if not colon or not _TOKEN.fullmatch(name):
            raise ProtocolError("not an HTTP answer (a malformed header field)")
        fields.append((name, value.strip()))


class Body:
    """An answer's body as its framing allows: `readinto` gives 0 only at its real end, and
    a connection that ends before it is a ProtocolError, never a short body."""

    def __init__(self, reader: Readable, answer: Answer) -> None:
        self._reader = reader
        self._chunked = answer.chunked
        self._left = answer.length  # bytes left; None: until the connection closes
        self._chunk_left = 0
        self.done = self._left == 0

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self.done:
            return 0
        view = memoryview(buffer).cast("B")
        if not view:
            return 0
        if self._chunked:
            return self._chunk_into(view)
        if self._left is None:
            count = self._reader.readinto(view) or 0
            self.done = not count
            return count
        count = self._reader.readinto(view[: self._left]) or 0
        if not count:
            raise ProtocolError("connection closed mid-body")
        self._left -= count
        self.done = self._left == 0
        return count

    def _chunk_into(self, view: memoryview) -> int:
        if not self._chunk_left:
            size = self._chunk_size()
            if size == 0:
                self._trailer()
                self.done = True
                return 0
            self._chunk_left = size
        count = self._reader.readinto(view[: self._chunk_left]) or 0
        if not count:
            raise ProtocolError("connection closed mid-body")
        self._chunk_left -= count
        if not self._chunk_left:
            end = _line(self._reader)
            if not end:
                raise ProtocolError("connection closed mid-body")
            if end not in (b"\r\n", b"\n"):
                raise ProtocolError("not an HTTP answer (a chunk not ended by CRLF)")
        return count

    def _chunk_size(self) -> int:
        line = _line(self._reader)
        if not line:
            raise ProtocolError("connection closed mid-body")
        digits = line.split(b";", 1)[0].strip()
        if not digits or len(digits) > 16 or digits.strip(b"0123456789abcdefABCDEF"):
            raise ProtocolError("not an HTTP answer (a malformed chunk size)")
        return int(digits, 16)

    def _trailer(self) -> None:
        for _ in range(MAX_HEADERS + 1):
            line = _line(self._reader)
            if line in (b"\r\n", b"\n", b""):
                return
        raise ProtocolError(f"not an HTTP answer (over {MAX_HEADERS} trailer fields)")
