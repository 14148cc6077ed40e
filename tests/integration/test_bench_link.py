"""bench/links.py, the link scenario 7 puts in front of each registry: every byte relayed, at
no more than its rate, shared by its connections. (The benchmark is not a test; the link it
measures through must still be right.)"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bench.links import Link

RATE = 4_000_000  # bytes per second
SIZE = 1_000_000


@pytest.fixture
def digest_server() -> Iterator[int]:
    """Answers each connection with the sha256 of everything it sent (after its SHUT_WR)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            hasher = hashlib.sha256()
            for _ in range(100_000):  # bounded: far more reads than SIZE needs
                data = conn.recv(65536)
                if not data:
                    break
                hasher.update(data)
            conn.sendall(hasher.hexdigest().encode())

    def accept() -> None:
        for _ in range(10):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def _send(port: int, data: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(4096), b"")).decode()


def test_every_byte_arrives_and_no_faster_than_the_rate(digest_server: int) -> None:
    data = os.urandom(SIZE)
    with Link(digest_server, RATE) as link:
        started = time.monotonic()
        answer = _send(link.port, data)
        took = time.monotonic() - started
    assert answer == hashlib.sha256(data).hexdigest()
    assert took >= SIZE / RATE * 0.9  # a quarter of a second at least


def test_connections_share_the_link(digest_server: int) -> None:
    data = os.urandom(SIZE)
    answers: list[str] = []
    with Link(digest_server, RATE) as link:
        started = time.monotonic()
        threads = [
            threading.Thread(target=lambda: answers.append(_send(link.port, data)))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        took = time.monotonic() - started
    assert answers == [hashlib.sha256(data).hexdigest()] * 3
    assert took >= 3 * SIZE / RATE * 0.9  # three connections, one link's bandwidth
