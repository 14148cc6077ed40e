"""Checks 1 and 2: the variables, each problem collected (not only the first), and the External
ID's own pitfalls (stray whitespace, a GitLab file-type variable)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitlab_xacct.config import validate
from gitlab_xacct.config.identity import IdentitySettings
from gitlab_xacct.config.problems import settings_problems
from gitlab_xacct.config.push import (
    DestinationEntry,
    PushSettings,
    entry_destination,
    variables_destination,
)
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.doctor.report import GITLAB, Check, ok
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.secrets import register

SETTINGS = "settings"
EXTERNAL_ID = "external id"


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorSettings:
    """What `push` would use for its (single) destination, minus the source and tags."""

    identity: IdentitySettings
    repository: str
    create_repository: bool
    registry_endpoint: str | None
    # The XACCT_DESTINATIONS entry these settings are, None for the variables' one destination:
    # what a fix tells the user to change.
    entry: DestinationEntry | None = None

    @property
    def endpoint_origin(self) -> str:
        if self.entry is not None and self.entry.registry_endpoint:
            return self.entry.named("endpoint")
        return "XACCT_REGISTRY_ENDPOINT"

    def summary(self) -> str:
        target = self.identity.target
        return (
            f"role {target.role}, region {self.identity.region}, repository {self.repository}"
            f"{' (created when missing)' if self.create_repository else ''}, registry "
            f"{self.registry_endpoint or 'as ECR names it'}"
        )


def check_settings(r: Resolver) -> Check:
    """Every variable on its own, so that one run lists every problem. The External ID is left
    to `check_external_id`, which says more about it."""
    push = Resolver(r.env, {}, PushSettings.OPTIONS)  # the doctor has no flags for these
    found = settings_problems(r, push=push, image=False)
    if not found:
        return ok(SETTINGS, "every variable is present and valid")
    return Check(
        SETTINGS,
        "FAIL",
        "\n".join(found),
        side=GITLAB,
        fix=f"correct the {len(found)} problem(s) above in the project's CI/CD "
        "variables or the job's variables",
        exit_code=ConfigError.exit_code,
    )


def build_settings(r: Resolver, entry: DestinationEntry | None = None) -> DoctorSettings:
    """After `check_settings` and `check_external_id` passed: the same resolution as push, for
    the one destination of the variables or for `entry` of XACCT_DESTINATIONS."""
    destination = variables_destination(r) if entry is None else entry_destination(entry, r)
    return DoctorSettings(
        identity=destination.identity,
        repository=destination.repository,
        create_repository=r.boolean("create_repository"),
        registry_endpoint=destination.registry_endpoint,
        entry=entry,
    )


def _where(origin: str) -> str:
    if origin.startswith("--"):
        return f"correct the value given to {origin}"
    return f"edit {origin} in the project's Settings > CI/CD > Variables (or the job's variables)"


_FILE_READ_LIMIT = 4096


def check_external_id(r: Resolver) -> Check:
    found = r.get("external_id")
    if found is None:
        return Check(
            EXTERNAL_ID,
            "warn",
            "not set: AssumeRole is sent without an ExternalId; most cross-account roles "
            "demand one",
            side=GITLAB,
            fix="if the role's trust policy has a sts:ExternalId condition, add XACCT_EXTERNAL_ID "
            "as a masked, protected CI/CD variable",
        )
    value, origin = found
    register(value.strip())
    path = Path(value.strip())
    if path.is_absolute() and path.is_file():
        return _file_variable(path, origin)
    try:
        validate.external_id(value, origin)
    except ConfigError as exc:
        fix = (
            f"{_where(origin)} and remove the whitespace (a value pasted from a file or a "
            "terminal often ends in a newline)"
            if validate.whitespace(value)
            else f"set {origin} to the External ID of the role's trust policy"
        )
        return Check(
            EXTERNAL_ID, "FAIL", str(exc), side=GITLAB, fix=fix, exit_code=ConfigError.exit_code
        )
    return ok(EXTERNAL_ID, f"set ({len(value)} characters, all of them allowed by AWS)")


def _file_variable(path: Path, origin: str) -> Check:
    """A GitLab variable of type File: the job sees a temporary file's path, not the value."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            content = handle.read(_FILE_READ_LIMIT).strip()
    except OSError:
        content = ""
    register(content)
    inside = (
        "the file holds a usable External ID"
        if validate.external_id_problem(content) is None
        else "the file does not hold a usable External ID either"
    )
    return Check(
        EXTERNAL_ID,
        "FAIL",
        f"{origin} is the path of an existing file, so it is a GitLab variable of type File: "
        f"AWS would get the path, not the External ID ({inside})",
        side=GITLAB,
        fix=f"change {origin} to type Variable (masked, protected) in Settings > CI/CD > "
        f'Variables, or read it in the script: export {origin}="$(cat "${origin}")"',
        exit_code=ConfigError.exit_code,
    )
