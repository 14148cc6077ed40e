"""Reading a blob once for several uploads: one reader thread feeds a bounded pipe per upload.

Memory stays bounded (PIPE_DEPTH chunks per pipe); a pipe whose upload has ended (done or
failed) is dropped, so one broken destination never stalls the others.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable
from functools import partial
from typing import BinaryIO, cast

from gitlab_xacct import cancel
from gitlab_xacct.registry.blobs import BlobCheck
from gitlab_xacct.registry.image import Blob

CHUNK = 1024 * 1024
PIPE_DEPTH = 8
_PUT_WAIT = 0.5  # seconds between checks that a slow consumer is still alive


class _Pipe(io.RawIOBase):
    """The reading end an upload sees: the feeder's chunks as they are (a read of at least a
    chunk's size copies nothing), b"" at the end, the feeder's error instead of a chunk."""

    checks_digest = True  # the feeder hashes the blob once, for every upload it feeds

    def __init__(self) -> None:
        super().__init__()
        self.chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=PIPE_DEPTH)
        self._left = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(partial(self.read, CHUNK), b""))
        if not self._left and not self._eof:
            item = self.chunks.get()
            if isinstance(item, BaseException):
                raise item
            self._eof = item == b""
            self._left = item
        data, self._left = (
            (self._left, b"") if size >= len(self._left) else (self._left[:size], self._left[size:])
        )
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Tee:
    """`count` Blobs that share one read of `blob`; run `feed` in a thread of its own.

    Each Blob's first open() is its pipe; a later open() (an upload retrying) reads the source
    afresh, which only a failure costs. Call `done(n)` when upload n has ended, however it
    ended, so the feeder stops waiting for it.
    """

    def __init__(self, blob: Blob, count: int, on_bytes: Callable[[int], None]) -> None:
        self.blobs, self.feed, self._pipes = _tee(blob, count, on_bytes)

    def done(self, number: int) -> None:
        self._pipes[number].close()


def _tee(blob: Blob, count: int, on_bytes: Callable[[int], None]) -> tuple[
    list[Blob], Callable[[], None], list[_Pipe]
]:  # fmt: skip
    pipes = [_Pipe() for _ in range(count)]
    opened = [threading.Event() for _ in range(count)]

    def opener(number: int) -> Callable[[], BinaryIO]:
        def open_() -> BinaryIO:
            if opened[number].is_set():
                return blob.open()
            opened[number].set()
            return cast(BinaryIO, pipes[number])

        return open_

    def feed() -> None:
        live = list(pipes)
        check = BlobCheck(blob)  # the one hash of this blob; the uploads only count
        try:
            with blob.open() as source:
                while live:
                    cancel.check()
                    chunk = source.read(CHUNK)
                    check.add(chunk)  # a lie is raised before its last chunk leaves
                    on_bytes(len(chunk))
                    live = [p for p in live if _offer(p, chunk)]
                    if not chunk:
                        return
        except BaseException as exc:
            for pipe in live:
                _offer(pipe, exc)
            raise

    blobs = [
        Blob(digest=blob.digest, size=blob.size, media_type=blob.media_type, open=opener(n))
        for n in range(count)
    ]
    return blobs, feed, pipes


def _offer(pipe: _Pipe, item: bytes | BaseException) -> bool:
    """Put `item` in the pipe unless its reader has gone; False once it has."""
    while not pipe.closed:
        try:
            pipe.chunks.put(item, timeout=_PUT_WAIT)
        except queue.Full:
            continue
        return True
    return False
