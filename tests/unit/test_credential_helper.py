"""docker-credential-xacct: the stdin/stdout protocol and the token cache, with AWS faked."""

from __future__ import annotations

import io
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitlab_xacct.aws import ecr
from gitlab_xacct.commands import credential_helper as helper
from gitlab_xacct.config.identity import IdentitySettings
from gitlab_xacct.errors import IdentityError
from gitlab_xacct.secrets import Secret
from gitlab_xacct.token_cache import FILE_NAME, CachedToken, CacheKey, TokenCache, cache_dir

ROLE = "arn:aws:iam::222222222222:role/OurThingBuildRole"
EXTERNAL_ID = "sentinel-helper-ExtId-91c2"
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
ECR_HOST = "333333333333.dkr.ecr.us-west-2.amazonaws.com"
ENDPOINT_HOST = "127.0.0.1:5000"


class FakeEcr:
    """Stands in for helper.fetch_token; every token it hands out is valid for `lifetime`."""

    def __init__(self, lifetime: timedelta = timedelta(hours=12)) -> None:
        self.lifetime = lifetime
        self.calls: list[tuple[str, str, str]] = []  # (role, account, region)

    def __call__(self, identity: IdentitySettings, account: str) -> ecr.Authorization:
        self.calls.append((str(identity.target.role), account, identity.region))
        password = f"sentinel-pw-{account}-{len(self.calls)}"
        endpoint = f"https://{account}.dkr.ecr.{identity.region}.amazonaws.com"
        login = ecr.RegistryLogin(endpoint, "AWS", Secret(password))
        return ecr.Authorization(login=login, expires_at=NOW + self.lifetime)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEcr:
    fake = FakeEcr()
    monkeypatch.setattr(helper, "fetch_token", fake)
    return fake


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XACCT_ROLE_ARN": ROLE,
        "XACCT_EXTERNAL_ID": EXTERNAL_ID,
        "XACCT_REGION": "eu-west-1",
        "XACCT_REGISTRY_ENDPOINT": f"http://{ENDPOINT_HOST}",
    }


def run(env: dict[str, str], *argv: str, stdin: str = "", now: datetime = NOW) -> tuple[int, str]:
    out = io.StringIO()
    code = helper.main(list(argv), env, io.StringIO(stdin), out, now=now)
    return code, out.getvalue()


def get(env: dict[str, str], server: str, now: datetime = NOW) -> dict[str, str]:
    code, out = run(env, "get", stdin=server, now=now)
    assert code == 0, out
    answer: dict[str, str] = json.loads(out)
    return answer


# ---- the protocol ---------------------------------------------------------------------------


def test_get_for_an_ecr_host_takes_account_and_region_from_the_name(
    env: dict[str, str], fake: FakeEcr
) -> None:
    answer = get(env, ECR_HOST)
    assert answer == {
        "ServerURL": ECR_HOST,
        "Username": "AWS",
        "Secret": "sentinel-pw-333333333333-1",
    }
    assert fake.calls == [(ROLE, "333333333333", "us-west-2")]  # not XACCT_REGION's eu-west-1


@pytest.mark.parametrize(
    "server", [ENDPOINT_HOST, f"https://{ENDPOINT_HOST}", f"http://{ENDPOINT_HOST}/v2/"]
)
def test_get_for_the_registry_endpoint_is_the_target_account(
    env: dict[str, str], fake: FakeEcr, server: str
) -> None:
    answer = get(env, server + "\n")
    assert answer["ServerURL"] == server  # echoed as asked
    assert answer["Secret"] == "sentinel-pw-222222222222-1"
    assert fake.calls == [(ROLE, "222222222222", "eu-west-1")]


@pytest.mark.parametrize(
    "server", ["https://index.docker.io/v1/", "r.example.org", "127.0.0.1:5001"]
)
def test_other_hosts_are_not_found_so_docker_falls_back(
    env: dict[str, str], fake: FakeEcr, server: str
) -> None:
    assert run(env, "get", stdin=server) == (1, "credentials not found in native keychain\n")
    assert fake.calls == []


def test_without_an_endpoint_only_ecr_hosts_are_ours(env: dict[str, str], fake: FakeEcr) -> None:
    del env["XACCT_REGISTRY_ENDPOINT"]
    assert run(env, "get", stdin=ENDPOINT_HOST)[0] == 1
    assert get(env, ECR_HOST)["Username"] == "AWS"


def test_empty_request_is_dockers_missing_url_message(env: dict[str, str]) -> None:
    assert run(env, "get", stdin="\n") == (1, "no credentials server URL\n")


def test_failures_are_one_secret_free_line_on_stdout(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_identity: IdentitySettings, _account: str) -> ecr.Authorization:
        raise IdentityError(f"may not assume {ROLE} (External ID {EXTERNAL_ID} sent)\nsecond")

    monkeypatch.setattr(helper, "fetch_token", refuse)
    code, out = run(env, "get", stdin=ECR_HOST)
    assert code == 1
    assert out.count("\n") == 1
    assert out.startswith(f"docker-credential-xacct: may not assume {ROLE}")
    assert EXTERNAL_ID not in out


def test_bad_configuration_names_the_variable(env: dict[str, str], fake: FakeEcr) -> None:
    del env["XACCT_ROLE_ARN"]
    code, out = run(env, "get", stdin=ECR_HOST)
    assert code == 1
    assert out.startswith("docker-credential-xacct: XACCT_ROLE_ARN (--role-arn): not set")
    env["XACCT_ROLE_ARN"] = ROLE
    env["XACCT_ROLE_ARM"] = ROLE
    assert "did you mean XACCT_ROLE_ARN?" in run(env, "get", stdin=ECR_HOST)[1]
    assert fake.calls == []


