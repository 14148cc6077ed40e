"""The push engine's safety order, against a recording fake registry (no network)."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest

from gitlab_xacct.errors import PushError
from gitlab_xacct.registry.client import Registry
from gitlab_xacct.registry.image import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    Blob,
    ImageIndex,
    ImageManifest,
)
from gitlab_xacct.registry.push import push_image


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(data: bytes, media_type: str = OCI_LAYER_TAR) -> Blob:
    return Blob(digest=digest(data), size=len(data), media_type=media_type,
                open=lambda: io.BytesIO(data))  # fmt: skip


def image(*layers: bytes, config: bytes = b"{}") -> ImageManifest:
    manifest = f'{{"layers":{len(layers)},"config":"{digest(config)}"}}'.encode()
    return ImageManifest(
        manifest=manifest, media_type=OCI_MANIFEST, digest=digest(manifest),
        config=blob(config, OCI_CONFIG), layers=tuple(blob(x) for x in layers),
    )  # fmt: skip


class FakeRegistry(Registry):
    def __init__(self, present: set[str] | None = None, fail: str | None = None) -> None:
        self.host = "registry.test"
        self.present = present or set()
        self.fail = fail
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def blob_exists(self, repository: str, digest: str) -> bool:
        return digest in self.present

    def upload_blob(self, repository: str, blob: Blob) -> None:
        if blob.digest == self.fail:
            raise PushError(f"upload of {blob.digest} failed")
        with self._lock:
            self.calls.append(("blob", blob.digest))

    def put_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str
    ) -> str:
        self.calls.append(("manifest", reference))
        return digest(manifest)


def test_blobs_first_then_every_tag_at_one_digest() -> None:
    img = image(b"layer-1", b"layer-2", b"layer-1")  # a repeated layer is sent once
    fake = FakeRegistry(present={digest(b"layer-2")})

    result = push_image(fake, "team/app", img, ("t1", "t2"))

    kinds = [kind for kind, _ in fake.calls]
    assert kinds == ["blob", "blob", "manifest", "manifest"]
    assert {ref for kind, ref in fake.calls if kind == "blob"} == {
        digest(b"layer-1"),
        digest(b"{}"),
    }
    assert [ref for kind, ref in fake.calls if kind == "manifest"] == ["t1", "t2"]
    assert (result.blobs_uploaded, result.blobs_present) == (2, 1)
    assert result.digest == img.digest
    assert result.uri == f"registry.test/team/app@{img.digest}"


def test_index_children_go_by_digest_before_the_tagged_index() -> None:
    children = (image(b"amd64"), image(b"arm64", config=b'{"arch":"arm64"}'))
    raw = b'{"manifests":2}'
    index = ImageIndex(manifest=raw, media_type=OCI_INDEX, digest=digest(raw), children=children)
    fake = FakeRegistry()

    result = push_image(fake, "team/app", index, ("multi",))

    manifests = [ref for kind, ref in fake.calls if kind == "manifest"]
    assert manifests == [children[0].digest, children[1].digest, "multi"]
    assert fake.calls.index(("manifest", children[0].digest)) > max(
        i for i, (kind, _) in enumerate(fake.calls) if kind == "blob"
    )
    assert result.digest == index.digest


def test_a_failed_blob_means_no_manifest_at_all() -> None:
    img = image(b"good", b"bad")
    fake = FakeRegistry(fail=digest(b"bad"))
    with pytest.raises(PushError, match="failed"):
        push_image(fake, "team/app", img, ("t1",))
    assert not [call for call in fake.calls if call[0] == "manifest"]
