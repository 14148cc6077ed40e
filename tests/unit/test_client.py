"""The registry client's calls against an in-process registry: manifests, blob streams, mounts,
monolithic and chunked uploads with resume; and the transport choice for a host."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterator

import pytest

from gitlab_xacct.errors import NotFound, PushError, RegistryAuthError
from gitlab_xacct.registry.client import MANIFEST_ACCEPT, Network, Registry
from gitlab_xacct.registry.image import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    Blob,
)
from gitlab_xacct.registry.remote import Access, connect, is_insecure, transport_plan
from tests.unit.httpfake import HOST, FakeRegistry, Seen, digest


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gitlab_xacct.config.engine.time.sleep", lambda _seconds: None)


def blob_of(data: bytes) -> Blob:
    return Blob(
        digest=digest(data), size=len(data), media_type=OCI_LAYER_TAR, open=lambda: io.BytesIO(data)
    )


DATA = bytes(range(256)) * 40  # 10 KiB


# ---- manifests ---------------------------------------------------------------------------


def test_manifest_digest_heads_with_every_manifest_type_and_is_none_when_missing() -> None:
    server = FakeRegistry()
    raw = b'{"schemaVersion": 2,  "mediaType": "%s"}' % OCI_MANIFEST.encode()
    server.manifests[("team/app", "v1")] = (raw, OCI_MANIFEST)
    with server.client() as registry:
        assert registry.manifest_digest("team/app", "v1") == digest(raw)
        assert registry.manifest_digest("team/app", "v2") is None
    head = server.requests_to("HEAD")[0]
    for media_type in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST):
        assert media_type in head.headers["Accept"]
    assert head.headers["Accept"] == MANIFEST_ACCEPT


def test_get_manifest_returns_the_bytes_as_served_and_checks_a_digest_reference() -> None:
    server = FakeRegistry()
    raw = b'{\n   "schemaVersion": 2,\n   "manifests": []\n}\n'  # indented: never re-serialised
    server.manifests[("team/app", "v1")] = (raw, OCI_INDEX)
    server.manifests[("team/app", digest(raw))] = (raw, OCI_INDEX)
    server.manifests[("team/app", "sha256:" + "a" * 64)] = (raw, OCI_INDEX)  # a lying registry
    with server.client() as registry:
        assert registry.get_manifest("team/app", "v1") == (raw, OCI_INDEX)
        assert registry.get_manifest("team/app", digest(raw)) == (raw, OCI_INDEX)
        with pytest.raises(PushError, match="served bytes hashing to sha256:"):
            registry.get_manifest("team/app", "sha256:" + "a" * 64)
        with pytest.raises(NotFound, match="MANIFEST_UNKNOWN"):
            registry.get_manifest("team/app", "missing")


@pytest.mark.parametrize(
    ("served", "doc", "expected"),
    [
        ("application/json", {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST}, DOCKER_MANIFEST),
        ("", {"schemaVersion": 2, "manifests": []}, OCI_INDEX),
        ("text/plain", {"schemaVersion": 2, "layers": []}, OCI_MANIFEST),
        (f"{DOCKER_MANIFEST_LIST}; charset=utf-8", {"manifests": []}, DOCKER_MANIFEST_LIST),
    ],
)
def test_media_type_when_the_registry_is_vague(
    served: str, doc: dict[str, object], expected: str
) -> None:
    server = FakeRegistry()
    server.manifests[("team/app", "v1")] = (json.dumps(doc).encode(), served)
    with server.client() as registry:
        assert registry.get_manifest("team/app", "v1")[1] == expected


def test_manifests_over_4_mib_are_refused() -> None:
    server = FakeRegistry()
    big = b" " * (4 * 1024 * 1024 + 1)
    server.manifests[("team/app", "big")] = (big, OCI_MANIFEST)
    with server.client() as registry, pytest.raises(PushError, match="over 4 MiB"):
        registry.get_manifest("team/app", "big")


# ---- blob streams ----------------------------------------------------------------------


def test_open_blob_streams_the_stored_bytes_without_decoding() -> None:
    server = FakeRegistry()
    stored = gzip.compress(DATA, mtime=0)
    server.put_blob("team/app", stored)
    server.answers.append(
        lambda s: (
            (200, {"Content-Encoding": "gzip"}, stored)
            if s.method == "GET" and s.path.endswith(digest(stored))
            else None
        )
    )
    with server.client() as registry, registry.open_blob("team/app", digest(stored)) as stream:
        pieces = iter(lambda: stream.read(1000), b"")
        assert b"".join(pieces) == stored
    (get,) = server.requests_to("GET", "/blobs/")
    assert get.headers["Accept-Encoding"] == "identity"


def test_open_blob_of_a_missing_blob_is_not_found() -> None:
    with FakeRegistry().client() as registry, pytest.raises(NotFound):
        registry.open_blob("team/app", digest(b"nothing"))


# ---- mounts --------------------------------------------------------------------------------


def test_mount_201_links_the_blob_without_an_upload() -> None:
    server = FakeRegistry()
    server.put_blob("team/a", DATA)
    with server.client() as registry:
        assert registry.mount_blob("team/b", digest(DATA), "team/a") is True
        assert registry.blob_exists("team/b", digest(DATA))
    (post,) = server.requests_to("POST")
    assert post.query == {"mount": [digest(DATA)], "from": ["team/a"]}
    assert not server.requests_to("PUT")
    assert not server.requests_to("PATCH")


def test_mount_202_leaves_a_session_that_the_upload_reuses() -> None:
    server = FakeRegistry()
    with server.client() as registry:
        assert registry.mount_blob("team/b", digest(DATA), "team/a") is False
        registry.upload_blob("team/b", blob_of(DATA))
        assert registry.blob_exists("team/b", digest(DATA))
    assert len(server.requests_to("POST")) == 1  # the mount's session, not a second one
    assert not server.requests_to("DELETE")


def test_mount_with_token_auth_asks_for_pull_on_the_source_repository() -> None:
    server = FakeRegistry(auth="bearer")
    server.put_blob("team/a", DATA)
    with server.client() as registry, pytest.raises(RegistryAuthError):
        registry.mount_blob("team/b", digest(DATA), "team/a")  # anonymous: no push
    scopes = [s.query.get("scope") for s in server.seen if s.url.startswith("https://auth.test")]
    assert scopes == [["repository:team/a:pull", "repository:team/b:pull,push"]]


def test_mount_answered_otherwise_is_an_error() -> None:
    server = FakeRegistry()
    server.answers.append(lambda s: (404, {}, b"") if s.method == "POST" else None)
    with server.client() as registry, pytest.raises(PushError, match="mount of"):
        registry.mount_blob("team/b", digest(DATA), "team/a")


# ---- uploads -------------------------------------------------------------------------------


def test_below_the_chunk_size_one_streamed_put() -> None:
    server = FakeRegistry()
    with server.client(chunk_size=len(DATA)) as registry:
        registry.upload_blob("team/app", blob_of(DATA))
    assert not server.requests_to("PATCH")
    (put,) = server.requests_to("PUT")
    assert put.query["digest"] == [digest(DATA)]
    assert server.blobs[digest(DATA)] == DATA


def test_above_the_chunk_size_patch_chunks_with_content_range() -> None:
    server = FakeRegistry()
    with server.client(chunk_size=4096) as registry:
        registry.upload_blob("team/app", blob_of(DATA))
    patches = server.requests_to("PATCH")
    assert [p.headers["Content-Range"] for p in patches] == ["0-4095", "4096-8191", "8192-10239"]
    assert [len(p.body) for p in patches] == [4096, 4096, 2048]
    (put,) = server.requests_to("PUT")
    assert put.body == b""
    assert put.query["digest"] == [digest(DATA)]
    assert server.blobs[digest(DATA)] == DATA


@pytest.mark.parametrize(
    "base_url",
    [
        "https://222222222222.dkr.ecr.eu-west-1.amazonaws.com",
        "https://111111111111.dkr.ecr.cn-north-1.amazonaws.com.cn",
        "https://vpce-0a1b.api.ecr.eu-west-1.vpce.amazonaws.com",
    ],
)
def test_aws_hosts_never_get_chunks(base_url: str) -> None:
    server = FakeRegistry()
    with server.client(base_url, chunk_size=1024) as registry:
        assert registry.chunk_size == 0
        registry.upload_blob("team/app", blob_of(DATA))
    assert not server.requests_to("PATCH")
    assert len(server.requests_to("PUT")) == 1


def test_chunk_size_zero_disables_chunking() -> None:
    server = FakeRegistry()
    with server.client(chunk_size=0) as registry:
        registry.upload_blob("team/app", blob_of(DATA))
    assert not server.requests_to("PATCH")


def drop_patch(number: int, after: int) -> tuple[list[int], object]:
    """A rule that cuts the `number`th PATCH (1-based) after `after` bytes."""
    count = [0]

    def rule(seen: Seen) -> int | None:
        if seen.method != "PATCH":
            return None
        count[0] += 1
        return after if count[0] == number else None

    return count, rule


def test_a_dropped_chunk_resumes_from_the_registry_range() -> None:
    server = FakeRegistry()
    _, rule = drop_patch(2, after=1000)
    server.drops.append(rule)  # type: ignore[arg-type]
    opened: list[int] = []

    def open_() -> io.BytesIO:
        opened.append(1)
        return io.BytesIO(DATA)

    blob = Blob(digest=digest(DATA), size=len(DATA), media_type=OCI_LAYER_TAR, open=open_)
    with server.client(chunk_size=4096) as registry:
        registry.upload_blob("team/app", blob)
    assert server.blobs[digest(DATA)] == DATA
    status = [s for s in server.seen if s.method == "GET" and "/uploads/" in s.path]
    assert len(status) == 1  # asked where the registry was, once
    ranges = [p.headers["Content-Range"] for p in server.requests_to("PATCH")]
    assert ranges == ["0-4095", "4096-8191", "4096-8191", "8192-10239"]
    assert len(server.requests_to("POST")) == 1  # resumed, not started over
    assert len(opened) == 2  # the source was read again up to the resume point


def test_a_chunk_dropping_every_time_fails_after_bounded_attempts() -> None:
    server = FakeRegistry()
    server.drops.append(lambda s: 10 if s.method == "PATCH" else None)
    network = Network(retries=2)
    with (
        server.client(chunk_size=4096, network=network) as registry,
        pytest.raises(PushError) as caught,
    ):
        registry.upload_blob("team/app", blob_of(DATA))
    assert f"upload of {digest(DATA)} to {HOST} failed after 3 attempts" in str(caught.value)
    assert len(server.requests_to("PATCH")) == 3 * 3  # 3 uploads, each 1 try + 2 resumes
    assert digest(DATA) not in server.blobs


def test_a_broken_chunk_resumes_at_once_and_a_struggling_registry_is_waited_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("gitlab_xacct.config.engine.time.sleep", waits.append)
    server = FakeRegistry()
    _, rule = drop_patch(2, after=1000)
    server.drops.append(rule)  # type: ignore[arg-type]
    with server.client(chunk_size=4096) as registry:
        registry.upload_blob("team/app", blob_of(DATA))
    assert waits == []  # no answer at all: resumed without a pause
    busy = [True]

    def answer_once(seen: Seen) -> tuple[int, dict[str, str], bytes] | None:
        if seen.method == "PATCH" and busy:
            busy.clear()
            return 503, {"Retry-After": "7"}, b""
        return None

    server = FakeRegistry()
    server.answers.append(answer_once)
    with server.client(chunk_size=4096) as registry:
        registry.upload_blob("team/app", blob_of(DATA))
    assert server.blobs[digest(DATA)] == DATA
    assert len(waits) == 1  # once
    assert waits[0] >= 7  # the registry's Retry-After


def test_a_lost_session_starts_the_upload_over() -> None:
    server = FakeRegistry()
    _, rule = drop_patch(2, after=0)
    server.drops.append(rule)  # type: ignore[arg-type]
    server.answers.append(
        lambda s: (404, {}, b"") if s.method == "GET" and "/uploads/" in s.path else None
    )
    with server.client(chunk_size=4096) as registry:
        registry.upload_blob("team/app", blob_of(DATA))
    assert server.blobs[digest(DATA)] == DATA
    assert len(server.requests_to("POST")) == 2


def test_a_corrupt_source_never_sends_its_last_chunk() -> None:
    server = FakeRegistry()
    corrupt = DATA[:-1] + b"\x00"
    blob = Blob(
        digest=digest(DATA), size=len(DATA), media_type=OCI_LAYER_TAR,
        open=lambda: io.BytesIO(corrupt),
    )  # fmt: skip
    with server.client(chunk_size=4096) as registry, pytest.raises(PushError) as caught:
        registry.upload_blob("team/app", blob)
    assert f"in the source hashes to {digest(corrupt)}" in str(caught.value)
    assert len(server.requests_to("PATCH")) == 2  # the third broke off before its last byte
    assert not server.requests_to("PUT")
    assert [len(u) for u in server.uploads.values()] == [8192]


def test_upload_retries_a_5xx_put_and_stops_at_a_4xx() -> None:
    server = FakeRegistry()
    answers: Iterator[tuple[int, dict[str, str], bytes] | None] = iter([(503, {}, b""), None])
    server.answers.append(lambda s: next(answers) if s.method == "PUT" else None)
    with server.client() as registry:
        registry.upload_blob("team/app", blob_of(DATA))
    assert len(server.requests_to("PUT")) == 2

    refusing = FakeRegistry()
    refusing.answers.append(lambda s: (400, {}, b"") if s.method == "PUT" else None)
    with refusing.client() as registry, pytest.raises(PushError, match=r"HTTP 400"):
        registry.upload_blob("team/app", blob_of(DATA))
    assert len(refusing.requests_to("PUT")) == 1


# ---- transport -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "insecure", "plan"),
    [
        ("registry.example.com", (), (("https", True),)),
        ("registry.example.com:5000", (), (("https", True),)),
        ("127.0.0.1:5000", (), (("https", True), ("http", True))),
        ("127.8.9.10", (), (("https", True), ("http", True))),
        ("localhost:5000", (), (("https", True), ("http", True))),
        ("[::1]:5000", (), (("https", True), ("http", True))),
        ("registry.lan:5000", ("registry.lan",), (("https", False), ("http", False))),
        ("registry.lan:5000", ("registry.lan:5000",), (("https", False), ("http", False))),
        ("registry.lan:5000", ("registry.lan:6000",), (("https", True),)),
        ("registry.lan", ("other.lan",), (("https", True),)),
    ],
)
def test_transport_plan(host: str, insecure: tuple[str, ...], plan: tuple[object, ...]) -> None:
    assert transport_plan(host, frozenset(insecure)) == plan
    assert is_insecure(host, frozenset(insecure)) == (not plan[0][1])  # type: ignore[index]


class _Probe:
    """Stands in for remote's probe: answers whether the peer speaks TLS, records the hosts."""

    def __init__(self) -> None:
        self.tls = True
        self.hosts: list[str] = []

    def __call__(self, host: str, env: object = None) -> bool:
        self.hosts.append(host)
        return self.tls


