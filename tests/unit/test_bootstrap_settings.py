"""`bootstrap role` / `build-policy` flags: each bad input one line naming its flag, exit 2."""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter

import pytest

from gitlab_xacct import cli
from gitlab_xacct.bootstrap import external_id
from gitlab_xacct.bootstrap.options import DEFAULT_AUDIENCE
from gitlab_xacct.bootstrap.settings import RoleSettings
from gitlab_xacct.errors import ConfigError

RUNNER = "arn:aws:iam::111111111111:role/gitlab-runner"
TARGET = "arn:aws:iam::222222222222:role/gitlab-xacct-push"
BASE = ("--build-principal", RUNNER, "--repository", "team/app", "--region", "eu-west-1")
GOOD_ID = "Abcdefgh0123456789XYZ"


def role_flags(*argv: str) -> dict[str, object]:
    args = cli.build_parser().parse_args(["bootstrap", "role", *argv])
    return {k: v for k, v in vars(args).items() if k not in ("command", "subcommand")}


def settings(*argv: str, env: dict[str, str] | None = None) -> RoleSettings:
    return RoleSettings.from_env(env or {}, role_flags(*argv))


@pytest.mark.parametrize(
    ("argv", "flag", "words"),
    [
        (("--build-account", "12345", "--repository", "a/b", "--region", "eu-west-1"),
         "--build-account", "12 digits"),
        (("--build-principal", "arn:aws:s3:::bucket", "--repository", "a/b"),
         "--build-principal", "service 's3'"),
        (("--build-principal", "arn:aws:sts::111111111111:assumed-role/r/s", "--repository", "ab"),
         "--build-principal", "session"),
        (("--build-principal", "arn:aws:iam::1111:role/r", "--repository", "ab"),
         "--build-principal", "12 digits"),
        ((*BASE, "--role-name", "bad name"), "--role-name", "IAM role name"),
        ((*BASE, "--role-name", "x" * 65), "--role-name", "IAM role name"),
        ((*BASE, "--role-name", TARGET), "--role-name", "name only"),
        (("--build-principal", RUNNER, "--repository", "Team/App", "--region", "eu-west-1"),
         "--repository", "not a valid ECR repository name"),
        (("--build-principal", RUNNER, "--repository", "team//*", "--region", "eu-west-1"),
         "--repository", "pattern"),
        (("--build-principal", RUNNER, "--repository", "1.dkr.ecr.x/app"), "--repository",
         "image reference"),
        ((*BASE, "--external-id", "has a space 0123456789"), "--external-id", "AWS accepts"),
        ((*BASE, "--external-id", "x"), "--external-id", "2 to 1224"),
        ((*BASE, "--external-id", "ab#cd"), "--external-id", "_+=,.@:/-"),
        (("--build-principal", RUNNER, "--repository", "ab"), "XACCT_REGION", "region"),
        (("--build-principal", RUNNER, "--repository", "ab", "--region", "europe"), "--region",
         "region"),
        (("--repository", "ab", "--region", "eu-west-1"), "--build-principal", "not set"),
        (("--build-principal", RUNNER), "--repository", "not set"),
        ((*BASE, "--managed-policy", "AmazonEC2ContainerRegistryPowerUser"), "--managed-policy",
         "not both"),
        (("--build-principal", RUNNER, "--managed-policy", "P", "--allow-create"),
         "--allow-create", "inline"),
        (("--build-principal", RUNNER, "--managed-policy", "arn:aws:s3:::x/policy"),
         "--managed-policy", "service 's3'"),
        (("--build-principal", RUNNER, "--managed-policy", "bad name!"), "--managed-policy",
         "neither"),
        ((*BASE, "--gitlab-project-path", "team/app"), "--gitlab-oidc-provider", "not set"),
        ((*BASE, "--gitlab-oidc-provider", "arn:aws:iam::222222222222:oidc-provider/g.example"),
         "--gitlab-project-path", "not set"),
        ((*BASE, "--gitlab-oidc-provider", "arn:aws:iam::222222222222:role/x",
          "--gitlab-project-path", "team/app"), "--gitlab-oidc-provider", "OIDC provider"),
        ((*BASE, "--gitlab-oidc-provider", "arn:aws:iam::222222222222:oidc-provider/g.example",
          "--gitlab-project-path", "app"), "--gitlab-project-path", "group/project"),
        ((*BASE, "--gitlab-audience", "x"), "--gitlab-audience", "only applies"),
        ((*BASE, "--dry-run", "--check"), "--check", "exclude"),
    ],
)  # fmt: skip
def test_bad_input_names_its_flag(argv: tuple[str, ...], flag: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(*argv)
    message = str(caught.value)
    assert message.startswith(f"{flag}")
    assert words in message
    assert "\n" not in message


def test_bad_input_through_main_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bootstrap", "role", "--build-account", "12345", "--repository", "team/app"]
    code = cli.main([*argv, "--region", "eu-west-1"], env={})  # one problem: one line
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == (
        "gitlab-xacct: error: --build-account: '12345' is not an AWS account id (exactly 12 "
        "digits); for a role or user, use --build-principal ARN\n"
    )


def test_a_bad_external_id_is_never_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "sentinel#Secret#Value#42"
    code = cli.main(["bootstrap", "role", *BASE], env={"XACCT_EXTERNAL_ID": secret})
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("gitlab-xacct: error: XACCT_EXTERNAL_ID: ")
    assert "position 9" in err
    assert secret not in out + err


@pytest.mark.parametrize(
    ("value", "warned"),
    [
        ("some_key_build", ["14 characters long, short enough to guess"]),  # the classic write-up's
        ("abcdefghij,klmnopqrst", ["GitLab could not mask", "position 11"]),
        ("ab,cd", ["5 characters long", "GitLab could not mask", "5 characters long; GitLab"]),
        ("with-dashes_and_underscores-42", []),  # maskable since GitLab 11.10
        (GOOD_ID, []),
    ],
)
def test_a_weak_external_id_is_accepted_with_a_warning(value: str, warned: list[str]) -> None:
    got = settings(*BASE, env={"XACCT_EXTERNAL_ID": value})
    assert got.external_id is not None
    assert got.external_id.reveal() == value
    said = "\n".join(got.external_id_warnings)
    for words in warned:
        assert words in said
    assert bool(warned) == bool(got.external_id_warnings)
    for warning in got.external_id_warnings:
        assert warning.startswith("XACCT_EXTERNAL_ID: ")
        assert value not in warning


def test_defaults_and_sources() -> None:
    got = settings(
        "--build-account", "111111111111", "--build-principal", RUNNER,
        "--repository", "team/*", "--repository", "other/app",
        "--gitlab-oidc-provider", "arn:aws:iam::222222222222:oidc-provider/gitlab.example.com",
        "--gitlab-project-path", "team/app",
        env={"XACCT_EXTERNAL_ID": GOOD_ID, "AWS_DEFAULT_REGION": "eu-central-1"},
    )  # fmt: skip
    assert got.role_name == "gitlab-xacct-push"
    assert got.region == "eu-central-1"
    assert got.external_id is not None
    assert got.external_id.reveal() == GOOD_ID
    assert got.external_id_origin == "XACCT_EXTERNAL_ID"
    assert got.oidc is not None
    assert got.oidc.audience == DEFAULT_AUDIENCE
    assert got.principal_arns("aws") == [RUNNER, "arn:aws:iam::111111111111:root"]
    assert got.repositories == ("team/*", "other/app")


def test_flag_wins_over_the_variable() -> None:
    got = settings(*BASE, "--external-id", GOOD_ID, env={"XACCT_EXTERNAL_ID": "x" * 20})
    assert got.external_id is not None
    assert got.external_id.reveal() == GOOD_ID
    assert got.external_id_origin == "--external-id"


def test_managed_policy_needs_no_region() -> None:
    got = settings("--build-principal", RUNNER, "--managed-policy", "PowerUser")
    assert (got.region, got.managed_policies) == (None, ("PowerUser",))


def test_generated_external_ids_are_strong_and_maskable() -> None:
    ids = [external_id.generate() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:50]:
        assert re.fullmatch(r"[A-Za-z0-9]{32}", value)
        assert external_id.check_given(value, "--external-id") == ()  # no warning
    assert external_id.BITS >= 128
    assert external_id.LENGTH * math.log2(62) == pytest.approx(external_id.BITS)
    # Every character of the alphabet turns up, none far more often than chance allows.
    counts = Counter("".join(ids))
    assert set(counts) == set(string.ascii_letters + string.digits)
    expected = len(ids) * external_id.LENGTH / 62
    assert all(abs(n - expected) < 0.25 * expected for n in counts.values())


def test_build_policy_prints_without_any_aws_call(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["bootstrap", "build-policy", "--tag-session"], env={"XACCT_ROLE_ARN": TARGET})
    out, _ = capsys.readouterr()
    assert code == 0
    assert json.loads(out) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GitLabXacctAssumeTarget",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Resource": [TARGET],
            }
        ],
    }


