"""Registry authentication against an in-process registry: challenges, scopes, token caching,
expiry, Basic refresh, and where credentials may (not) go."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from gitlab_xacct.config.reference import parse_reference
from gitlab_xacct.config.source import parse_source
from gitlab_xacct.errors import ConfigError, RegistryAuthError
from gitlab_xacct.registry.auth import (
    Challenge,
    Credentials,
    covers,
    normalise_scopes,
    parse_challenges,
    repository_scope,
)
from gitlab_xacct.registry.client import Registry
from gitlab_xacct.registry.remote import lookup_credentials, source_access
from gitlab_xacct.secrets import Secret, mask
from tests.unit.httpfake import REALM, SERVICE, FakeRegistry, Seen

USER = Credentials("user", Secret("pw-secret-1"))


# ---- header parsing and scope strings ----------------------------------------------------


def test_parses_docker_hub_style_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull,push"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/alpine:pull,push",
            },
        )
    ]


def test_parses_several_challenges_quoted_commas_escapes_and_bare_values() -> None:
    header = (
        'Basic realm="a, \\"quoted\\" realm", Bearer realm="https://x/token" , '
        'service=bare-value,error="invalid_token"'
    )
    basic, bearer = parse_challenges(header)
    assert basic == Challenge("basic", {"realm": 'a, "quoted" realm'})
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://x/token",
        "service": "bare-value",
        "error": "invalid_token",
    }


@pytest.mark.parametrize("header", ["", ",,", "=", 'realm="x"', "Bearer"])
def test_odd_headers_give_no_usable_challenge(header: str) -> None:
    assert all("realm" not in c.params for c in parse_challenges(header))


def test_scope_strings() -> None:
    assert repository_scope("team/app", "pull") == "repository:team/app:pull"
    assert repository_scope("team/app", "pull", "push") == "repository:team/app:pull,push"
    assert normalise_scopes(
        ["repository:b:push", "repository:a:pull", "repository:b:pull", "repository:a:pull"]
    ) == ("repository:a:pull", "repository:b:pull,push")
    assert covers(["repository:a:pull,push"], ["repository:a:pull"])
    assert not covers(["repository:a:pull"], ["repository:a:pull,push"])
    assert not covers(["repository:a:pull,push"], ["repository:b:pull"])
    assert covers(["repository:a:pull"], [])


# ---- Bearer tokens -------------------------------------------------------------------------


def token_requests(server: FakeRegistry) -> list[Seen]:
    return [s for s in server.seen if s.url.startswith(REALM)]


def test_bearer_flow_fetches_a_token_with_service_scope_and_basic_credentials() -> None:
    server = FakeRegistry(auth="bearer")
    server.put_blob("team/app", b"layer")
    with server.client(credentials=USER) as registry:
        assert registry.blob_exists("team/app", "sha256:" + "0" * 64) is False

    first, token, retried = server.seen
    assert "Authorization" not in first.headers  # nothing is sent before the registry asks
    assert token.url.startswith(REALM)
    assert token.query == {"service": [SERVICE], "scope": ["repository:team/app:pull"]}
    assert token.headers["Authorization"].startswith("Basic ")
    assert retried.headers["Authorization"].startswith("Bearer tok-")


def test_anonymous_token_request_carries_no_credentials() -> None:
    server = FakeRegistry(auth="bearer")
    with server.client() as registry:
        registry.ping()
    (token,) = token_requests(server)
    assert "Authorization" not in token.headers
    assert "scope" not in token.query  # a login: no scope


def test_tokens_are_cached_per_scope_and_a_wider_one_serves_a_narrower_request() -> None:
    server = FakeRegistry(auth="bearer")
    with server.client(credentials=USER) as registry:
        for _ in range(3):
            registry.blob_exists("team/app", "sha256:" + "1" * 64)
        assert len(token_requests(server)) == 1
        registry.put_manifest("team/app", "v1", b"{}", "application/json")  # pull,push
        assert len(token_requests(server)) == 2
        registry.blob_exists("team/app", "sha256:" + "1" * 64)  # the pull,push one covers it
        registry.blob_exists("team/other", "sha256:" + "1" * 64)  # another repository
        assert len(token_requests(server)) == 3
        assert registry.auth.token_requests == 3
    assert [s.query["scope"] for s in token_requests(server)] == [
        ["repository:team/app:pull"],
        ["repository:team/app:pull,push"],
        ["repository:team/other:pull"],
    ]


def test_an_expired_token_is_refreshed_once() -> None:
    server = FakeRegistry(auth="bearer")
    with server.client(credentials=USER) as registry:
        registry.blob_exists("team/app", "sha256:" + "2" * 64)
        server.expire_tokens()  # the registry no longer accepts the cached token
        registry.blob_exists("team/app", "sha256:" + "2" * 64)
    assert len(token_requests(server)) == 2
    heads = server.requests_to("HEAD")
    assert [s.headers.get("Authorization", "")[:6] for s in heads] == ["", "Bearer"] + [
        "Bearer"
    ] * 2


def test_a_token_refused_again_is_an_auth_error_after_bounded_sends() -> None:
    server = FakeRegistry(auth="bearer")
    server.answers.append(
        lambda s: (
            (401, {"WWW-Authenticate": f'Bearer realm="{REALM}",service="{SERVICE}"'}, b"")
            if s.path.startswith("/v2/team")
            else None
        )
    )
    with server.client(credentials=USER) as registry, pytest.raises(RegistryAuthError) as caught:
        registry.put_manifest("team/app", "v1", b"{}", "application/json")
    assert len(server.requests_to("PUT")) <= 3
    assert "refused PUT of manifest v1 (HTTP 401" in str(caught.value)


def test_insufficient_scope_is_not_asked_again() -> None:
    server = FakeRegistry(auth="bearer")
    with server.client() as registry, pytest.raises(RegistryAuthError):
        registry.put_manifest("team/app", "v1", b"{}", "application/json")  # anonymous: pull
    assert len(server.requests_to("PUT")) == 2  # unauthenticated, then with the token
    assert len(token_requests(server)) == 1


def test_wrong_credentials_at_the_token_service_say_which_service() -> None:
    server = FakeRegistry(auth="bearer")
    wrong = Credentials("user", Secret("wrong-password-9"))
    with server.client(credentials=wrong) as registry, pytest.raises(RegistryAuthError) as caught:
        registry.ping()
    message = str(caught.value)
    assert "the token service auth.test of registry registry.test refused the credentials" in (
        message
    )
    assert "wrong-password-9" not in message


def test_a_plain_http_realm_on_another_host_gets_no_credentials() -> None:
    server = FakeRegistry()
    server.answers.append(
        lambda s: (
            (401, {"WWW-Authenticate": 'Bearer realm="http://evil.test/token"'}, b"")
            if s.path == "/v2/"
            else None
        )
    )
    with server.client(credentials=USER) as registry, pytest.raises(RegistryAuthError) as caught:
        registry.ping()
    assert "not https://; refusing to send credentials there" in str(caught.value)
    assert not [s for s in server.seen if "evil.test" in s.url]


def test_tokens_and_passwords_are_masked_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    server = FakeRegistry(auth="bearer")
    with server.client(credentials=USER) as registry:
        registry.ping()
    (token,) = server.tokens
    assert mask(f"token {token} password pw-secret-1") == "token [MASKED] password [MASKED]"
    assert all(token not in r.getMessage() for r in caplog.records)


# ---- Basic ---------------------------------------------------------------------------------


def test_basic_is_sent_after_the_first_challenge_and_then_up_front() -> None:
    server = FakeRegistry(auth="basic")
    with server.client(credentials=USER) as registry:
        registry.ping()
        registry.blob_exists("team/app", "sha256:" + "3" * 64)
        registry.blob_exists("team/app", "sha256:" + "4" * 64)
    statuses = [s.headers.get("Authorization", "")[:5] for s in server.seen]
    assert statuses == ["", "Basic", "Basic", "Basic"]
    assert not token_requests(server)


def test_basic_credentials_rejected_mid_push_are_refreshed_once() -> None:
    server = FakeRegistry(auth="basic")
    calls: list[int] = []

    def refresh() -> Credentials:
        calls.append(1)
        return Credentials("user", Secret("pw-secret-2"))

    with server.client(credentials=USER, refresh=refresh) as registry:
        registry.ping()
        server.users["user"] = "pw-secret-2"  # the ECR token expired; a new one is valid
        registry.blob_exists("team/app", "sha256:" + "5" * 64)
        registry.blob_exists("team/app", "sha256:" + "5" * 64)
    assert calls == [1]


def test_without_refresh_rejected_basic_credentials_are_exit_4() -> None:
    server = FakeRegistry(auth="basic")
    with server.client(credentials=USER) as registry:
        registry.ping()
        server.users["user"] = "changed"
        with pytest.raises(RegistryAuthError) as caught:
            registry.ping()
    assert caught.value.exit_code == 4
    assert "refused the login (GET /v2/) (HTTP 401: UNAUTHORIZED)" in str(caught.value)


def test_no_credentials_to_a_redirect_target() -> None:
    server = FakeRegistry(auth="basic")
    blob = b"stored elsewhere"
    server.put_blob("team/app", blob)
    server.answers.append(
        lambda s: (
            (307, {"Location": "https://storage.test/b?sig=1"}, b"")
            if s.path.startswith("/v2/team/app/blobs/") and "Authorization" in s.headers
            else None
        )
    )
    server.answers.append(lambda s: (200, {}, blob) if "storage.test" in s.url else None)
    with server.client(credentials=USER) as registry:
        registry.ping()
        with registry.open_blob("team/app", "sha256:" + "6" * 64) as stream:
            assert stream.read() == blob
    (storage,) = [s for s in server.seen if "storage.test" in s.url]
    assert "Authorization" not in storage.headers


def test_the_push_constructor_still_works() -> None:
    registry = Registry("https://registry.test", USER, pool=2)
    assert (registry.host, registry.chunk_size > 0, registry.insecure) == (
        "registry.test",
        True,
        False,
    )
    registry.close()


# ---- where credentials come from -----------------------------------------------------------

HOST = "registry.example.com:5000"


def docker_config(tmp_path: Path, doc: dict[str, object]) -> dict[str, str]:
    folder = tmp_path / "docker"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(doc))
    return {"DOCKER_CONFIG": str(folder)}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def found(host: str, env: dict[str, str], explicit: tuple[str, str] | None = None) -> object:
    credentials, origin = lookup_credentials(host, env, explicit)
    who = (credentials.username, credentials.password.reveal()) if credentials else None
    return who, origin


def test_explicit_credentials_win_and_may_name_a_variable(tmp_path: Path) -> None:
    env = {
        **docker_config(tmp_path, {"auths": {HOST: {"auth": b64("cfg:cfg-pw")}}}),
        "SRC_LOGIN": "bot:from-variable",
        "CI_REGISTRY": HOST,
        "CI_JOB_TOKEN": "job-token-1",
    }
    assert found(HOST, env, ("me:pw:with:colons", "--src-creds")) == (
        ("me", "pw:with:colons"),
        "--src-creds",
    )
    assert found(HOST, env, ("SRC_LOGIN", "XACCT_SRC_CREDS")) == (
        ("bot", "from-variable"),
        "XACCT_SRC_CREDS ($SRC_LOGIN)",
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("NOT_SET_ANYWHERE", "names the variable NOT_SET_ANYWHERE, which is not set or empty"),
        ("not a name", "give USER:PASSWORD, or the name of a (masked) variable holding it"),
        (":only-password-1", "expected USER:PASSWORD, with both parts non-empty"),
        ("EMPTY_PASSWORD", "XACCT_DEST_CREDS ($EMPTY_PASSWORD): expected USER:PASSWORD"),
    ],
)
def test_bad_explicit_credentials_are_exit_2_without_the_value(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        lookup_credentials(HOST, {"EMPTY_PASSWORD": "user:"}, (value, "XACCT_DEST_CREDS"))
    assert problem in str(caught.value)
    assert "only-password-1" not in str(caught.value)


def test_docker_config_comes_next_in_any_key_form(tmp_path: Path) -> None:
    env = docker_config(
        tmp_path,
        {
            "auths": {
                f"https://{HOST}/v1/": {"auth": b64("cfg:cfg-pw")},
                "other.example.com": {"username": "u2", "password": "p2"},
                "https://index.docker.io/v1/": {"auth": b64("hub:hub-pw")},
            }
        },
    )
    env.update(CI_REGISTRY=HOST, CI_JOB_TOKEN="job-token-1")
    path = tmp_path / "docker" / "config.json"
    assert found(HOST, env) == (("cfg", "cfg-pw"), f"Docker config {path}")
    assert found("other.example.com", env) == (("u2", "p2"), f"Docker config {path}")
    assert found("registry-1.docker.io", env) == (("hub", "hub-pw"), f"Docker config {path}")


def test_home_docker_config_without_docker_config_variable(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(
        json.dumps({"auths": {HOST: {"auth": b64("home:home-pw")}}})
    )
    assert found(HOST, {"HOME": str(tmp_path)})[0] == ("home", "home-pw")  # type: ignore[index]


def test_gitlab_registry_user_then_job_token_then_anonymous(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "CI_REGISTRY": HOST, "CI_JOB_TOKEN": "job-token-1"}
    both = {**env, "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "reg-pw-1"}
    assert found(HOST, both) == (
        ("gitlab-ci-token", "reg-pw-1"),
        "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD",
    )
    assert found(HOST, env) == (("gitlab-ci-token", "job-token-1"), "CI_JOB_TOKEN")
    assert found("elsewhere.example.com", env) == (None, "anonymous")
    assert found(HOST, {"HOME": str(tmp_path), "CI_REGISTRY": HOST}) == (None, "anonymous")


# A credential helper speaking Docker's protocol: `get`, the server on stdin, JSON on stdout.
FAKE_HELPER = """#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
case "$server" in
  {host}) printf '{{"ServerURL":"%s","Username":"helper-user","Secret":"{secret}"}}' "$server" ;;
  token.example.org)
    printf '{{"ServerURL":"%s","Username":"<token>","Secret":"refresh-1"}}' "$server" ;;
  broken.example.org) echo "keychain locked: {secret}"; exit 1 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""
