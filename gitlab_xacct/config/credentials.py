"""`credentials`' settings: the identity and how its credentials are handed over."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gitlab_xacct.config.forms import CREDENTIAL_FORMATS
from gitlab_xacct.config.identity import IdentitySettings
from gitlab_xacct.config.options import (
    COMMON_OPTIONS,
    CREDENTIALS_OPTIONS,
    IDENTITY_OPTIONS,
)
from gitlab_xacct.config.problems import identity_command_problems
from gitlab_xacct.config.resolver import Resolver, check_unknown_variables
from gitlab_xacct.config.validate import report_path
from gitlab_xacct.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialsSettings:
    """`gitlab-xacct credentials`: the assumed credentials, shaped for another tool."""

    identity: IdentitySettings
    format: str
    output: Path | None
    allow_log_output: bool
    profile: str
    config_file: Path
    credentials_file: Path
    debug: bool

    OPTIONS = (*IDENTITY_OPTIONS, *CREDENTIALS_OPTIONS, *COMMON_OPTIONS)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], flags: Mapping[str, object] | None = None
    ) -> CredentialsSettings:
        r = Resolver(env, flags or {}, cls.OPTIONS)
        identity_command_problems(
            r, lambda: _format(r), lambda: _output(r), lambda: _profile(r),
            lambda: r.boolean("allow_log_output"),
        )  # fmt: skip
        check_unknown_variables(env)
        home = Path(env.get("HOME") or Path.home())
        config = r.get("config_file") or r.fallback("AWS_CONFIG_FILE")
        creds = r.get("credentials_file") or r.fallback("AWS_SHARED_CREDENTIALS_FILE")
        return cls(
            identity=IdentitySettings.resolve(r),
            format=_format(r),
            output=_output(r),
            allow_log_output=r.boolean("allow_log_output"),
            profile=_profile(r),
            config_file=Path(config[0]) if config else home / ".aws" / "config",
            credentials_file=Path(creds[0]) if creds else home / ".aws" / "credentials",
            debug=r.boolean("debug"),
        )


def _format(r: Resolver) -> str:
    chosen, origin = r.get("format") or ("env", "")
    if chosen not in CREDENTIAL_FORMATS:
        raise ConfigError(
            f"{origin}: {chosen!r} is not a format; use one of {', '.join(CREDENTIAL_FORMATS)}"
        )
    return chosen


def _output(r: Resolver) -> Path | None:
    output = r.get("output")
    return report_path(*output) if output else None


def _profile(r: Resolver) -> str:
    profile, origin = r.get("profile") or ("xacct", "")
    if not re.fullmatch(r"[\w.-]{1,64}", profile):
        raise ConfigError(
            f"{origin}: {profile!r} is not a usable AWS profile name (1-64 letters, digits, "
            "'_', '.', '-')"
        )
    return profile
