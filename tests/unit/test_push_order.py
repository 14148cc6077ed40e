"""The push engine's safety order, against a recording fake registry (no network)."""

from __future__ import annotations

import io
import threading

import pytest

from gitlab_xacct.config.engine import EngineOptions, Network
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
from gitlab_xacct.registry.push import Target, push_image, push_many
from tests.unit.httpfake import blob, digest


def image(*layers: bytes, config: bytes = b"{}") -> ImageManifest:
    manifest = f'{{"layers":{len(layers)},"config":"{digest(config)}"}}'.encode()
    return ImageManifest(
        manifest=manifest, media_type=OCI_MANIFEST, digest=digest(manifest),
        config=blob(config, OCI_CONFIG), layers=tuple(blob(x) for x in layers),
    )  # fmt: skip


class FakeRegistry(Registry):
    def __init__(
        self,
        present: set[str] | None = None,
        fail: str | None = None,
        *,
        host: str = "registry.test",
        tags: dict[str, str] | None = None,
        mounts: bool = True,
    ) -> None:
        self.host = host
        self.base_url = f"https://{host}"
        self.network = Network()
        self.present = present or set()
        self.fail = fail
        self.tags = tags or {}
        self.mounts = mounts
        self.calls: list[tuple[str, str]] = []
        self.received: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        return self.tags.get(reference)

    def blob_exists(self, repository: str, digest: str) -> bool:
        return f"{repository}@{digest}" in self.present or digest in self.present

    def upload_blob(self, repository: str, blob: Blob) -> None:
        if blob.digest == self.fail:
            raise PushError(f"upload of {blob.digest} failed")
        with blob.open() as stream:
            data = b"".join(iter(lambda: stream.read(65536), b""))
        with self._lock:
            self.received[f"{repository}@{blob.digest}"] = data
            self.calls.append(("blob", blob.digest))

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        with self._lock:
            self.calls.append(("mount", f"{from_repository}->{repository}"))
        return self.mounts

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


class CountingBlob:
    """A blob source that counts how often it is opened (the tee must read it once)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.opens = 0

    def blob(self) -> Blob:
        def open_() -> io.BytesIO:
            self.opens += 1
            return io.BytesIO(self.data)

        return Blob(digest=digest(self.data), size=len(self.data), media_type=OCI_LAYER_TAR,
                    open=open_)  # fmt: skip


def test_fan_out_reads_each_blob_once_and_every_registry_gets_every_byte() -> None:
    source = CountingBlob(bytes(range(256)) * 20_000)  # about 5 MiB: several chunks
    config = blob(b"{}", OCI_CONFIG)
    manifest = b'{"fan":"out"}'
    img = ImageManifest(manifest=manifest, media_type=OCI_MANIFEST, digest=digest(manifest),
                        config=config, layers=(source.blob(),))  # fmt: skip
    registries = [FakeRegistry(host=f"r{n}.test") for n in range(3)]

    results = push_many([Target(r, "team/app") for r in registries], img, ("t",))

    assert source.opens == 1
    for registry in registries:
        assert registry.received[f"team/app@{digest(source.data)}"] == source.data
    assert [r.host for r in results] == ["r0.test", "r1.test", "r2.test"]
    assert all(r.blobs_uploaded == 2 for r in results)


def test_same_registry_uploads_once_then_mounts_or_falls_back() -> None:
    img = image(b"layer")
    shared = FakeRegistry()
    results = push_many([Target(shared, "team/a"), Target(shared, "team/b")], img, ("t",))
    blobs = [c for c in shared.calls if c[0] == "blob"]
    assert len(blobs) == 2  # layer and config, once each, into team/a
    assert ("mount", "team/a->team/b") in shared.calls
    assert (results[0].blobs_uploaded, results[1].blobs_mounted) == (2, 2)

    refusing = FakeRegistry(mounts=False)  # a registry that answers 202
    push_many([Target(refusing, "team/a"), Target(refusing, "team/b")], img, ("t",))
    assert len([c for c in refusing.calls if c[0] == "blob"]) == 4


def test_existing_tags_same_digest_kept_other_digest_per_policy() -> None:
    img = image(b"layer")
    other = "sha256:" + "0" * 64
    fake = FakeRegistry(tags={"same": img.digest, "moved": other})

    result = push_image(fake, "team/app", img, ("same", "moved", "new"))
    assert [ref for kind, ref in fake.calls if kind == "manifest"] == ["moved", "new"]
    assert result.tags_kept == ("same",)

    fake = FakeRegistry(tags={"moved": other})
    push_image(fake, "team/app", img, ("moved",), options=EngineOptions(skip_existing_tags=True))
    assert not [c for c in fake.calls if c[0] == "manifest"]

    fake = FakeRegistry(tags={"moved": other})
    with pytest.raises(
        PushError,
        match=rf"tag moved of registry.test/team/app already points at {other}.*immutable; "
        rf"this image is {img.digest}",
    ):
        push_many([Target(fake, "team/app", immutable_tags=True)], img, ("moved",))
    assert fake.calls == []  # refused before any upload
