"""The retry policy: backoff with jitter, Retry-After, bounded attempts, messages that say how
many attempts were made and what the last answer was; the manifest PUT that is looked up before
it is sent again; the settings that tune it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from gitlab_xacct.config.engine import Network
from gitlab_xacct.errors import ConfigError, PushError, RegistryUnreachable
from gitlab_xacct.jobs.copy import CopySettings
from gitlab_xacct.registry.client import Credentials, Registry
from gitlab_xacct.registry.image import OCI_LAYER_TAR, OCI_MANIFEST, Blob
from gitlab_xacct.registry.retry import retry_after
from gitlab_xacct.registry.transport import Response
from gitlab_xacct.registry.transport_errors import ReadTimeout, TransportError
from gitlab_xacct.secrets import Secret
from tests.unit.httpfake import HOST, REALM, FakeRegistry, Seen, digest

MANIFEST = b'{"schemaVersion": 2, "mediaType": "%s", "layers": []}' % OCI_MANIFEST.encode()


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr("gitlab_xacct.config.engine.time.sleep", waits.append)
    return waits


def answering(*answers: tuple[int, dict[str, str]], method: str) -> object:
    """A rule that gives the next canned answers to `method`, then lets the fake answer."""
    queue: Iterator[tuple[int, dict[str, str]]] = iter(answers)

    def rule(seen: Seen) -> tuple[int, dict[str, str], bytes] | None:
        if seen.method != method:
            return None
        found = next(queue, None)
        return None if found is None else (found[0], found[1], b"")

    return rule


def response(headers: dict[str, str]) -> Response:
    return Response.of(200, headers, b"", f"https://{HOST}/v2/")


# ---- the policy ----------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    network = Network(backoff=1.0, backoff_cap=8.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        waits = {network.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (attempt, waits)
        assert len(waits) > 1  # jittered: parallel failures do not come back in step


def test_retry_after_is_honoured_and_capped() -> None:
    network = Network(backoff=0.5, retry_after_cap=20.0)
    assert network.delay(1, retry_after=7.0) == 7.0
    assert network.delay(1, retry_after=3600.0) == 20.0  # not an hour
    assert 0.25 <= network.delay(1, retry_after=0.0) <= 0.5  # our own backoff is the floor


def test_retry_after_forms() -> None:
    assert retry_after(response({"Retry-After": "3"})) == 3.0
    assert retry_after(response({})) is None
    assert retry_after(response({"Retry-After": "soon"})) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after(response({"Retry-After": later})) or 0) <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after(response({"Retry-After": earlier})) == 0.0


# ---- the client ----------------------------------------------------------------------------


def test_a_burst_of_429_and_5xx_is_waited_out(slept: list[float]) -> None:
    server = FakeRegistry()
    server.put_blob("team/app", b"layer")
    server.answers.append(
        answering(  # type: ignore[arg-type]
            (429, {"Retry-After": "2"}), (500, {}), (502, {}), (503, {"Retry-After": "1"}),
            method="HEAD",
        )
    )  # fmt: skip
    with server.client() as registry:
        assert registry.blob_exists("team/app", digest(b"layer"))
    assert len(server.requests_to("HEAD")) == 5
    assert len(slept) == 4
    assert slept[0] >= 2.0
    assert slept[3] >= 1.0


def test_past_the_bound_the_error_names_attempts_and_last_answer(slept: list[float]) -> None:
    server = FakeRegistry()
    server.answers.append(
        lambda s: (503, {"Retry-After": "1"}, b"") if s.method == "HEAD" else None
    )
    with server.client(network=Network(retries=2)) as registry, pytest.raises(PushError) as caught:
        registry.blob_exists("team/app", digest(b"x"))
    assert caught.value.exit_code == 5
    assert str(caught.value) == (
        f"registry {HOST}: HEAD of blob {digest(b'x')} failed after 3 attempts (last answer: "
        "HTTP 503 (Retry-After: 1)); the registry is overloaded or failing: try again later, "
        "or raise XACCT_RETRIES"
    )
    assert len(server.requests_to("HEAD")) == 3
    assert len(slept) == 2


def test_a_4xx_is_not_retried(slept: list[float]) -> None:
    server = FakeRegistry()
    server.answers.append(lambda s: (400, {}, b"") if s.method == "HEAD" else None)
    with server.client() as registry, pytest.raises(PushError, match=r"failed \(HTTP 400\)"):
        registry.blob_exists("team/app", digest(b"x"))
    assert len(server.requests_to("HEAD")) == 1
    assert slept == []


def test_no_answer_is_retried_then_named_with_the_attempts(
    monkeypatch: pytest.MonkeyPatch, slept: list[float]
) -> None:
    calls: list[str] = []

    def stalled(*_args: object, **_kwargs: object) -> Response:
        calls.append("send")
        raise ReadTimeout("read timed out")

    registry = Registry(f"https://{HOST}", None, network=Network(read_timeout=1.5, retries=1))
    monkeypatch.setattr(registry._transport, "request", stalled)
    with registry, pytest.raises(RegistryUnreachable) as caught:
        registry.ping()
    assert len(calls) == 2
    assert len(slept) == 1
    assert str(caught.value).startswith(
        f"could not reach the registry at https://{HOST} (no answer within 1.5 s "
        "(XACCT_READ_TIMEOUT)) after 2 attempts; check the host name"
    )


def test_an_upload_503_with_retry_after_starts_over_after_waiting(slept: list[float]) -> None:
    server = FakeRegistry()
    server.answers.append(answering((503, {"Retry-After": "4"}), method="PUT"))  # type: ignore[arg-type]
    data = b"blob bytes" * 100
    blob = Blob(digest=digest(data), size=len(data), media_type=OCI_LAYER_TAR,
                open=lambda: io.BytesIO(data))  # fmt: skip
    with server.client() as registry:
        registry.upload_blob("team/app", blob)
    assert server.blobs[digest(data)] == data
    assert len(server.requests_to("PUT")) == 2
    assert len(server.requests_to("POST")) == 2
    assert slept
    assert slept[0] >= 4.0


def test_a_patch_answered_404_mid_upload_starts_the_blob_over(slept: list[float]) -> None:
    """docker-registry cancels a session whose file is not where its state says (a PATCH cut
    after part of it arrived); the next PATCH gets 404 BLOB_UPLOAD_INVALID."""
    server = FakeRegistry()
    patches = [0]

    def cancelled(seen: Seen) -> tuple[int, dict[str, str], bytes] | None:
        if seen.method == "PATCH":
            patches[0] += 1
            if patches[0] == 2:
                return 404, {}, b'{"errors": [{"code": "BLOB_UPLOAD_INVALID"}]}'
        return None

    server.answers.append(cancelled)
    data = bytes(range(256)) * 40
    blob = Blob(digest=digest(data), size=len(data), media_type=OCI_LAYER_TAR,
                open=lambda: io.BytesIO(data))  # fmt: skip
    with server.client(chunk_size=4096) as registry:
        registry.upload_blob("team/app", blob)
    assert server.blobs[digest(data)] == data
    assert len(server.requests_to("POST")) == 2  # a new session, the whole blob again
    assert len(slept) == 1


def test_the_token_service_and_mounts_are_retried_too(slept: list[float]) -> None:
    server = FakeRegistry(auth="bearer")
    server.put_blob("team/a", b"layer")
    server.answers.append(answering((503, {"Retry-After": "2"}), method="GET"))  # type: ignore[arg-type]
    server.answers.append(answering((502, {}), method="POST"))  # type: ignore[arg-type]
    credentials = Credentials("user", Secret("pw-secret-1"))
    with server.client(credentials=credentials) as registry:
        assert registry.mount_blob("team/b", digest(b"layer"), "team/a")
    tokens = [s for s in server.seen if s.url.startswith(REALM)]
    assert len(tokens) == 2  # the 503, then a token
    assert len(server.requests_to("POST")) == 3  # the 502, the 401 challenge, the mount
    assert len(slept) == 2
    assert max(slept) >= 2.0  # the token service's Retry-After


def test_a_healthy_registry_costs_no_extra_request_and_no_sleep(slept: list[float]) -> None:
    server = FakeRegistry()
    data = b"fast path" * 100
    blob = Blob(digest=digest(data), size=len(data), media_type=OCI_LAYER_TAR,
                open=lambda: io.BytesIO(data))  # fmt: skip
    with server.client() as registry:
        assert not registry.blob_exists("team/app", blob.digest)
        registry.upload_blob("team/app", blob)
        registry.put_manifest("team/app", "v1", MANIFEST, OCI_MANIFEST)
    assert [s.method for s in server.seen] == ["HEAD", "POST", "PUT", "PUT"]
    assert slept == []


def test_a_manifest_body_cut_off_is_asked_for_again(
    monkeypatch: pytest.MonkeyPatch, slept: list[float]
) -> None:
    server = FakeRegistry()
    server.manifests[("team/app", "v1")] = (MANIFEST, OCI_MANIFEST)
    original = Response.read
    cuts = [1]

    def read(self: Response, size: int = -1) -> bytes:
        if cuts:
            cuts.pop()
            raise TransportError("the answer broke off (connection reset by peer)")
        return original(self, size)

    monkeypatch.setattr(Response, "read", read)
    with server.client() as registry:
        assert registry.get_manifest("team/app", "v1") == (MANIFEST, OCI_MANIFEST)
    assert len(server.requests_to("GET", "/manifests/")) == 2
    assert len(slept) == 1


# ---- the manifest PUT is looked up before it is sent again ---------------------------------


def test_a_manifest_put_that_landed_is_not_sent_again(slept: list[float]) -> None:
    server = FakeRegistry()

    def lost_answer(seen: Seen) -> tuple[int, dict[str, str], bytes] | None:
        if seen.method == "PUT" and len(server.requests_to("PUT")) == 1:
            server.manifests[("team/app", "v1")] = (seen.body, OCI_MANIFEST)  # it landed...
            return 502, {}, b""  # ...and a proxy lost the answer
        return None

    server.answers.append(lost_answer)
    with server.client() as registry:
        assert registry.put_manifest("team/app", "v1", MANIFEST, OCI_MANIFEST) == digest(MANIFEST)
    assert [s.method for s in server.seen] == ["PUT", "HEAD"]  # looked up, not PUT again


def test_a_manifest_put_that_did_not_land_is_sent_again(slept: list[float]) -> None:
    server = FakeRegistry()
    server.answers.append(answering((503, {}), method="PUT"))  # type: ignore[arg-type]
    with server.client() as registry:
        assert registry.put_manifest("team/app", "v1", MANIFEST, OCI_MANIFEST) == digest(MANIFEST)
    assert [s.method for s in server.seen] == ["PUT", "HEAD", "PUT"]


def test_a_wrong_digest_in_the_manifest_answer_is_exit_5_and_not_retried() -> None:
    server = FakeRegistry()
    wrong = "sha256:" + "0" * 64
    server.answers.append(
        lambda s: (201, {"Docker-Content-Digest": wrong}, b"") if s.method == "PUT" else None
    )
    with server.client() as registry, pytest.raises(PushError) as caught:
        registry.put_manifest("team/app", "v1", MANIFEST, OCI_MANIFEST)
    assert f"answered digest {wrong} for manifest v1" in str(caught.value)
    assert len(server.requests_to("PUT")) == 1


# ---- manifests served wrong -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "headers", "problem"),
    [
        (b"<html>gateway</html>", {"Content-Type": "text/html"}, "is not a JSON object"),
        (b"[1, 2]", {"Content-Type": OCI_MANIFEST}, "is not a JSON object"),
        (
            MANIFEST,
            {"Content-Type": "application/vnd.oci.image.index.v1+json"},
            f"but the document says it is {OCI_MANIFEST}",
        ),
        (MANIFEST, {"Docker-Content-Digest": "sha256:" + "1" * 64}, "but its bytes hash to"),
    ],
)
def test_a_manifest_served_wrong_is_exit_5(
    raw: bytes, headers: dict[str, str], problem: str
) -> None:
    server = FakeRegistry()
    served = {"Content-Type": OCI_MANIFEST, **headers}
    server.answers.append(lambda s: (200, served, raw) if s.method == "GET" else None)
    with server.client() as registry, pytest.raises(PushError) as caught:
        registry.get_manifest("team/app", "v1")
    assert problem in str(caught.value)
    assert caught.value.exit_code == 5


# ---- settings ------------------------------------------------------------------------------


def copy_settings(env: dict[str, str]) -> CopySettings:
    flags = {"src": "oci:/layout", "dest": "docker://registry.example.com/team/app:1"}
    return CopySettings.from_env({"HOME": "/nonexistent", **env}, flags)


def test_network_settings_reach_the_engine_and_the_registry_access() -> None:
    found = copy_settings(
        {"XACCT_CONNECT_TIMEOUT": "2.5", "XACCT_READ_TIMEOUT": "30", "XACCT_RETRIES": "0"}
    )
    assert found.engine.network == Network(connect_timeout=2.5, read_timeout=30.0, retries=0)
    assert found.destination_access.network == found.engine.network
    assert copy_settings({}).engine.network == Network()


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("XACCT_CONNECT_TIMEOUT", "0", "is not a number of seconds from 0 to 3600"),
        ("XACCT_READ_TIMEOUT", "nan", "is not a number of seconds from 0 to 3600"),
        ("XACCT_READ_TIMEOUT", "2h", "is not a number of seconds from 0 to 3600"),
        ("XACCT_RETRIES", "11", "is not a number of retries from 0 to 10"),
        ("XACCT_RETRIES", "-1", "is not a number of retries from 0 to 10"),
    ],
)
def test_bad_network_settings_are_exit_2_naming_the_variable(
    name: str, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        copy_settings({name: value})
    assert str(caught.value) == f"{name}: {value!r} {problem}" + (
        " (e.g. 30)" if "seconds" in problem else ""
    )
