"""`gitlab-xacct login`: the Docker config merge, host selection, and the command with AWS faked."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitlab_xacct import docker_config
from gitlab_xacct.aws import ecr
from gitlab_xacct.aws.credentials import AssumedRole, new_session
from gitlab_xacct.cli import main
from gitlab_xacct.config.login import LoginSettings
from gitlab_xacct.errors import ConfigError, IdentityError, RegistryAuthError
from gitlab_xacct.jobs import login as login_command
from gitlab_xacct.secrets import Secret

ROLE = "arn:aws:iam::222222222222:role/OurThingBuildRole"
EXPIRES = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
PASSWORD = "sentinel-ecr-password-4c1d"


def auth_of(password: str) -> str:
    return base64.b64encode(f"AWS:{password}".encode()).decode()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- the config file -------------------------------------------------------------------


def test_merge_keeps_every_other_key_and_entry_and_replaces_the_host_whole() -> None:
    existing: dict[str, object] = {
        "auths": {
            "r.example.org": {"auth": "Z2g6dG9rZW4="},
            "127.0.0.1:5000": {"auth": "b2xkOm9sZA==", "identitytoken": "stale"},
        },
        "credHelpers": {"gcr.io": "gcloud"},
        "credsStore": "desktop",
        "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
    }
    merged = docker_config.merge(existing, {"127.0.0.1:5000": ("AWS", Secret(PASSWORD))})

    assert merged["auths"] == {
        "r.example.org": {"auth": "Z2g6dG9rZW4="},
        "127.0.0.1:5000": {"auth": auth_of(PASSWORD)},  # no stale identitytoken left to win
    }
    assert {k: v for k, v in merged.items() if k != "auths"} == {
        k: v for k, v in existing.items() if k != "auths"
    }
    assert existing["auths"]["127.0.0.1:5000"]["identitytoken"] == "stale"  # type: ignore[index]


def test_save_is_0600_in_new_0700_folders_and_tab_indented(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "config.json"
    docker_config.save(path, {"auths": {"h": {"auth": "x"}}})

    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700
    assert json.loads(path.read_text()) == {"auths": {"h": {"auth": "x"}}}
    assert '\n\t"auths"' in path.read_text()  # as Docker writes it
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temp file left


def test_save_tightens_an_existing_0644_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{}")
    path.chmod(0o644)
    docker_config.save(path, {"auths": {}})
    assert mode(path) == 0o600


def test_save_is_atomic_a_failed_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"auths": {"old": {}}}')

    def fail(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ConfigError, match=r"cannot write the Docker config .*No space left"):
        docker_config.save(path, {"auths": {"new": {}}})
    assert path.read_text() == '{"auths": {"old": {}}}'
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_save_writes_through_a_symlink_and_keeps_it(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "docker.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "config.json"
    link.symlink_to(real)
    docker_config.save(link, {"auths": {}})
    assert link.is_symlink()
    assert json.loads(real.read_text()) == {"auths": {}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"is not valid JSON \(line 1, column 2\)"),
        ("[1, 2]", "holds a JSON list, not an object"),
        ('{"auths": []}', "'auths' is not an object"),
    ],
)
def test_load_refuses_what_docker_could_not_read(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as error:
        docker_config.load(path)
    assert str(path) in str(error.value)
    assert "untouched" in str(error.value)


def test_load_missing_or_empty_is_an_empty_config(tmp_path: Path) -> None:
    assert docker_config.load(tmp_path / "none.json") == {}
    (tmp_path / "empty.json").write_text("\n")
    assert docker_config.load(tmp_path / "empty.json") == {}


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("https://2.dkr.ecr.eu-west-1.amazonaws.com/", "2.dkr.ecr.eu-west-1.amazonaws.com"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://Registry.Example:8443/v2/", "registry.example:8443"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5000"),
        (" registry.example\n", "registry.example"),
        ("https://[::1]:5000", "[::1]:5000"),
    ],
)  # fmt: skip
def test_registry_host_is_dockers_key(value: str, host: str) -> None:
    assert docker_config.registry_host(value) == host


def test_shadowing_names_what_docker_reads_instead() -> None:
    host = "127.0.0.1:5000"
    assert docker_config.shadowing({"auths": {}}, host) is None
    helper = docker_config.shadowing({"credHelpers": {host: "ecr-login"}}, host)
    assert helper is not None
    assert "docker-credential-ecr-login" in helper
    store = docker_config.shadowing({"credsStore": "desktop"}, host)
    assert store is not None
    assert "docker-credential-desktop, not from this auths entry" in store
    assert "skopeo ignore credsStore" in store
    # A host-specific helper wins over the store: only that one is named.
    both = docker_config.shadowing({"credsStore": "desktop", "credHelpers": {host: "x"}}, host)
    assert both is not None
    assert "docker-credential-x" in both


# ---- which registries -------------------------------------------------------------------


def settings(tmp_path: Path, *flags: str, **env: str) -> LoginSettings:
    base = {"XACCT_ROLE_ARN": ROLE, "AWS_REGION": "eu-west-1", "HOME": str(tmp_path)}
    registries = list(flags)
    return LoginSettings.from_env({**base, **env}, {"login_registries": registries or None})


def test_targets_use_the_endpoint_host_for_the_target_account(tmp_path: Path) -> None:
    chosen = login_command.targets(
        settings(tmp_path, XACCT_REGISTRY_ENDPOINT="http://127.0.0.1:5000")
    )
    assert chosen == [login_command.Target("222222222222", "eu-west-1", "127.0.0.1:5000")]
    without = login_command.targets(settings(tmp_path))
    assert without == [login_command.Target("222222222222", "eu-west-1", None)]


def test_extra_registries_account_ids_and_ecr_hosts(tmp_path: Path) -> None:
    chosen = login_command.targets(
        settings(
            tmp_path,
            "333333333333",
            "https://444444444444.dkr.ecr.us-west-2.amazonaws.com/",
            "222222222222",  # the target account again: once only
        )
    )
    assert chosen == [
        login_command.Target("222222222222", "eu-west-1", None),
        login_command.Target("333333333333", "eu-west-1", None),
        login_command.Target(
            "444444444444", "us-west-2", "444444444444.dkr.ecr.us-west-2.amazonaws.com"
        ),
    ]


def test_docker_config_location(tmp_path: Path) -> None:
    assert settings(tmp_path).docker_config == tmp_path / ".docker" / "config.json"
    assert settings(tmp_path, DOCKER_CONFIG="/d").docker_config == Path("/d/config.json")
    chosen = settings(tmp_path, DOCKER_CONFIG="/d", XACCT_DOCKER_CONFIG="/x/c.json")
    assert chosen.docker_config == Path("/x/c.json")


# ---- the command, AWS faked ----------------------------------------------------------------


Calls = list[tuple[str, str]]


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """assume_target and GetAuthorizationToken replaced; records (account, region) asked."""
    calls: Calls = []

    def assume(_identity: object) -> AssumedRole:
        session = new_session(aws_access_key_id="AKIDFAKE", aws_secret_access_key="fake")
        arn = "arn:aws:sts::222222222222:assumed-role/OurThingBuildRole/s"
        return AssumedRole(session, arn, "222222222222", "AKIDFAKE", EXPIRES)

    def authorize(_client: object, *, account: str, region: str, role: str) -> ecr.Authorization:
        calls.append((account, region))
        endpoint = f"https://{account}.dkr.ecr.{region}.amazonaws.com"
        login = ecr.RegistryLogin(endpoint, "AWS", Secret(f"{PASSWORD}-{account}"))
        return ecr.Authorization(login=login, expires_at=EXPIRES)

    monkeypatch.setattr(login_command, "assume_target", assume)
    monkeypatch.setattr(ecr, "ecr_client", lambda _role, region: region)
    monkeypatch.setattr(ecr, "authorize", authorize)
    return calls


def run_login(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str, **env: str
) -> tuple[int, str, str]:
    base = {"XACCT_ROLE_ARN": ROLE, "AWS_REGION": "eu-west-1", "HOME": str(tmp_path)}
    code = main(["login", *argv], env={**base, **env})
    out, err = capsys.readouterr()
    return code, out, err


def test_login_writes_the_config_and_prints_one_line_per_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_aws: Calls
) -> None:
    config = tmp_path / ".docker" / "config.json"
    code, out, err = run_login(
        tmp_path,
        capsys,
        "--registry",
        "333333333333",
        XACCT_REGISTRY_ENDPOINT="http://127.0.0.1:5000",
        XACCT_LOGIN_REGISTRIES="444444444444.dkr.ecr.us-west-2.amazonaws.com",
    )

    assert code == 0, err
    # The flag wins over the variable, as everywhere.
    assert out.splitlines() == [
        "logged in to 127.0.0.1:5000 (expires 2030-01-02T03:04:05Z)",
        "logged in to 333333333333.dkr.ecr.eu-west-1.amazonaws.com (expires 2030-01-02T03:04:05Z)",
    ]
    assert fake_aws == [("222222222222", "eu-west-1"), ("333333333333", "eu-west-1")]
    assert json.loads(config.read_text()) == {
        "auths": {
            "127.0.0.1:5000": {"auth": auth_of(f"{PASSWORD}-222222222222")},
            "333333333333.dkr.ecr.eu-west-1.amazonaws.com": {
                "auth": auth_of(f"{PASSWORD}-333333333333")
            },
        }
    }
    assert mode(config) == 0o600
    assert PASSWORD not in out + err


def test_ecr_host_registry_is_asked_in_its_own_region(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_aws: Calls
) -> None:
    code, out, _ = run_login(
        tmp_path, capsys, XACCT_LOGIN_REGISTRIES="444444444444.dkr.ecr-fips.us-west-2.amazonaws.com"
    )
    assert code == 0
    assert fake_aws[1] == ("444444444444", "us-west-2")
    assert "logged in to 444444444444.dkr.ecr-fips.us-west-2.amazonaws.com " in out


def test_login_warns_when_docker_would_read_a_store_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_aws: Calls
) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"credsStore": "desktop", "auths": {"r.example.org": {"auth": "eA=="}}})
    )
    code, _, err = run_login(tmp_path, capsys, "--docker-config", str(config))
    assert code == 0
    assert "credsStore is 'desktop'" in err
    written = json.loads(config.read_text())
    assert written["credsStore"] == "desktop"
    assert set(written["auths"]) == {
        "r.example.org",
        "222222222222.dkr.ecr.eu-west-1.amazonaws.com",
    }


@pytest.mark.parametrize("content", ["{broken", '"a string"'])
def test_bad_config_is_exit_2_before_any_aws_call_and_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_aws: Calls, content: str
) -> None:
    config = tmp_path / "config.json"
    config.write_text(content)
    code, out, err = run_login(tmp_path, capsys, XACCT_DOCKER_CONFIG=str(config))
    assert code == 2
    assert out == ""
    assert err.startswith(f"gitlab-xacct: error: the Docker config {config} ")
    assert err.count("\n") == 1
    assert config.read_text() == content
    assert fake_aws == []


def fail_with(error: Exception) -> Callable[..., None]:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise error

    return fail


def test_refused_assume_role_is_exit_3_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fake_aws: Calls,
) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"auths": {}}')
    monkeypatch.setattr(login_command, "assume_target", fail_with(IdentityError("may not assume")))
    code, out, err = run_login(tmp_path, capsys, XACCT_DOCKER_CONFIG=str(config))
    assert (code, out) == (3, "")
    assert "may not assume" in err
    assert config.read_text() == '{"auths": {}}'


def test_one_refused_registry_is_exit_4_and_writes_none_of_them(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fake_aws: Calls,
) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"auths": {}}')
    real = ecr.authorize

    def refuse(client: object, *, account: str, region: str, role: str) -> ecr.Authorization:
        if account == "333333333333":
            raise RegistryAuthError("AccessDeniedException: ecr:GetAuthorizationToken")
        return real(client, account=account, region=region, role=role)  # type: ignore[arg-type]

    monkeypatch.setattr(ecr, "authorize", refuse)
    code, out, err = run_login(
        tmp_path, capsys, "--registry", "333333333333", XACCT_DOCKER_CONFIG=str(config)
    )
    assert (code, out) == (4, "")
    assert "AccessDeniedException" in err
    assert config.read_text() == '{"auths": {}}'


def test_help_names_the_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["login", "--help"], env={})
    text = " ".join(capsys.readouterr().out.split())
    for option in LoginSettings.OPTIONS:
        assert option.flag in text
        assert f"[{option.env}]" in text
