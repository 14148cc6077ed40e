"""push lists every problem of its settings in one run, one line each, exit 2; the doctor's
settings check lists the same problems in the same words (one function serves both)."""

from __future__ import annotations

import pytest

from gitlab_xacct.cli import main
from gitlab_xacct.commands.doctor import OPTIONS as DOCTOR_OPTIONS
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.doctor.config import check_settings

ROLE = "arn:aws:iam::222222222222:role/OurThingBuildRole"
JOB = {
    "XACCT_ROLE_ARN": ROLE,
    "XACCT_REGION": "eu-west-1",
    "XACCT_REPOSITORY": "team/app",
    "XACCT_SOURCE": "oci:/nonexistent:latest",
    "CI_COMMIT_SHORT_SHA": "a1b2c3d4",
}


def push_errors(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["push"], env=env) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert all(line.startswith("gitlab-xacct: error: ") for line in lines), lines
    return [line.removeprefix("gitlab-xacct: error: ") for line in lines]


def test_push_with_nothing_set_names_every_missing_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = push_errors({}, capsys)
    named = [line.split(":", 1)[0] for line in lines]
    assert named == [
        "XACCT_ROLE_ARN (--role-arn)",
        "XACCT_REGION (--region)",
        "XACCT_REPOSITORY (--repository)",
        "XACCT_SOURCE (--source)",
        "XACCT_TAGS (--tag)",
    ]


def test_push_and_the_doctor_list_the_same_problems(capsys: pytest.CaptureFixture[str]) -> None:
    env = {**JOB, "XACCT_REGION": "Europe", "XACCT_PARALLELISM": "99", "XACCT_RGION": "x"}
    lines = push_errors(env, capsys)
    assert len(lines) == 3
    assert lines[0].startswith("XACCT_RGION: unknown gitlab-xacct variable; did you mean")
    assert lines[1].startswith("XACCT_REGION: 'Europe' is not an AWS region")
    assert lines[2].startswith("XACCT_PARALLELISM")
    doctor = check_settings(Resolver(env, {}, DOCTOR_OPTIONS))
    assert doctor.detail.splitlines() == lines


def test_one_problem_is_still_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    lines = push_errors({**JOB, "XACCT_TAGS": ".hidden"}, capsys)
    assert len(lines) == 1
    assert lines[0].startswith("XACCT_TAGS: '.hidden' is not a valid image tag")


def test_a_bad_external_id_is_among_the_problems_never_echoed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "sentinel#ExtId#0042"
    lines = push_errors({**JOB, "XACCT_EXTERNAL_ID": secret, "XACCT_REGION": "x"}, capsys)
    assert any(
        line.startswith("XACCT_EXTERNAL_ID: the External ID has a character") for line in lines
    )
    assert len(lines) == 2
    assert all(secret not in line for line in lines)


def command_errors(
    argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> list[str]:
    assert main(argv, env=env) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert all(line.startswith("gitlab-xacct: error: ") for line in lines), lines
    return [line.removeprefix("gitlab-xacct: error: ").split(":", 1)[0] for line in lines]


def test_login_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"XACCT_REGION": "Europe", "XACCT_LOGIN_REGISTRIES": "nope", "XACCT_RGION": "x"}
    assert command_errors(["login"], env, capsys) == [
        "XACCT_RGION",
        "XACCT_ROLE_ARN (--role-arn)",
        "XACCT_REGION",
        "XACCT_LOGIN_REGISTRIES",
    ]


def test_credentials_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "XACCT_ROLE_ARN": ROLE,
        "XACCT_CREDENTIALS_FORMAT": "yaml",
        "XACCT_AWS_PROFILE": "a b",
        "XACCT_DURATION_SECONDS": "ten",
    }
    assert command_errors(["credentials"], env, capsys) == [
        "XACCT_REGION (--region)",
        "XACCT_DURATION_SECONDS",
        "XACCT_CREDENTIALS_FORMAT",
        "XACCT_AWS_PROFILE",
    ]


def test_copy_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"XACCT_PARALLELISM": "99", "XACCT_CHUNK_SIZE": "big", "HOME": "/nonexistent"}
    assert command_errors(["copy", "tarball:x", "docker://r.example.org/a"], env, capsys) == [
        "SRC",
        "DEST",
        "XACCT_CHUNK_SIZE",
        "XACCT_PARALLELISM",
    ]


def test_bootstrap_role_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bootstrap", "role", "--role-name", "arn:aws:iam::1:role/x", "--region", "Europe"]
    assert command_errors(argv, {}, capsys) == [
        "--role-name",
        "--build-principal",
        "--repository",
        "--region",
    ]


def test_bootstrap_build_policy_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bootstrap", "build-policy", "--attach-to-role", "no spaces allowed"]
    assert command_errors(argv, {"XACCT_RGION": "x"}, capsys) == [
        "XACCT_RGION",
        "XACCT_ROLE_ARN (--role-arn)",
        "--attach-to-role",
    ]


def test_gitlab_configure_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"CI_SERVER_URL": "ftp://example.org", "XACCT_REGION": "eu-west-1"}
    named = command_errors(["gitlab", "configure"], env, capsys)
    assert len(named) == 3, named
    assert "CI_SERVER_URL" in named