def test_store_consumes_the_payload_and_keeps_nothing(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    payload = json.dumps({"ServerURL": ECR_HOST, "Username": "u", "Secret": "sentinel-stored"})
    assert run(env, "store", stdin=payload) == (0, "")
    err = capsys.readouterr().err
    assert "not stored" in err
    assert "sentinel-stored" not in err
    assert not (tmp_path / "cache").exists()


def test_list_erase_version_and_unknown_actions(env: dict[str, str], fake: FakeEcr) -> None:
    assert run(env, "list") == (0, "{}\n")
    get(env, ECR_HOST)
    get(env, ENDPOINT_HOST)
    assert json.loads(run(env, "list")[1]) == {ECR_HOST: "AWS", ENDPOINT_HOST: "AWS"}
    assert run(env, "erase", stdin=f"https://{ECR_HOST}") == (0, "")
    assert json.loads(run(env, "list")[1]) == {ENDPOINT_HOST: "AWS"}
    assert run(env, "erase", stdin="never.cached.example") == (0, "")
    assert run(env, "version")[1].startswith("docker-credential-xacct (gitlab-xacct) ")
    code, out = run(env, "delete")
    assert code == 1
    assert "unknown action 'delete'; use get, store, erase, list, version" in out
    assert run(env)[0] == 1


# ---- the cache ------------------------------------------------------------------------------


def test_a_fresh_token_is_answered_from_the_cache(
    env: dict[str, str], fake: FakeEcr, tmp_path: Path
) -> None:
    first = get(env, ECR_HOST)
    second = get(env, ECR_HOST, now=NOW + timedelta(hours=11))
    assert second == first
    assert len(fake.calls) == 1
    folder = tmp_path / "cache" / "gitlab-xacct"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / FILE_NAME).stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir()] == [FILE_NAME]  # written atomically, no temp left


@pytest.mark.parametrize("later", [timedelta(hours=11, minutes=55, seconds=1), timedelta(hours=13)])
def test_a_token_within_5_minutes_of_expiry_or_expired_is_fetched_again(
    env: dict[str, str], fake: FakeEcr, later: timedelta
) -> None:
    get(env, ECR_HOST)
    assert get(env, ECR_HOST, now=NOW + later)["Secret"] == "sentinel-pw-333333333333-2"
    assert len(fake.calls) == 2


def test_an_already_stale_token_is_never_cached(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stale = FakeEcr(lifetime=timedelta(days=-5000))  # moto answers with expiresAt in 2015
    monkeypatch.setattr(helper, "fetch_token", stale)
    get(env, ECR_HOST)
    get(env, ECR_HOST)
    assert len(stale.calls) == 2
    assert not (tmp_path / "cache" / "gitlab-xacct" / FILE_NAME).exists()


def test_cache_disabled_fetches_every_time_and_writes_nothing(
    env: dict[str, str], fake: FakeEcr, tmp_path: Path
) -> None:
    env["XACCT_CREDENTIAL_CACHE"] = "false"
    get(env, ECR_HOST)
    get(env, ECR_HOST)
    assert len(fake.calls) == 2
    assert not (tmp_path / "cache").exists()
    assert run(env, "list") == (0, "{}\n")


def test_the_cache_key_holds_the_role(env: dict[str, str], fake: FakeEcr) -> None:
    get(env, ECR_HOST)
    env["XACCT_ROLE_ARN"] = "arn:aws:iam::222222222222:role/Other"
    get(env, ECR_HOST)
    assert len(fake.calls) == 2


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": 1, "tokens": {"a": 1}}',
        '{"version": 1, "tokens": [{"host": 1}]}',
        '{"version": 99, "tokens": []}',
        '{"version": 1, "tokens": [{"role_arn": "r", "account": "a", "region": "r", '
        '"host": "h", "username": "u", "password": "p", "expires_at": "not a date"}]}',
    ],
)
def test_a_corrupt_cache_file_is_ignored_and_replaced(
    env: dict[str, str], fake: FakeEcr, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "cache" / "gitlab-xacct" / FILE_NAME
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert get(env, ECR_HOST)["Secret"] == "sentinel-pw-333333333333-1"
    assert json.loads(path.read_text())["tokens"][0]["host"] == ECR_HOST
    assert get(env, ECR_HOST)["Secret"] == "sentinel-pw-333333333333-1"
    assert len(fake.calls) == 1


def test_an_unwritable_cache_still_answers(
    env: dict[str, str], fake: FakeEcr, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cache").write_text("a file where the folder should be")
    assert get(env, ECR_HOST)["Username"] == "AWS"
    assert "could not write the token cache" in capsys.readouterr().err


def test_cache_location() -> None:
    assert cache_dir({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/x/gitlab-xacct")
    assert cache_dir({"XDG_CACHE_HOME": "rel", "HOME": "/h"}) == Path("/h/.cache/gitlab-xacct")
    assert cache_dir({"HOME": "/h"}) == Path("/h/.cache/gitlab-xacct")


def test_token_cache_round_trip(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    key = CacheKey(ROLE, "222222222222", "eu-west-1", ENDPOINT_HOST)
    token = CachedToken(key, "AWS", Secret("sentinel-round-trip"), NOW + timedelta(hours=1))
    assert cache.put(token, NOW)
    assert cache.get(key, NOW) == token
    assert cache.get(CacheKey(ROLE, "222222222222", "eu-west-2", ENDPOINT_HOST), NOW) is None
    assert cache.erase(ENDPOINT_HOST) == 1
    assert cache.get(key, NOW) is None
