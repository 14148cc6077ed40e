"""Blob transfers: the download stream, and uploads as one streamed PUT or as PATCH chunks that
resume where the registry says it is.

Monolithic (POST, then PUT with the whole body and `?digest=`) is the fewest round trips and what
ECR needs. Above `Registry.chunk_size` a blob goes up in PATCH chunks with `Content-Range`; when
a connection drops mid-chunk, a GET on the upload URL tells how many bytes the registry holds
(`Range: 0-N`) and the upload goes on from byte N+1. Either way the bytes are hashed on the way
and the last byte is never sent when the digest is wrong.

Retrying a blob is safe: it is content-addressed, so whichever upload completes stores the same
bytes under the same digest; an abandoned upload session is the registry's to expire. The bound
is the registry's `Network` (`XACCT_RETRIES`): at most 1 + retries whole uploads per blob, and as
many resumes within one chunked upload.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

from gitlab_xacct import cancel
from gitlab_xacct.errors import PushError, RegistryUnreachable
from gitlab_xacct.registry.auth import push_scope
from gitlab_xacct.registry.image import Blob
from gitlab_xacct.registry.retry import RETRY_STATUSES, Again, NoAnswer, answer, repeat, retry_after
from gitlab_xacct.registry.session import Session
from gitlab_xacct.registry.transport import Response
from gitlab_xacct.registry.transport_errors import TransportError

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024  # read and send blobs a MiB at a time: flat memory, few syscalls
_RANGE = re.compile(r"(?:bytes=)?(\d+)-(\d+)")
_OCTETS = "application/octet-stream"


class _Transient(Exception):
    """Worth starting the blob's upload over: 5xx, 429, dropped connection, lost session."""

    def __init__(self, reason: str, later: float | None = None) -> None:
        super().__init__(reason)
        self.later = later  # the registry's Retry-After, in seconds


def upload_blob(registry: Session, repository: str, blob: Blob) -> None:
    chunked = 0 < registry.chunk_size < blob.size
    attempts = registry.network.attempts

    def step(attempt: int, last: bool) -> None:
        try:
            if chunked:
                _chunked(registry, repository, blob)
            else:
                _monolithic(registry, repository, blob)
        except _Transient as exc:
            reason = str(exc)

            def failed(count: int) -> PushError:
                return PushError(
                    f"upload of {blob.digest} to {registry.host} failed after {count} attempts "
                    f"(last: {reason}); try again later, or raise XACCT_RETRIES"
                )

            raise Again(reason, give_up=failed, later=exc.later) from None

    def pause(attempt: int, reason: str, wait: float) -> None:
        log.warning(
            "upload of %s failed (%s); starting it over in %.1f s (attempt %d of %d)",
            blob.digest, reason, wait, attempt + 1, attempts,
        )  # fmt: skip

    repeat(registry.network, attempts, step, pause)


def _open_session(registry: Session, repository: str, blob: Blob) -> tuple[str, bool]:
    """The upload URL: one a 202 mount left for this blob (reused), else a fresh POST."""
    left = registry.take_upload_session(repository, blob.digest)
    if left:
        return left, True
    # Opening a session changes nothing that matters (an unused one expires): retried in place.
    start = registry.send(
        "POST", f"/v2/{repository}/blobs/uploads/", scopes=_scopes(repository), retry=True
    )
    registry.check(start, f"starting the upload of {blob.digest}", (202,))
    return _location(registry, start, None), False


def _monolithic(registry: Session, repository: str, blob: Blob) -> None:
    url, reused = _open_session(registry, repository, blob)
    try:
        response = registry.send(
            "PUT",
            _with_digest(url, blob.digest),
            scopes=_scopes(repository),
            body=partial(VerifiedStream, blob),
            headers={"Content-Type": _OCTETS},
        )
    except RegistryUnreachable as exc:
        raise _Transient(_short(exc)) from None
    _finish(registry, response, blob, reused)


@dataclass(slots=True)
class _Resumable:
    """A chunked upload in progress: where to send the next chunk, how far the registry holds
    the blob, what reads it, whether the session was a mount's; `reason`: why the last try
    broke off."""

    url: str
    reader: _Reader
    reused: bool
    offset: int = 0
    reason: str = ""


