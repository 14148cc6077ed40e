"""`gitlab-xacct credentials` against moto in auth mode: each format gives working credentials."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import boto3
import pytest

from tests.integration.conftest import CLI, Job

ASSUMED = "arn:aws:sts::222222222222:assumed-role/OurThingBuildRole/gitlab-xacct-4242-1001-90001"


def caller(session: boto3.Session, job: Job) -> str:
    sts = session.client("sts", endpoint_url=job.world.endpoint_url)
    return sts.get_caller_identity()["Arn"]


def test_env_on_the_job_log_is_refused(job: Job) -> None:
    result = job.run("credentials", "--format", "env")
    assert result.returncode == 2
    assert "stdout is a pipe" in result.stderr
    assert result.stdout == ""


def test_env_when_allowed_gives_the_target_role(job: Job) -> None:
    result = job.run("credentials", "--format", "env", "--allow-log-output", scan=False)
    assert result.returncode == 0, result.stderr
    values = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in result.stdout.splitlines()
    )
    session = boto3.Session(
        aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=values["AWS_SESSION_TOKEN"],
        region_name=values["AWS_REGION"],
    )
    assert caller(session, job) == ASSUMED
    assert job.world.runner_secret_access_key not in result.stdout  # the runner's own key stays


def test_credential_process_drives_boto3(
    job: Job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "aws-config"
    config.write_text(
        f"[profile ourthing]\ncredential_process = {CLI} credentials --format credential-process\n"
    )
    for name, value in job.env().items():
        monkeypatch.setenv(name, value)  # what the credential process inherits
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    session = boto3.Session(profile_name="ourthing", region_name="us-east-1")
    assert caller(session, job) == ASSUMED


def test_aws_profile_is_usable_by_name(
    job: Job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, creds = tmp_path / "config", tmp_path / "credentials"
    result = job.run(
        "credentials",
        "--format=aws-profile",
        f"--config-file={config}",
        f"--credentials-file={creds}",
        "--profile=ourthing",
    )
    assert result.returncode == 0, result.stderr
    assert "AWS_PROFILE=ourthing" in result.stdout
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    assert caller(boto3.Session(profile_name="ourthing"), job) == ASSUMED


def test_json_to_a_file(job: Job, tmp_path: Path) -> None:
    target = tmp_path / "creds.json"
    result = job.run("credentials", "--format", "json", "--output", str(target))
    assert result.returncode == 0, result.stderr
    document = json.loads(target.read_text())
    assert document["RoleSessionArn"] == ASSUMED
    assert target.stat().st_mode & 0o777 == 0o600


def test_wrong_external_id_is_exit_3_and_writes_nothing(job: Job, tmp_path: Path) -> None:
    target = tmp_path / "creds.json"
    result = job.run(
        "credentials", "--format", "json", "--output", str(target),
        XACCT_EXTERNAL_ID="sentinel-wrong-external-id",
    )  # fmt: skip
    assert result.returncode == 3
    assert "may not assume" in result.stderr
    assert not target.exists()
