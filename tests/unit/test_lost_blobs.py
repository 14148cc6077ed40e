"""A manifest refused for a blob the registry does not know (a lost race between concurrent
uploads): the named blob looked up, sent again when missing, the manifest sent again, bounded."""

from __future__ import annotations

import json
import logging

import pytest

from gitlab_xacct.config.engine import Network
from gitlab_xacct.errors import PushError
from gitlab_xacct.registry.image import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageIndex,
    ImageManifest,
)
from gitlab_xacct.registry.push import Target, push_image, push_many
from tests.unit.httpfake import FakeRegistry, Seen, blob, digest

Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr("gitlab_xacct.config.engine.time.sleep", waits.append)
    return waits


def image(*layers: bytes, config: bytes = b'{"os":"linux"}') -> ImageManifest:
    cfg, blobs = blob(config, OCI_CONFIG), tuple(blob(x) for x in layers)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg.digest, "size": cfg.size},
        "layers": [{"mediaType": b.media_type, "digest": b.digest, "size": b.size} for b in blobs],
    }
    raw = json.dumps(doc).encode()
    return ImageManifest(manifest=raw, media_type=OCI_MANIFEST, digest=digest(raw),
                         config=cfg, layers=blobs)  # fmt: skip


def blob_unknown(named: str) -> bytes:
    """docker-registry's answer when it read a link file another upload was rewriting."""
    errors = [
        {"code": "DIGEST_INVALID", "message": "provided digest did not match uploaded content"},
        {"code": "MANIFEST_BLOB_UNKNOWN", "message": "blob unknown to registry", "detail": named},
    ]
    return json.dumps({"errors": errors}).encode()


def refusing(server: FakeRegistry, named: str, *, times: int, lose: bool) -> None:
    """The first `times` manifest PUTs are refused naming `named`; with `lose`, the registry
    has also lost the blob at the first refusal (it must be uploaded again)."""
    left = [times]

    def rule(seen: Seen) -> Answer | None:
        if seen.method != "PUT" or "/manifests/" not in seen.path or not left[0]:
            return None
        if lose and left[0] == times:
            server.repos["team/app"].discard(named)
        left[0] -= 1
        return 400, {"Content-Type": "application/json"}, blob_unknown(named)

    server.answers.append(rule)


def after_first_refusal(server: FakeRegistry) -> list[str]:
    """The requests sent after the first refused manifest PUT, as METHOD PATH."""
    first = next(
        n for n, s in enumerate(server.seen) if "/manifests/" in s.path and s.method == "PUT"
    )
    return [f"{s.method} {s.path}" for s in server.seen[first + 1 :]]


def test_a_blob_lost_once_is_looked_up_sent_again_and_the_manifest_goes_again(
    slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    img = image(b"base layer" * 50, b"own layer")
    lost = img.layers[0].digest
    server = FakeRegistry()
    refusing(server, lost, times=1, lose=True)

    with server.client() as registry, caplog.at_level(logging.WARNING):
        result = push_image(registry, "team/app", img, ("v1",))

    assert result.digest == img.digest
    assert after_first_refusal(server) == [
        f"HEAD /v2/team/app/blobs/{lost}",  # exactly one HEAD: the blob the error named
        "POST /v2/team/app/blobs/uploads/",  # one upload of that blob, by the normal path
        f"PUT {server.requests_to('PUT', '/blobs/uploads/')[-1].path}",
        "PUT /v2/team/app/manifests/v1",  # one more manifest PUT
    ]
    assert server.blobs[lost] == b"base layer" * 50
    assert server.manifests[("team/app", "v1")][0] == img.manifest
    assert slept == []  # something was sent again: no reason to wait
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"registry {registry.host} refused manifest v1 of {registry.host}/team/app for a blob "
        f"it did not know: blob {lost} was missing, sent again; sending the manifest again "
        "in 0.0 s (attempt 2 of 5)"
    ]


def test_a_blob_the_registry_has_after_all_is_not_uploaded_and_the_put_waits(
    slept: list[float],
) -> None:
    img = image(b"base", b"own")
    server = FakeRegistry()
    refusing(server, img.layers[1].digest, times=1, lose=False)
    with server.client() as registry:
        push_image(registry, "team/app", img, ("v1",))
    assert after_first_refusal(server) == [
        f"HEAD /v2/team/app/blobs/{img.layers[1].digest}",
        "PUT /v2/team/app/manifests/v1",
    ]
    assert len(slept) == 1  # the registry lost a race: a short wait before the PUT


