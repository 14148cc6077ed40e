"""The upload body refuses to finish a blob whose bytes do not match its digest."""

from __future__ import annotations

import hashlib
import io

import pytest

from gitlab_xacct.errors import PushError
from gitlab_xacct.registry.client import CHUNK, VerifiedStream
from gitlab_xacct.registry.image import OCI_LAYER_TAR, Blob


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
