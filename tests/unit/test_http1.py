"""HTTP/1.1 framing (RFC 9112) without a socket: answers parsed from bytes, bodies framed by
Content-Length, chunked coding or the connection's end, and every malformed answer refused."""

from __future__ import annotations

import io

import pytest

from gitlab_xacct.registry.http1 import (
    Answer,
    Body,
    Headers,
    ProtocolError,
    read_answer,
    request_head,
)


def parse(raw: bytes, method: str = "GET") -> tuple[Answer, bytes, io.BufferedReader[io.BytesIO]]:
    reader = io.BufferedReader(io.BytesIO(raw))
    answer = read_answer(reader, method)
    body = Body(reader, answer)
    data = bytearray()
    buffer = bytearray(7)  # small on purpose: bodies arrive over many reads
    while count := body.readinto(buffer):
        data += buffer[:count]
    assert body.done
    return answer, bytes(data), reader


def test_a_content_length_body_and_the_next_answer_behind_it() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nDocker-Content-Digest: sha256:ab\r\n\r\n"
        b"hello worldHTTP/1.1 204 No Content\r\n\r\n"
    )
    answer, data, reader = parse(raw)
    assert (answer.status, answer.reason, data) == (200, "OK", b"hello world")
    assert ("Docker-Content-Digest", "sha256:ab") in answer.fields
    assert not answer.will_close
    after = read_answer(reader, "GET")
    assert after.status == 204
    assert Body(reader, after).done


def test_a_chunked_body_with_extensions_and_trailers() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1A\r\n abcdefghijklmnopqrstuvwxy\r\n0\r\nX-Trailer: 1\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    answer, data, reader = parse(raw)
    assert answer.chunked
    assert data == b"hello abcdefghijklmnopqrstuvwxy"
    assert read_answer(reader, "GET").status == 200  # the trailer was consumed


def test_a_body_without_framing_ends_with_the_connection() -> None:
    answer, data, _ = parse(b"HTTP/1.1 200 OK\r\n\r\nall of it")
    assert (data, answer.will_close) == (b"all of it", True)


@pytest.mark.parametrize(
    ("head", "method"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", "HEAD"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "DELETE"),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", "GET"),
        (b"HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT"),
    ],
)
def test_answers_that_never_have_a_body(head: bytes, method: str) -> None:
    answer, data, reader = parse(head + b"NEXT", method)
    assert (answer.length, data) == (0, b"")
    assert reader.read() == b"NEXT"


def test_repeated_headers_are_joined_and_names_are_case_insensitive() -> None:
    headers = Headers([("WWW-Authenticate", 'Basic realm="a"'), ("www-authenticate", "Bearer")])
    assert headers["Www-Authenticate"] == 'Basic realm="a", Bearer'
    assert "WWW-AUTHENTICATE" in headers
    assert headers.get("Location") is None


def test_whitespace_before_a_colon_is_tolerated() -> None:
    answer, data, _ = parse(b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\nX-A:1\r\n\r\nok")
    assert (answer.fields, data) == ([("Content-Length", "2"), ("X-A", "1")], b"ok")


def test_interim_answers_are_skipped_and_folded_values_joined() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="r",\r\n'
        b'\tservice="s"\r\nContent-Length: 0\r\n\r\n'
    )
    answer, _, _ = parse(raw)
    assert answer.status == 401
    assert answer.fields == [
        ("WWW-Authenticate", 'Bearer realm="r", service="s"'),
        ("Content-Length", "0"),
    ]


@pytest.mark.parametrize(
    ("head", "closes"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", False),
    ],
)
def test_whether_the_connection_may_be_reused(head: bytes, closes: bool) -> None:
    assert parse(head)[0].will_close is closes


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "closed without an answer"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "status line"),
        (b"HTTP/2 200\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5", "closed mid-answer"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", "over 100 header fields"),
        (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", "over 64 KiB"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "invalid Con"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "transfer coding"),
    ],
)
def test_malformed_answers_are_protocol_errors(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", "closed mid-body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort", "closed mid-body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello", "closed mid-body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", "CRLF"),
    ],
)
def test_a_body_cut_short_is_never_a_short_body(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse(raw)


def test_a_request_head() -> None:
    head = request_head("PUT", "/v2/a/blobs/uploads/u?digest=sha256:ab", {"Host": "r:5000"})
    assert head == b"PUT /v2/a/blobs/uploads/u?digest=sha256:ab HTTP/1.1\r\nHost: r:5000\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("GET", "/v2/ HTTP/1.1\r\nX-Smuggled: 1\r\n", {}),
        ("GET", "/a b", {}),
        ("GET", "/v2/", {"Authorization": "Bearer t\r\nX-Smuggled: 1"}),
        ("GET", "/v2/", {"Bad Name": "x"}),
        ("GE T", "/v2/", {}),
    ],
)
def test_an_unsafe_request_is_refused(method: str, target: str, headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        request_head(method, target, headers)