def test_refused_every_time_is_exit_5_after_the_bound_naming_manifest_blob_attempts(
    slept: list[float],
) -> None:
    img = image(b"base", b"own")
    named = img.layers[0].digest
    server = FakeRegistry()
    refusing(server, named, times=100, lose=False)
    with (
        server.client(network=Network(retries=2)) as registry,
        pytest.raises(PushError) as caught,
    ):
        push_image(registry, "team/app", img, ("v1",))
    assert caught.value.exit_code == 5
    assert str(caught.value) == (
        f"registry {registry.host}: PUT of manifest v1 failed after 3 attempts (last answer: "
        f"HTTP 400: DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN): it does not know blob {named}, "
        "though each time it lacked one it was sent again; check the registry's storage and "
        "logs, try again later, or raise XACCT_RETRIES"
    )
    assert "\n" not in str(caught.value)
    assert len(server.requests_to("PUT", "/manifests/")) == 3
    assert len(server.requests_to("HEAD", f"/blobs/{named}")) == 1 + 2  # the push's, 2 lookups
    assert ("team/app", "v1") not in server.manifests  # nothing tagged


def test_an_index_refused_for_a_lost_child_puts_the_child_again_by_digest_first(
    slept: list[float],
) -> None:
    children = (image(b"amd64"), image(b"arm64", config=b'{"architecture":"arm64"}'))
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": c.digest, "size": len(c.manifest)} for c in children
    ]}  # fmt: skip
    raw = json.dumps(doc).encode()
    index = ImageIndex(manifest=raw, media_type=OCI_INDEX, digest=digest(raw), children=children)
    server = FakeRegistry()
    lost = children[1].digest

    def rule(seen: Seen) -> Answer | None:
        if seen.method == "PUT" and seen.path.endswith("/manifests/multi") and not refused:
            refused.append(seen)
            del server.manifests[("team/app", lost)]  # the registry lost the child
            return 400, {}, blob_unknown(lost)
        return None

    refused: list[Seen] = []
    server.answers.append(rule)
    with server.client() as registry:
        push_image(registry, "team/app", index, ("multi",))
    after = server.seen[server.seen.index(refused[0]) + 1 :]
    assert [f"{s.method} {s.path}" for s in after] == [
        f"HEAD /v2/team/app/manifests/{lost}",
        f"PUT /v2/team/app/manifests/{lost}",  # the child again, by digest, before the tag
        "PUT /v2/team/app/manifests/multi",
    ]
    assert server.manifests[("team/app", "multi")][0] == raw


def test_another_400_is_not_taken_for_a_lost_blob(slept: list[float]) -> None:
    img = image(b"layer")
    server = FakeRegistry()
    invalid = json.dumps({"errors": [{"code": "MANIFEST_INVALID"}]}).encode()
    server.answers.append(
        lambda s: (400, {}, invalid) if s.method == "PUT" and "/manifests/" in s.path else None
    )
    with server.client() as registry, pytest.raises(PushError) as caught:
        push_image(registry, "team/app", img, ("v1",))
    assert str(caught.value) == (
        f"registry {registry.host}: PUT of manifest v1 failed (HTTP 400: MANIFEST_INVALID)"
    )
    assert len(server.requests_to("PUT", "/manifests/")) == 1
    assert slept == []


def test_fan_out_heals_the_destination_that_lost_a_blob_and_leaves_the_other_alone(
    slept: list[float],
) -> None:
    img = image(b"shared base", b"own")
    lost = img.layers[0].digest
    losing, healthy = FakeRegistry(), FakeRegistry()
    refusing(losing, lost, times=1, lose=True)
    with losing.client() as first, healthy.client("https://other.test") as second:
        results = push_many([Target(first, "team/app"), Target(second, "team/app")], img, ("v1",))
    assert [r.digest for r in results] == [img.digest, img.digest]
    assert after_first_refusal(losing) == [
        f"HEAD /v2/team/app/blobs/{lost}",
        "POST /v2/team/app/blobs/uploads/",
        f"PUT {losing.requests_to('PUT', '/blobs/uploads/')[-1].path}",
        "PUT /v2/team/app/manifests/v1",
    ]
    assert len(healthy.requests_to("PUT", "/manifests/")) == 1
    assert losing.manifests[("team/app", "v1")][0] == img.manifest
