"""`gitlab-xacct credentials`: formats, the job-log guard, and profile merging (no AWS)."""

from __future__ import annotations

import configparser
import io
import json
import os
import shlex
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitlab_xacct.config.credentials import CredentialsSettings
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.jobs import credentials
from gitlab_xacct.jobs.credentials import (
    RoleCredentials,
    refuse_log_output,
    render,
)

CREDS = RoleCredentials(
    access_key_id="ASIASENTINELKEYID",
    secret_access_key="sentinel/secret+key=",
    session_token="sentinel-session-token",
    expiration=datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
    region="eu-west-1",
    role_session_arn="arn:aws:sts::222222222222:assumed-role/R/s",
)
ENV = {"XACCT_ROLE_ARN": "arn:aws:iam::222222222222:role/R", "AWS_REGION": "eu-west-1"}


def settings(tmp_path: Path, **env: str) -> CredentialsSettings:
    return CredentialsSettings.from_env({**ENV, "HOME": str(tmp_path), **env})


def test_env_format_is_shell_safe() -> None:
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in render(CREDS, "env").splitlines()
    )
    assert {k: shlex.split(v)[0] for k, v in exports.items()} == {
        "AWS_ACCESS_KEY_ID": "ASIASENTINELKEYID",
        "AWS_SECRET_ACCESS_KEY": "sentinel/secret+key=",
        "AWS_SESSION_TOKEN": "sentinel-session-token",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }


def test_credential_process_is_the_aws_cli_version_1_document() -> None:
    document = json.loads(render(CREDS, "credential-process"))
    assert document == {
        "Version": 1,
        "AccessKeyId": "ASIASENTINELKEYID",
        "SecretAccessKey": "sentinel/secret+key=",
        "SessionToken": "sentinel-session-token",
        "Expiration": "2026-11-28T08:00:00+00:00",
    }


def test_json_and_dotenv() -> None:
    assert json.loads(render(CREDS, "json"))["RoleSessionArn"].endswith(":assumed-role/R/s")
    assert "AWS_SESSION_TOKEN=sentinel-session-token\n" in render(CREDS, "dotenv")


def test_unknown_format_is_exit_2(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^XACCT_CREDENTIALS_FORMAT: 'yaml' is not a format"):
        settings(tmp_path, XACCT_CREDENTIALS_FORMAT="yaml")


def test_env_on_a_pipe_is_refused_unless_allowed(tmp_path: Path) -> None:
    read, write = os.pipe()
    try:
        with os.fdopen(write, "w", closefd=False) as pipe:
            with pytest.raises(ConfigError, match=r"stdout is a pipe.*--allow-log-output"):
                refuse_log_output(settings(tmp_path), pipe)
            refuse_log_output(settings(tmp_path, XACCT_ALLOW_LOG_OUTPUT="true"), pipe)
            refuse_log_output(
                settings(tmp_path, XACCT_CREDENTIALS_FORMAT="credential-process"), pipe
            )
            out = str(tmp_path / "creds.env")
            refuse_log_output(settings(tmp_path, XACCT_CREDENTIALS_OUTPUT=out), pipe)
    finally:
        os.close(read)
        os.close(write)


def test_a_redirect_to_a_file_is_fine(tmp_path: Path) -> None:
    with (tmp_path / "out").open("w") as handle:
        refuse_log_output(settings(tmp_path), handle)


def test_refusal_comes_before_any_aws_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[CredentialsSettings] = []

    def fetch(s: CredentialsSettings) -> RoleCredentials:
        called.append(s)
        return CREDS

    monkeypatch.setattr(credentials, "fetch", fetch)
    read, write = os.pipe()
    try:
        with os.fdopen(write, "w", closefd=False) as pipe, pytest.raises(ConfigError):
            credentials.deliver(settings(tmp_path), pipe)
    finally:
        os.close(read)
        os.close(write)
    assert called == []


def test_output_file_is_0600_and_holds_the_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credentials, "fetch", lambda _s: CREDS)
    target = tmp_path / "creds.env"
    stdout = io.StringIO()
    credentials.deliver(
        settings(tmp_path, XACCT_CREDENTIALS_FORMAT="dotenv", XACCT_CREDENTIALS_OUTPUT=str(target)),
        stdout,
    )
    assert stdout.getvalue() == ""
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "AWS_SECRET_ACCESS_KEY=sentinel/secret+key=" in target.read_text()


def test_aws_profile_merges_and_replaces_only_its_own_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credentials, "fetch", lambda _s: CREDS)
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "config").write_text("[profile other]\nregion = us-east-1\n")
    (aws / "credentials").write_text(
        "[other]\naws_access_key_id = KEEP\n[xacct]\naws_access_key_id = OLD\nstale = yes\n"
    )
    stdout = io.StringIO()
    credentials.deliver(settings(tmp_path, XACCT_CREDENTIALS_FORMAT="aws-profile"), stdout)

    assert "AWS_PROFILE=xacct" in stdout.getvalue()
    assert "sentinel" not in stdout.getvalue()
    config = configparser.RawConfigParser()
    config.read(aws / "config")
    assert config["profile other"]["region"] == "us-east-1"
    assert config["profile xacct"]["region"] == "eu-west-1"
    creds = configparser.RawConfigParser()
    creds.read(aws / "credentials")
    assert creds["other"]["aws_access_key_id"] == "KEEP"
    assert dict(creds["xacct"]) == {
        "aws_access_key_id": "ASIASENTINELKEYID",
        "aws_secret_access_key": "sentinel/secret+key=",
        "aws_session_token": "sentinel-session-token",
    }
    assert stat.S_IMODE((aws / "credentials").stat().st_mode) == 0o600


def test_unreadable_credentials_file_is_refused_without_quoting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credentials, "fetch", lambda _s: CREDS)
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text("aws_secret_access_key = sentinel-outside-a-section\n")
    with pytest.raises(ConfigError) as info:
        credentials.deliver(
            settings(tmp_path, XACCT_CREDENTIALS_FORMAT="aws-profile"), io.StringIO()
        )
    assert "sentinel" not in str(info.value)
    assert "cannot read it as an AWS config file" in str(info.value)
