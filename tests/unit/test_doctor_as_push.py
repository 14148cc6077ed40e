"""The doctor refuses what push refuses, in push's words: every variable push reads before it
opens the source, each bad value one of the doctor's settings findings (exit 2)."""

from __future__ import annotations

import json

import pytest

from gitlab_xacct.cli import main
from gitlab_xacct.commands.doctor import OPTIONS
from gitlab_xacct.config.push import PushSettings
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.doctor.config import check_settings
from gitlab_xacct.errors import ConfigError

ROLE = "arn:aws:iam::222222222222:role/OurThingBuildRole"
JOB = {
    "XACCT_ROLE_ARN": ROLE,
    "XACCT_EXTERNAL_ID": "some_key_build",
    "XACCT_SOURCE": "oci:/tmp/layout:latest",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "CI_PROJECT_PATH": "Team/My-App",
    "CI_JOB_ID": "90001",
    "CI_COMMIT_SHORT_SHA": "a1b2c3d4",
}

# One bad value each (compare tests/integration/test_bad_inputs.py): the engine's settings, the
# platforms, proxies, tags, the source's syntax, the report path, switches, and the identity's.
BAD = [
    {"XACCT_PARALLELISM": "99"},
    {"XACCT_PARALLELISM": "0"},
    {"XACCT_PARALLELISM": "four"},
    {"XACCT_RETRIES": "11"},
    {"XACCT_CONNECT_TIMEOUT": "0"},
    {"XACCT_READ_TIMEOUT": "forever"},
    {"XACCT_SKIP_EXISTING_TAGS": "enabled"},
    {"XACCT_PLATFORMS": "linux/amd46"},
    {"XACCT_PLATFORMS": "linux"},
    {"HTTPS_PROXY": "https://proxy.example:3128"},
    {"ALL_PROXY": "socks5://proxy.example:1080"},
    {"XACCT_TAGS": " , "},
    {"XACCT_TAGS": ".hidden"},
    {"XACCT_TAGS": "t" * 129},
    {"CI_COMMIT_TAG": "v1 beta"},
    {"XACCT_SOURCE": "image.tar"},
    {"XACCT_SOURCE": "docker://registry/team/app:1"},
    {"XACCT_DOTENV": "/"},
    {"XACCT_DOTENV": "/no/such/folder/xacct.env"},
    {"XACCT_DEBUG": "verbose"},
    {"XACCT_CREATE_REPOSITORY": "maybe"},
    {"XACCT_SESSION_TAGS": "2"},
    {"XACCT_REGISTRY_ENDPOINT": "http://r.example.org"},
    {"XACCT_REGOIN": "eu-west-1"},
    {"XACCT_REGION": "Europe"},
    {"XACCT_DURATION_SECONDS": "60"},
    {"XACCT_ROLE_CHAIN": "arn:aws:iam::1:role/Hub"},
    {"XACCT_SESSION_NAME": "a b"},
    {"XACCT_ALLOWED_ACCOUNT_IDS": "123"},
    {"XACCT_REPOSITORY": "Team/App"},
]


def _row(bad: dict[str, str]) -> str:
    return "-".join(f"{name}={value[:16]}" for name, value in bad.items())


@pytest.mark.parametrize("bad", BAD, ids=_row)
def test_what_push_refuses_the_doctor_refuses_in_the_same_words(bad: dict[str, str]) -> None:
    env = {**JOB, **bad}
    with pytest.raises(ConfigError) as refused:
        PushSettings.from_env(env)
    check = check_settings(Resolver(env, {}, OPTIONS))
    assert (check.status, check.exit_code, check.side) == ("FAIL", 2, "GitLab variables")
    assert str(refused.value) in check.detail.splitlines()


def test_what_push_accepts_the_doctor_accepts() -> None:
    env = {
        **JOB,
        "XACCT_PARALLELISM": "32",
        "XACCT_RETRIES": "0",
        "XACCT_CONNECT_TIMEOUT": "2.5",
        "XACCT_PLATFORMS": "linux/arm64,linux/amd64",
        "XACCT_SKIP_EXISTING_TAGS": "yes",
        "XACCT_TAGS": "v1 latest",
        "HTTPS_PROXY": "http://proxy.example:3128",
    }
    PushSettings.from_env(env)
    check = check_settings(Resolver(env, {}, OPTIONS))
    assert check.status == "ok", check.detail


def test_the_doctor_needs_no_source_nor_tags() -> None:
    env = {k: v for k, v in JOB.items() if k not in ("XACCT_SOURCE", "CI_COMMIT_SHORT_SHA")}
    check = check_settings(Resolver(env, {}, OPTIONS))
    assert check.status == "ok", check.detail


def test_doctor_with_parallelism_99_fails_its_settings_check_before_any_aws_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No AWS call could succeed here: unit tests refuse every connection.
    assert main(["doctor", "--json"], env={**JOB, "XACCT_PARALLELISM": "99"}) == 2
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["settings"]["status"] == "FAIL"
    assert checks["settings"]["detail"] == (
        "XACCT_PARALLELISM: '99' is not a number of uploads from 1 to 32"
    )
    assert checks["base identity"]["status"] == "skipped"
