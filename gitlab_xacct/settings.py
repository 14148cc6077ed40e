"""Every XACCT_* variable, defined once: flags, variables and GitLab's CI_* defaults -> Settings.

Precedence: command-line flag, then XACCT_* variable, then GitLab's predefined CI_* variable,
then the built-in default. An empty variable counts as unset (GitLab jobs often define
variables as "" to switch them off).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gitlab_xacct import validate
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.sources import SourceSpec, parse_source
from gitlab_xacct.secrets import Secret
from gitlab_xacct.validate import RoleArn

Kind = Literal["value", "bool", "list"]


@dataclass(frozen=True)
class Option:
    dest: str
    env: str
    flag: str
    kind: Kind
    help: str
    metavar: str = "VALUE"


PUSH_OPTIONS: tuple[Option, ...] = (
    Option("role_arn", "XACCT_ROLE_ARN", "--role-arn", "value",
           "ARN of the role to assume in the target (OURTHING) account", "ARN"),
    Option("external_id", "XACCT_EXTERNAL_ID", "--external-id", "value",
           "External ID the role's trust policy demands (keep it in a masked variable; "
           "a flag is visible in the process list)", "ID"),
    Option("region", "XACCT_REGION", "--region", "value",
           "region of the target ECR (default: AWS_REGION, then AWS_DEFAULT_REGION)", "REGION"),
    Option("repository", "XACCT_REPOSITORY", "--repository", "value",
           "ECR repository name, not a URI (default: CI_PROJECT_PATH, lower-cased)", "NAME"),
    Option("source", "XACCT_SOURCE", "--source", "value",
           "image to push: oci:PATH[:REF], oci-archive:FILE[:REF] or docker-archive:FILE", "SRC"),
    Option("tags", "XACCT_TAGS", "--tag", "list",
           "tag to push; repeat the flag, or separate by commas or spaces in the variable "
           "(default: CI_COMMIT_SHORT_SHA, plus CI_COMMIT_TAG when set)", "TAG"),
    Option("create_repository", "XACCT_CREATE_REPOSITORY", "--create-repository", "bool",
           "create the ECR repository when it is missing (default: false)"),
    Option("registry_endpoint", "XACCT_REGISTRY_ENDPOINT", "--registry-endpoint", "value",
           "registry base URL to use instead of the one ECR names (VPC endpoint, local stand-in)",
           "URL"),
    Option("session_name", "XACCT_SESSION_NAME", "--session-name", "value",
           "role session name (default: derived from CI_PROJECT_ID, CI_PIPELINE_ID, CI_JOB_ID)",
           "NAME"),
    Option("dotenv", "XACCT_DOTENV", "--dotenv", "value",
           "write a dotenv report (XACCT_IMAGE_URI, XACCT_IMAGE_DIGEST, XACCT_IMAGE_TAGS) to "
           "this file, for artifacts:reports:dotenv", "FILE"),
    Option("debug", "XACCT_DEBUG", "--debug", "bool",
           "verbose logs and tracebacks (secrets stay masked; default: false)"),
)  # fmt: skip

# Variables gitlab-xacct writes for later jobs; a later job may see them, and they are not typos.
REPORT_VARIABLES = ("XACCT_IMAGE_URI", "XACCT_IMAGE_DIGEST", "XACCT_IMAGE_TAGS")
KNOWN_VARIABLES = frozenset({o.env for o in PUSH_OPTIONS} | set(REPORT_VARIABLES))


@dataclass(frozen=True, kw_only=True)
class PushSettings:
    role_arn: RoleArn
    external_id: Secret | None
    region: str
    repository: str
    source: SourceSpec
    source_origin: str
    tags: tuple[str, ...]
    create_repository: bool
    registry_endpoint: str | None
    session_name: str
    dotenv: Path | None
    debug: bool

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], flags: Mapping[str, object] | None = None
    ) -> PushSettings:
        check_unknown_variables(env)
        r = _Resolver(env, flags or {})
        role_arn = validate.role_arn(*r.required("role_arn", "the ARN of the role to assume"))
        external = r.get("external_id")
        region = r.get("region") or r.fallback("AWS_REGION", "AWS_DEFAULT_REGION")
        if region is None:
            raise ConfigError(
                "XACCT_REGION (--region): no region set; give the region of the target ECR "
                "registry (AWS_REGION and AWS_DEFAULT_REGION are unset too)"
            )
        repository = r.get("repository")
        if repository is None and env.get("CI_PROJECT_PATH"):
            repository = (env["CI_PROJECT_PATH"].lower(), "CI_PROJECT_PATH (lower-cased)")
        if repository is None:
            raise ConfigError(
                "XACCT_REPOSITORY (--repository): no repository set and CI_PROJECT_PATH is "
                "unset; give the ECR repository name, for example team/app"
            )
        source_value, source_origin = r.required("source", "the image to push")
        try:
            source = parse_source(source_value)
        except ConfigError as exc:
            raise ConfigError(f"{source_origin}: {exc}") from None
        endpoint = r.get("registry_endpoint")
        session = r.get("session_name")
        dotenv = r.get("dotenv")
        return cls(
            role_arn=role_arn,
            external_id=Secret(validate.external_id(*external)) if external else None,
            region=validate.region(*region),
            repository=validate.repository(*repository),
            source=source,
            source_origin=source_origin,
            tags=_tags(r, env),
            create_repository=r.boolean("create_repository"),
            registry_endpoint=validate.registry_endpoint(*endpoint) if endpoint else None,
            session_name=(
                validate.session_name(*session)
                if session
                else validate.derive_session_name(
                    env.get("CI_PROJECT_ID", ""),
                    env.get("CI_PIPELINE_ID", ""),
                    env.get("CI_JOB_ID", ""),
                )
            ),
            dotenv=_report_path(*dotenv) if dotenv else None,
            debug=r.boolean("debug"),
        )

    def summary(self) -> list[tuple[str, str]]:
        """The resolved settings for the job log; the External ID shows only whether it is set."""
        return [
            ("role", str(self.role_arn)),
            ("external id", f"set ({len(self.external_id)} characters)" if self.external_id
             else "not set"),
            ("region", self.region),
            ("repository", self.repository),
            ("source", str(self.source)),
            ("tags", ", ".join(self.tags)),
            ("session name", self.session_name),
            ("registry endpoint", self.registry_endpoint or "as ECR names it"),
            ("create repository", str(self.create_repository).lower()),
        ]  # fmt: skip


def check_unknown_variables(env: Mapping[str, str]) -> None:
    """A misspelt XACCT_* variable is silently ignored by a shell script; we say so."""
    for name in sorted(env):
        if name.startswith("XACCT_") and name not in KNOWN_VARIABLES:
            close = difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]}?"
                if close
                else "known: " + ", ".join(o.env for o in PUSH_OPTIONS)
            )
            raise ConfigError(f"{name}: unknown gitlab-xacct variable; {hint}")


class _Resolver:
    """Looks a setting up by precedence and remembers where each value came from."""

    def __init__(self, env: Mapping[str, str], flags: Mapping[str, object]) -> None:
        self._env = env
        self._flags = flags
        self._options = {o.dest: o for o in PUSH_OPTIONS}

    def get(self, dest: str) -> tuple[str, str] | None:
        option = self._options[dest]
        flag = self._flags.get(dest)
        if flag is not None and not isinstance(flag, bool | list):
            return str(flag), option.flag
        value = self._env.get(option.env, "")
        return (value, option.env) if value.strip() else None

    def required(self, dest: str, what: str) -> tuple[str, str]:
        found = self.get(dest)
        if found is None:
            option = self._options[dest]
            raise ConfigError(f"{option.env} ({option.flag}): not set; give {what}")
        return found

    def fallback(self, *names: str) -> tuple[str, str] | None:
        for name in names:
            if self._env.get(name, "").strip():
                return self._env[name], name
        return None

    def boolean(self, dest: str) -> bool:
        flag = self._flags.get(dest)
        if isinstance(flag, bool):
            return flag
        found = self.get(dest)
        return validate.boolean(*found) if found else False

    def list(self, dest: str) -> tuple[list[str], str] | None:
        option = self._options[dest]
        flag = self._flags.get(dest)
        if isinstance(flag, list) and flag:
            return [str(v) for v in flag], option.flag
        found = self.get(dest)
        return (_split(found[0]), found[1]) if found else None


def _split(value: str) -> list[str]:
    return [v for v in re.split(r"[\s,]+", value) if v]


def _tags(r: _Resolver, env: Mapping[str, str]) -> tuple[str, ...]:
    explicit = r.list("tags")
    pairs: list[tuple[str, str]]
    if explicit:
        values, origin = explicit
        pairs = [(v, origin) for v in values]
    else:
        pairs = [(env[n], n) for n in ("CI_COMMIT_SHORT_SHA", "CI_COMMIT_TAG") if env.get(n)]
    if not pairs:
        raise ConfigError(
            "XACCT_TAGS (--tag): no tags set and CI_COMMIT_SHORT_SHA is unset; "
            "give at least one tag"
        )
    tags = [validate.tag(value, origin) for value, origin in pairs]
    return tuple(dict.fromkeys(tags))  # keep order, drop repeats


def _report_path(value: str, origin: str) -> Path:
    path = Path(value)
    if path.is_dir():
        raise ConfigError(f"{origin}: {value!r} is a directory; give a file path for the report")
    if not path.parent.is_dir():
        raise ConfigError(
            f"{origin}: the folder {str(path.parent)!r} does not exist; create it or choose "
            "another path"
        )
    return path