def _chunked(registry: Session, repository: str, blob: Blob) -> None:
    url, reused = _open_session(registry, repository, blob)
    reader = _Reader(blob)
    upload = _Resumable(url, reader, reused)

    def step(attempt: int, last: bool) -> None:
        if attempt > 1:  # resume where the registry says it is
            upload.url, upload.offset = _status(
                registry, repository, upload.url, upload.offset, blob
            )
            log.warning(
                "upload of %s interrupted (%s); resuming at byte %d",
                blob.digest, upload.reason, upload.offset,
            )  # fmt: skip
        _send_chunks(registry, repository, blob, upload)

    try:
        # Resumes: the same policy as every retry, except that a connection that broke is
        # resumed at once (only an answer from a struggling registry is waited out).
        repeat(registry.network, registry.network.attempts, step, lambda *_: None)
        try:
            response = registry.send(
                "PUT", _with_digest(upload.url, blob.digest), scopes=_scopes(repository)
            )
        except RegistryUnreachable as exc:
            raise _Transient(str(exc)) from None
        _finish(registry, response, blob, reused=False)
    finally:
        reader.close()


def _send_chunks(registry: Session, repository: str, blob: Blob, upload: _Resumable) -> None:
    """PATCH the chunks from `upload.offset` to the end; a break worth resuming is `Again`."""
    while upload.offset < blob.size:
        offset = upload.offset
        length = min(registry.chunk_size, blob.size - offset)
        try:
            response: Response | None = registry.send(
                "PATCH",
                upload.url,
                scopes=_scopes(repository),
                body=partial(upload.reader.piece, offset, length),
                headers={
                    "Content-Type": _OCTETS,
                    "Content-Range": f"{offset}-{offset + length - 1}",
                },
            )
            reason = ""
        except RegistryUnreachable as exc:
            response, reason = None, _short(exc)
        if response is not None and response.status_code == 202:
            upload.url = _location(registry, response, upload.url)
            upload.offset = _held(response.headers.get("Range"), offset, offset + length, blob)
            continue
        later = None
        if response is not None:
            status = response.status_code
            if status == 404:
                raise _Transient(_lost(response, upload.reused))
            if status < 500 and status not in (408, 416, 429):
                registry.check(response, f"upload of {blob.digest} (PATCH)", (202,))
            reason, later = answer(response), retry_after(response)
        upload.reason = reason
        # The registry answered, so it is there but struggling: wait. No answer: resume now.
        give_up = partial(_resumes_spent, reason)
        raise Again(reason, give_up=give_up, later=later, wait=response is not None)


def _resumes_spent(reason: str, attempts: int) -> _Transient:
    """Past the bound on resumes: the whole upload starts over (upload_blob's loop)."""
    return _Transient(f"{reason}, {attempts - 1} resumes already")


def _status(
    registry: Session, repository: str, url: str, acked: int, blob: Blob
) -> tuple[str, int]:
    """Where the registry is: GET on the upload URL, `Range: 0-N` (N+1 bytes held)."""
    try:
        response = registry.send("GET", url, scopes=_scopes(repository))
    except RegistryUnreachable as exc:
        raise _Transient(str(exc)) from None
    if response.status_code != 204:
        raise _Transient(f"the registry lost the upload session ({answer(response)})")
    return _location(registry, response, url), _held(
        response.headers.get("Range"), acked, None, blob
    )


def _held(header: str | None, acked: int, expected: int | None, blob: Blob) -> int:
    """Bytes the registry holds, from its `Range` answer; `expected` when it does not say."""
    match = _RANGE.fullmatch((header or "").strip())
    if match is None:
        if expected is None:
            raise _Transient("the registry did not say how much of the upload it holds")
        return expected
    start, end = int(match[1]), int(match[2])
    # distribution answers "0-0" for an empty upload too: ambiguous only before any byte.
    held = 0 if (start, end) == (0, 0) and acked == 0 and expected is None else end + 1
    if start != 0 or held > blob.size or (expected is not None and held > expected):
        raise PushError(f"upload of {blob.digest}: the registry claims bytes {header}")
    return held


def _finish(registry: Session, response: Response, blob: Blob, reused: bool) -> None:
    if response.status_code in RETRY_STATUSES or response.status_code >= 500:
        raise _Transient(answer(response), retry_after(response))
    if response.status_code == 404:
        raise _Transient(_lost(response, reused))
    registry.check(response, f"upload of {blob.digest}", (201,))
    echoed = response.headers.get("Docker-Content-Digest")
    if echoed and echoed != blob.digest:
        raise PushError(f"registry {registry.host} stored blob {blob.digest} under digest {echoed}")


def _lost(response: Response, reused: bool) -> str:
    """A 404 on an upload URL: the session is gone (expired, or cancelled by the registry, as
    docker-registry does when a cut-off PATCH left its file at another offset than its state
    says, even after it answered a status GET). Starting over is the only way on; a missing
    repository fails the new session's POST instead."""
    if reused:
        return "the upload session left by the mount has expired"
    return f"the registry lost the upload session ({answer(response)})"