HELPER_SECRET = "sentinel-helper-secret-5e21"


def helper_env(tmp_path: Path, config: dict[str, object]) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(FAKE_HELPER.format(host=HOST, secret=HELPER_SECRET))
    helper.chmod(0o755)
    return {**docker_config(tmp_path, config), "PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_cred_helpers_answer_for_their_host_and_win_over_auths(tmp_path: Path) -> None:
    auths = {"auths": {HOST: {"auth": b64("file:file-pw")}}}
    env = helper_env(tmp_path, {"credHelpers": {HOST: "fake"}, **auths})
    creds, origin = lookup_credentials(HOST, env, None)
    assert creds is not None
    assert (creds.username, creds.password.reveal()) == ("helper-user", HELPER_SECRET)
    assert origin.startswith("docker-credential-fake (")
    assert origin.endswith("config.json credHelpers)")
    assert mask(f"said {HELPER_SECRET}") == "said [MASKED]"


def test_a_cred_helper_without_credentials_means_anonymous_as_docker(tmp_path: Path) -> None:
    env = helper_env(
        tmp_path,
        {"credHelpers": {"other.example.org": "fake"}, "auths": {"other.example.org": {}}},
    )
    assert found("other.example.org", env) == (None, "anonymous")


def test_creds_store_first_then_auths(tmp_path: Path) -> None:
    auths = {"auths": {"other.example.org": {"auth": b64("file:file-pw")}}}
    env = helper_env(tmp_path, {"credsStore": "fake", **auths})
    assert found(HOST, env)[0] == ("helper-user", HELPER_SECRET)  # type: ignore[index]
    assert found("other.example.org", env) == (
        ("file", "file-pw"),
        f"Docker config {env['DOCKER_CONFIG']}/config.json",
    )


def test_identity_tokens_from_a_helper_are_not_used_and_say_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = helper_env(tmp_path, {"credHelpers": {"token.example.org": "fake"}})
    assert found("token.example.org", env) == (None, "anonymous")
    assert "identity token for token.example.org is not supported" in caplog.text


def test_a_broken_or_missing_helper_is_a_one_line_error_without_its_secret(
    tmp_path: Path,
) -> None:
    env = helper_env(
        tmp_path, {"credHelpers": {"broken.example.org": "fake", "gone.example.org": "absent"}}
    )
    with pytest.raises(RegistryAuthError) as broken:
        found("broken.example.org", env)
    assert "docker-credential-fake get broken.example.org failed: keychain locked" in str(
        broken.value
    )
    assert HELPER_SECRET not in mask(str(broken.value))
    with pytest.raises(ConfigError, match="docker-credential-absent is not on PATH; install it"):
        found("gone.example.org", env)


def test_a_docker_config_that_is_not_json_is_exit_2(tmp_path: Path) -> None:
    folder = tmp_path / "docker"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        lookup_credentials(HOST, {"DOCKER_CONFIG": str(folder)})


def test_push_reads_source_credentials_from_the_environment(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "XACCT_SRC_CREDS": "SRC_VAR",
        "SRC_VAR": "a:b-pw-1",
        "XACCT_INSECURE_REGISTRIES": "http://Registry.LAN:5000, other.lan",
    }
    access = source_access(HOST, env)
    assert access.credentials == Credentials("a", Secret("b-pw-1"))
    assert access.origin == "XACCT_SRC_CREDS ($SRC_VAR)"
    assert access.insecure_registries == frozenset({"registry.lan:5000", "other.lan"})


# ---- docker:// references ----------------------------------------------------------------


DIGEST_F = "sha256:" + "f" * 64


@pytest.mark.parametrize(
    ("text", "expected", "reference"),
    [
        (
            "docker://registry.example.com/team/app:1.0",
            ("registry.example.com", "team/app", "1.0", None),
            "1.0",
        ),
        ("docker://LOCALHOST:5000/app", ("localhost:5000", "app", None, None), "latest"),
        (
            f"docker://127.0.0.1:5000/a/b/c@{DIGEST_F}",
            ("127.0.0.1:5000", "a/b/c", None, DIGEST_F),
            DIGEST_F,
        ),
        ("docker://docker.io/alpine:3", ("docker.io", "library/alpine", "3", None), "3"),
        (
            "docker://[::1]:5000/x__y/a-b--c.d",
            ("[::1]:5000", "x__y/a-b--c.d", None, None),
            "latest",
        ),
    ],
)
def test_parse_reference(text: str, expected: tuple[object, ...], reference: str) -> None:
    image = parse_reference(text)
    assert (image.host, image.repository, image.tag, image.digest) == expected
    assert image.reference == reference
    assert parse_reference(str(image)) == image


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("registry.example.com/app:1", "expected docker://HOST/REPO[:TAG|@DIGEST]"),
        ("docker://alpine", "no repository after the host"),
        ("docker://alpine/x", "'alpine' is not a registry host"),
        ("docker://reg.example.com/Team/App", "is not a repository name"),
        ("docker://reg.example.com/app:1@sha256:" + "a" * 64, "a tag or a digest, not both"),
        ("docker://reg.example.com/app@sha256:abc", "is not sha256: and 64 lowercase hex"),
        ("docker://reg.example.com/app:-bad", "is not a valid tag"),
        ("docker://reg.example.com/", "no repository after the host"),
    ],
)
def test_parse_reference_refuses(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_reference(text)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_docker_sources_parse_into_a_source_spec() -> None:
    spec = parse_source("docker://registry.example.com:5000/team/app@sha256:" + "b" * 64)
    assert (spec.transport, spec.path, spec.host, spec.repository) == (
        "docker",
        Path(""),
        "registry.example.com:5000",
        "team/app",
    )
    assert spec.ref == "sha256:" + "b" * 64
    assert str(spec) == "docker://registry.example.com:5000/team/app@sha256:" + "b" * 64
    assert parse_source(str(spec)) == spec


# ---- token fetches: single-flight, no lock across the network -------------------------------


def test_threads_needing_one_token_share_one_fetch_and_the_lock_stays_free() -> None:
    """Eight threads need the same scope at once: one token request, the others wait for it,
    and the authenticator's lock is free while the token service thinks (a thread needing
    Basic credentials or another scope is not held up)."""
    from gitlab_xacct.registry.auth import Attempt, Authenticator
    from gitlab_xacct.registry.transport import Response

    started = threading.Event()
    release = threading.Event()
    lock_free_during_fetch: list[bool] = []

    def fetch(url: str, params: list[tuple[str, str]], login: str | None, verify: bool) -> Response:
        lock_free_during_fetch.append(not auth._lock.locked())
        started.set()
        release.wait(10)
        body = json.dumps({"token": "shared-token", "expires_in": 300}).encode()
        return Response.of(200, {"Content-Type": "application/json"}, body, url)

    auth = Authenticator("registry.test", None, fetch)
    challenge = Response.of(
        401,
        {"WWW-Authenticate": f'Bearer realm="{REALM}",service="{SERVICE}"'},
        b"",
        "https://registry.test/v2/",
    )
    assert auth.unauthorized(challenge, None, Attempt())
    results: list[str | None] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                auth.authorization(("repository:team/app:pull",), Attempt())
            )
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    assert started.wait(10)
    with auth._lock:  # taken at once: nobody holds it across the fetch
        pass
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert results == ["Bearer shared-token"] * 8
    assert auth.token_requests == 1
    assert lock_free_during_fetch == [True]
