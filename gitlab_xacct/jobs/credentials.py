"""`gitlab-xacct credentials`: the target role's credentials for the AWS CLI, Terraform or SDKs."""

from __future__ import annotations

import configparser
import io
import json
import logging
import os
import shlex
import stat
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from gitlab_xacct.aws.identity import assume_target
from gitlab_xacct.config.credentials import CredentialsSettings
from gitlab_xacct.docker_config import write_private
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.report import write_atomically

log = logging.getLogger(__name__)

# Formats meant to be read by a person or a shell; credential-process is read by the AWS CLI
# through a pipe by design, so it is the one format allowed on a pipe without asking.
_GUARDED = frozenset({"env", "dotenv", "json"})


@dataclass(frozen=True, slots=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime
    region: str
    role_session_arn: str


def fetch(settings: CredentialsSettings) -> RoleCredentials:
    role = assume_target(settings.identity)
    frozen = role.session.get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    return RoleCredentials(
        access_key_id=frozen.access_key or "",
        secret_access_key=frozen.secret_key or "",
        session_token=frozen.token or "",
        expiration=role.expiration,
        region=settings.identity.region,
        role_session_arn=role.arn,
    )


def render(creds: RoleCredentials, fmt: str) -> str:
    values = {
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_SESSION_TOKEN": creds.session_token,
        "AWS_REGION": creds.region,
        "AWS_DEFAULT_REGION": creds.region,
    }
    if fmt == "env":
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())
    if fmt == "dotenv":
        return "".join(f"{k}={v}\n" for k, v in values.items())
    document: dict[str, object] = {
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "SessionToken": creds.session_token,
        "Expiration": creds.expiration.isoformat(),
    }
    if fmt == "credential-process":
        return json.dumps({"Version": 1, **document}) + "\n"
    if fmt == "json":
        document |= {"Region": creds.region, "RoleSessionArn": creds.role_session_arn}
        return json.dumps(document, indent=2) + "\n"
    raise ValueError(f"not a text format: {fmt}")


def refuse_log_output(settings: CredentialsSettings, stdout: TextIO) -> None:
    """Stop credentials from landing in the job log, which every project member can read.

    A terminal or a redirect to a file is fine; a pipe may be GitLab's log collector, and
    there is no telling it from `$(...)`, so printing there needs --allow-log-output.
    """
    if settings.output or settings.format not in _GUARDED or settings.allow_log_output:
        return
    if stdout.isatty():
        return
    try:
        if stat.S_ISREG(os.fstat(stdout.fileno()).st_mode):
            return
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    raise ConfigError(
        f"--format {settings.format}: stdout is a pipe, and in a GitLab job that is the job log, "
        "readable by every project member; write a file with --output FILE, or pass "
        '--allow-log-output where stdout is captured (eval "$(gitlab-xacct credentials '
        '--allow-log-output)")'
    )


def write_profile(settings: CredentialsSettings, creds: RoleCredentials) -> None:
    """Merge one named profile into the AWS config/credentials pair, keeping every other one."""
    section = settings.profile
    config_section = "default" if section == "default" else f"profile {section}"
    _merge_ini(settings.config_file, config_section, {"region": creds.region})
    _merge_ini(
        settings.credentials_file,
        section,
        {
            "aws_access_key_id": creds.access_key_id,
            "aws_secret_access_key": creds.secret_access_key,
            "aws_session_token": creds.session_token,
        },
    )


def _read_ini(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(path.read_text(encoding="utf-8") if path.exists() else "")
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        # Only the kind of error: configparser quotes the offending line, which may hold a key.
        raise ConfigError(
            f"{path}: cannot read it as an AWS config file ({type(exc).__name__}); fix or move it"
        ) from None
    return parser


def _merge_ini(path: Path, section: str, values: dict[str, str]) -> None:
    """Both files are written 0600 (the config may name secrets too), atomically, and through
    a symlink as the Docker config is: a dotfile manager's link survives, its target changes."""
    parser = _read_ini(path)
    if parser.has_section(section):
        parser.remove_section(section)  # stale keys of an older session must not linger
    parser.add_section(section)
    for key, value in values.items():
        parser.set(section, key, value)
    buffer = io.StringIO()
    parser.write(buffer)
    try:
        write_private(path, buffer.getvalue())
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


def deliver(settings: CredentialsSettings, stdout: TextIO = sys.stdout) -> None:
    refuse_log_output(settings, stdout)  # before any AWS call: nothing fetched, nothing to leak
    if settings.format == "aws-profile":  # a file we could not merge into costs no AWS call
        _read_ini(settings.config_file)
        _read_ini(settings.credentials_file)
    creds = fetch(settings)
    if settings.format == "aws-profile":
        write_profile(settings, creds)
        print(
            f"wrote profile {settings.profile} to {settings.config_file} and "
            f"{settings.credentials_file} (expires {creds.expiration.isoformat()}); "
            f"use it with AWS_PROFILE={settings.profile}",
            file=stdout,
        )
        return
    text = render(creds, settings.format)
    if settings.output:
        write_atomically(settings.output, text, mode=0o600)
        log.info("wrote %s credentials to %s", settings.format, settings.output)
    else:
        stdout.write(text)
        stdout.flush()
