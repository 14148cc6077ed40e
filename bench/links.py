"""A network link in front of a local registry: a TCP relay whose bytes share one rate limit.

A job pushing to ECR in other accounts or regions waits on the network, and each registry has
its own path; on this machine three docker-registry processes instead wait on the same two
cores. `Link` puts a registry behind a link of its own (every connection through it shares one
bandwidth, in each direction), so a scenario can show what fan-out does when the links, not
the registries' CPU, set the pace. It relays bytes as they are and knows nothing of HTTP.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Self

_PIECE = 64 * 1024


class _Bucket:
    """A token bucket: `take(n)` returns once n bytes fit under `rate` bytes per second."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._lock = threading.Lock()
        self._next = time.monotonic()  # when the link is free again

    def take(self, size: int) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + size / self._rate
        if start > now:
            time.sleep(start - now)


class Link:
    """Listens on 127.0.0.1 (the `port` it got) and relays every connection to `upstream_port`
    at no more than `rate` bytes per second in each direction, shared by its connections."""

    def __init__(self, upstream_port: int, rate: float) -> None:
        self._upstream = upstream_port
        self._buckets = (_Bucket(rate), _Bucket(rate))  # up (to the registry), down
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="link-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        self._listener.close()
        for sock in sockets:
            sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while True:  # ends when close() closes the listener
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for source, sink, bucket in (
                (client, upstream, self._buckets[0]),
                (upstream, client, self._buckets[1]),
            ):
                threading.Thread(
                    target=_pump, args=(source, sink, bucket), name="link-pump", daemon=True
                ).start()


def _pump(source: socket.socket, sink: socket.socket, bucket: _Bucket) -> None:
    """Copy until either side ends; then end the other side's writing too."""
    try:
        while True:  # ends at the source's EOF or either socket's error
            data = source.recv(_PIECE)
            if not data:
                break
            bucket.take(len(data))
            sink.sendall(data)
    except OSError:
        pass  # a reset or a close(): the other pump and the peers see the end
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
