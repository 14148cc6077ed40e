"""The upload body refuses to finish a blob whose bytes do not match its digest, also when the
fan-out tee reads and hashes the blob once for all its uploads."""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from typing import BinaryIO

import pytest

from gitlab_xacct.errors import PushError
from gitlab_xacct.registry.blobs import prechecked
from gitlab_xacct.registry.client import CHUNK, VerifiedStream
from gitlab_xacct.registry.image import OCI_LAYER_TAR, Blob
from gitlab_xacct.registry.tee import Tee


def blob_of(data: bytes, *, digest: str | None = None, size: int | None = None) -> Blob:
    return Blob(
        digest=digest or "sha256:" + hashlib.sha256(data).hexdigest(),
        size=len(data) if size is None else size,
        media_type=OCI_LAYER_TAR,
        open=lambda: io.BytesIO(data),
    )


def test_streams_every_byte_in_bounded_chunks() -> None:
    data = bytes(range(256)) * (CHUNK // 64)  # four chunks
    chunks = list(VerifiedStream(blob_of(data)))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= CHUNK
    assert len(VerifiedStream(blob_of(data))) == len(data)


def test_wrong_digest_stops_before_the_last_chunk() -> None:
    data = b"x" * (CHUNK * 2 + 10)
    stream = iter(VerifiedStream(blob_of(data, digest="sha256:" + "0" * 64)))
    sent = [next(stream), next(stream)]  # the first two chunks go out
    with pytest.raises(PushError, match=r"hashes to sha256:"):
        next(stream)  # the last one never does
    assert sum(map(len, sent)) < len(data)


def test_short_and_long_sources_are_refused() -> None:
    data = b"abc" * 10
    with pytest.raises(PushError, match="has 30 bytes, 31 declared"):
        list(VerifiedStream(blob_of(data, size=31)))
    with pytest.raises(PushError, match="more bytes than the 29 declared"):
        list(VerifiedStream(blob_of(data, size=29)))


# ---- fan-out: the tee's feeder hashes once for every upload ---------------------------------

UPLOADS = 3


def fan_out(blob: Blob) -> tuple[list[list[bytes]], list[BaseException | None]]:
    """Every upload's body as VerifiedStream sends it: the chunks sent, and the error it hit."""
    tee = Tee(blob, UPLOADS, lambda n: None)
    sent: list[list[bytes]] = [[] for _ in range(UPLOADS)]
    errors: list[BaseException | None] = [None] * UPLOADS

    def upload(number: int) -> None:
        try:
            for chunk in VerifiedStream(tee.blobs[number]):
                sent[number].append(chunk)
        except PushError as exc:
            errors[number] = exc
        finally:
            tee.done(number)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(UPLOADS)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(PushError):  # it reaches every upload through its pipe too
        tee.feed()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    return sent, errors


def test_every_upload_gets_every_byte_from_one_read() -> None:
    data = bytes(range(256)) * (CHUNK // 64) + b"tail"  # four chunks and a bit
    opens = []
    source = blob_of(data)

    def open_source() -> BinaryIO:
        opens.append(1)
        return source.open()

    counted = Blob(digest=source.digest, size=source.size, media_type=source.media_type,
                   open=open_source)  # fmt: skip

    sent, errors = fan_out(counted)

    assert errors == [None] * UPLOADS
    assert all(b"".join(chunks) == data for chunks in sent)
    assert len(opens) == 1


def test_a_wrong_digest_stops_every_upload_before_its_last_chunk() -> None:
    data = b"x" * (CHUNK * 2 + 10)
    sent, errors = fan_out(blob_of(data, digest="sha256:" + "0" * 64))

    for chunks, error in zip(sent, errors, strict=True):
        assert error is not None
        assert "hashes to sha256:" in str(error)
        assert sum(map(len, chunks)) < len(data)


def test_short_and_long_sources_stop_every_upload() -> None:
    data = b"abc" * 10
    _, short = fan_out(blob_of(data, size=31))
    _, long = fan_out(blob_of(data, size=29))
    assert all("has 30 bytes, 31 declared" in str(e) for e in short)
    assert all("more bytes than the 29 declared" in str(e) for e in long)


def test_only_the_first_open_is_the_checked_pipe() -> None:
    tee = Tee(blob_of(b"data"), 1, lambda n: None)
    first, again = tee.blobs[0].open(), tee.blobs[0].open()  # a retry reads the source afresh
    assert prechecked(first)
    assert not prechecked(again)
    first.close()
    again.close()