def test_build_policy_takes_session_tags_from_the_job_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"XACCT_ROLE_ARN": TARGET, "XACCT_SESSION_TAGS": "true"}
    assert cli.main(["bootstrap", "build-policy"], env=env) == 0
    assert "sts:TagSession" in capsys.readouterr().out
    assert cli.main(["bootstrap", "build-policy", "--no-tag-session"], env=env) == 0
    assert "sts:TagSession" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ((), {}, "XACCT_ROLE_ARN (--role-arn): not set"),
        (("--role-arn", "arn:aws:ecr:eu-west-1:222222222222:repository/x"), {},
         "--role-arn: "),
        ((), {"XACCT_ROLE_ARN": TARGET}, ""),
        (("--attach-to-role", "bad name"), {"XACCT_ROLE_ARN": TARGET}, "--attach-to-role: "),
    ],
)  # fmt: skip
def test_build_policy_bad_input(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    code = cli.main(["bootstrap", "build-policy", *argv], env=env)
    _, err = capsys.readouterr()
    if not message:
        assert code == 0
        return
    assert code == 2
    assert err.startswith(f"gitlab-xacct: error: {message}")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("env", "region"),
    [
        ({"AWS_REGION": "cn-north-1", "AWS_DEFAULT_REGION": "eu-west-1"}, "cn-north-1"),
        ({"AWS_DEFAULT_REGION": "us-gov-west-1"}, "us-gov-west-1"),
        ({}, None),
    ],
)
def test_build_policy_attaches_in_the_region_of_the_admins_shell(
    env: dict[str, str], region: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BUILD account in China or GovCloud is reached through its partition's endpoints, which
    only a region of that partition names (AWS_REGION as much as AWS_DEFAULT_REGION)."""
    from gitlab_xacct.bootstrap import run

    asked: list[str | None] = []

    def connect(given: str | None) -> object:
        asked.append(given)
        raise SystemExit(0)

    monkeypatch.setattr(run, "connect", connect)
    flags = ["--role-arn", TARGET, "--attach-to-role", "gitlab-runner"]
    with pytest.raises(SystemExit):
        cli.main(["bootstrap", "build-policy", *flags], env=env)
    assert asked == [region]


def test_build_policy_refuses_a_region_that_is_no_region(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"XACCT_ROLE_ARN": TARGET, "AWS_REGION": "Europe"}
    assert cli.main(["bootstrap", "build-policy", "--attach-to-role", "r"], env=env) == 2
    assert capsys.readouterr().err.startswith("gitlab-xacct: error: AWS_REGION: 'Europe'")
