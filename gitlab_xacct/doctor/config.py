"""Checks 1 and 2: the variables, each problem collected (not only the first), and the External
ID's own pitfalls (stray whitespace, a GitLab file-type variable)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from gitlab_xacct import validate
from gitlab_xacct.doctor.report import GITLAB, Check, ok
from gitlab_xacct.engine_settings import engine_options, platform_list
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.options import Resolver, check_unknown_variables
from gitlab_xacct.secrets import register
from gitlab_xacct.settings import (
    DestinationEntry,
    IdentitySettings,
    PushSettings,
    entry_destination,
    registry_endpoint,
    repository,
    resolve_chain,
    resolve_duration,
    resolve_region,
    resolve_report,
    resolve_source,
    resolve_tags,
    resolve_web_identity,
    variables_destination,
)

T = TypeVar("T")

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


class _Problems:
    def __init__(self) -> None:
        self.found: list[str] = []

    def attempt(self, step: Callable[[], T]) -> T | None:
        try:
            return step()
        except ConfigError as exc:
            self.found.append(str(exc))
            return None


def check_settings(r: Resolver) -> Check:
    """Every variable on its own, so that one run lists every problem. The External ID is left
    to `check_external_id`, which says more about it."""
    env = r.env
    problems = _Problems()
    token_variable = env.get("XACCT_ID_TOKEN_VARIABLE", "")
    for name in sorted(env):
        if name.startswith("XACCT_"):
            single = {name: env[name], "XACCT_ID_TOKEN_VARIABLE": token_variable}
            problems.attempt(partial(check_unknown_variables, single))
    role = problems.attempt(
        lambda: validate.role_arn(*r.required("role_arn", "the ARN of the role to assume"))
    )
    region = problems.attempt(lambda: resolve_region(r))
    chain = problems.attempt(lambda: resolve_chain(r)) or []
    web = problems.attempt(lambda: resolve_web_identity(r))
    # Its format, and over an hour where a hop is known to be chained (OIDC, XACCT_ROLE_CHAIN).
    problems.attempt(lambda: resolve_duration(r.get("duration_seconds"), tuple(chain), web))
    for arn in [*([role] if role else []), *(hop.role for hop in chain)]:
        if region:
            problems.attempt(partial(validate.same_partition, arn, *region))
    for dest, check in _SINGLE_VALUES:
        found = r.get(dest)
        if found:
            problems.attempt(partial(check, *found))
    for flag in ("session_tags", "create_repository", "debug"):
        problems.attempt(partial(r.boolean, flag))
    problems.attempt(lambda: registry_endpoint(r))
    problems.attempt(lambda: repository(r))
    _push_only(r, problems)
    if not problems.found:
        return ok(SETTINGS, "every variable is present and valid")
    return Check(
        SETTINGS,
        "FAIL",
        "\n".join(problems.found),
        side=GITLAB,
        fix=f"correct the {len(problems.found)} problem(s) above in the project's CI/CD "
        "variables or the job's variables",
        exit_code=ConfigError.exit_code,
    )


def _push_only(r: Resolver, problems: _Problems) -> None:
    """What push reads besides the destination, through push's own code: the engine's settings
    (parallelism, timeouts, retries, skip-existing, the proxy variables), the platforms, the
    report path, and the source and tags when given (the doctor needs neither, push both)."""
    env = r.env
    push = Resolver(env, {}, PushSettings.OPTIONS)  # the doctor has no flags for these
    problems.attempt(lambda: engine_options(push))
    problems.attempt(lambda: platform_list(push))
    problems.attempt(lambda: resolve_report(push, "dotenv"))
    problems.attempt(lambda: resolve_report(push, "annotations"))
    if push.get("source"):
        problems.attempt(lambda: resolve_source(push))
    if push.list("tags") or env.get("CI_COMMIT_SHORT_SHA") or env.get("CI_COMMIT_TAG"):
        problems.attempt(lambda: resolve_tags(push))


_SINGLE_VALUES: tuple[tuple[str, Callable[[str, str], object]], ...] = (
    ("session_name", validate.session_name),
    ("allowed_account_ids", validate.account_ids),
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