def anonymous(*insecure: str) -> Access:
    return Access(credentials=None, origin="anonymous", insecure_registries=frozenset(insecure))


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> _Probe:
    fake = _Probe()
    monkeypatch.setattr("gitlab_xacct.registry.remote._probe", fake)
    return fake


def test_loopback_registry_with_tls_is_spoken_to_over_tls(probe: _Probe) -> None:
    with connect("127.0.0.1:5000", anonymous(), auth_hint="") as registry:
        assert (registry.base_url, registry.insecure) == ("https://127.0.0.1:5000", False)
    assert probe.hosts == ["127.0.0.1:5000"]


def test_loopback_registry_without_tls_falls_back_to_http(probe: _Probe) -> None:
    probe.tls = False
    with connect("localhost:5000", anonymous(), auth_hint="") as registry:
        assert registry.base_url == "http://localhost:5000"


def test_other_hosts_are_never_probed_for_plain_http(probe: _Probe) -> None:
    with connect("registry.example.com", anonymous(), auth_hint="") as registry:
        assert registry.base_url == "https://registry.example.com"
    assert probe.hosts == []


def test_an_insecure_host_tries_unverified_tls_then_http(probe: _Probe) -> None:
    with connect("registry.lan:5000", anonymous("registry.lan"), auth_hint="") as registry:
        assert (registry.base_url, registry.insecure) == ("https://registry.lan:5000", True)
    probe.tls = False
    with connect("registry.lan:5000", anonymous("registry.lan"), auth_hint="") as registry:
        assert registry.base_url == "http://registry.lan:5000"


def test_registry_keeps_the_push_engine_attributes() -> None:
    registry = Registry("https://registry.test:5000/", None)
    assert (registry.base_url, registry.host, registry.hostname) == (
        "https://registry.test:5000",
        "registry.test:5000",
        "registry.test",
    )
    assert hashlib.sha256(b"").hexdigest()  # imports stay used
    registry.close()