def _short(exc: RegistryUnreachable) -> str:
    """Why there was no answer, without the advice that ends the full message."""
    return str(getattr(exc, "reason", "") or exc)


def _scopes(repository: str) -> tuple[str, ...]:
    return (push_scope(repository),)


def _location(registry: Session, response: Response, current: str | None) -> str:
    location = response.headers.get("Location")
    if location:
        return urljoin(registry.url("/"), location)
    if current is None:
        raise PushError(f"registry {registry.host} opened an upload without a Location header")
    return current


def _with_digest(url: str, digest: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}digest={digest}"


class BlobCheck:
    """Counts and hashes a blob's bytes as they pass, and raises before the caller sends the
    chunk that would complete a blob whose bytes lie: more than declared, or another digest.

    `hashing=False` counts only: for a stream whose feeder checks the digest itself (the
    fan-out tee, which hashes each blob once for all its uploads)."""

    def __init__(self, blob: Blob, *, hashing: bool = True) -> None:
        self.blob = blob
        self.seen = 0
        self._hasher = hashlib.sha256() if hashing else None

    def add(self, data: bytes) -> None:
        """The next bytes of the stream; b"" is its end."""
        blob = self.blob
        if not data and self.seen < blob.size:
            raise PushError(f"blob {blob.digest} has {self.seen} bytes, {blob.size} declared")
        self.seen += len(data)
        if self._hasher is not None:
            self._hasher.update(data)
        if self.seen > blob.size:
            raise PushError(f"blob {blob.digest} has more bytes than the {blob.size} declared")
        if self.seen == blob.size and data and self._hasher is not None:
            actual = "sha256:" + self._hasher.hexdigest()
            if actual != blob.digest:
                raise PushError(
                    f"blob {blob.digest} in the source hashes to {actual}; the image is corrupt "
                    "(rebuild or re-export it)"
                )


def prechecked(stream: object) -> bool:
    """Whether `stream` checks the blob's digest itself, so an upload need not hash it again."""
    return getattr(stream, "checks_digest", False) is True


class _Reader:
    """The blob's bytes in order, hashed on the way: its last byte is refused when the hash is
    wrong. Going back (a resume) opens the blob again and re-reads up to the offset."""

    def __init__(self, blob: Blob) -> None:
        self._blob = blob
        self._stream: BinaryIO | None = None
        self._check = BlobCheck(blob)

    def piece(self, offset: int, length: int) -> _Piece:
        """A request body of `length` bytes from `offset`."""
        if self._stream is None or self._check.seen > offset:
            self.close()
            self._stream = self._blob.open()
            self._check = BlobCheck(self._blob, hashing=not prechecked(self._stream))
        while self._check.seen < offset:
            self._read(min(CHUNK, offset - self._check.seen))
        return _Piece(self, length)

    def _read(self, size: int) -> bytes:
        if self._stream is None:
            raise RuntimeError("piece() opens the stream before any read")
        cancel.check()
        data = self._stream.read(size)
        self._check.add(data)
        if self._check.seen == self._blob.size:
            self._check.add(self._stream.read(1))  # a byte past the end is a lie too
        return data

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class _Piece:
    """One PATCH body: `len()` gives the transport its Content-Length, iteration streams it."""

    def __init__(self, reader: _Reader, length: int) -> None:
        self._reader = reader
        self._length = length

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        left = self._length
        while left:
            data = self._reader._read(min(CHUNK, left))
            left -= len(data)
            yield data


class VerifiedStream:
    """A request body that streams a blob and refuses to send its last chunk if the bytes lie.

    The registry checks the digest too, but only after it has the whole body; stopping before the
    last chunk means a bad source never becomes a blob, and we can say which file is wrong.
    """

    def __init__(self, blob: Blob) -> None:
        self._blob = blob

    def __len__(self) -> int:
        return self._blob.size

    def __iter__(self) -> Iterator[bytes]:
        with self._blob.open() as stream:
            check = BlobCheck(self._blob, hashing=not prechecked(stream))
            while True:
                cancel.check()
                chunk = stream.read(CHUNK)
                check.add(chunk)
                if not chunk:
                    return
                yield chunk


class ResponseStream(io.RawIOBase):
    """A blob response body as a binary stream: the bytes as served, read straight into the
    caller's buffer, closed with the response."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self._response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        cancel.check()
        try:
            return self._response.readinto(buffer)
        except TransportError as exc:
            # A source that breaks off mid-blob: the upload it feeds starts over (a new GET).
            host = urlsplit(self._response.url).netloc
            reason = f"{host} broke off the blob it was sending ({exc.reason})"
            raise NoAnswer(f"registry {reason}", reason) from None

    def close(self) -> None:
        self._response.close()
        super().close()
