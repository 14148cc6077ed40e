"""`gitlab-xacct gitlab configure`: the XACCT_* CI/CD variables of a project or group, set
idempotently with python-gitlab, and optionally the CI file checked with GitLab's CI lint.

Everything local is checked before the first request (the token, the URL, the values, GitLab's
masking rule for the External ID, the CI file); nothing is written before every variable has
been compared, and nothing at all with --dry-run. Values of secrets are never printed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from gitlab_xacct.commands import Command
from gitlab_xacct.config import validate
from gitlab_xacct.config.options import COMMON_OPTIONS, IDENTITY_OPTIONS, PUSH_OPTIONS, Option
from gitlab_xacct.config.problems import Problems, unknown_variables
from gitlab_xacct.config.resolver import Resolver, check_unknown_variables
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.iac import options as as_code_options
from gitlab_xacct.iac.options import AsCode
from gitlab_xacct.secrets import Secret

log = logging.getLogger(__name__)

# The values this command puts into GitLab: the option of each, and whether it is a secret.
VALUE_DESTS = (("role_arn", False), ("region", False), ("repository", False), ("external_id", True))
# The same flags and variables as for `push`, with help that says what this command does with them.
_VALUE_HELP = {
    "role_arn": "the OURTHING role's ARN, stored as XACCT_ROLE_ARN",
    "region": "the target ECR's region, stored as XACCT_REGION",
    "repository": "the ECR repository name, stored as XACCT_REPOSITORY",
    "external_id": "the External ID, stored as XACCT_EXTERNAL_ID: masked, protected and hidden "
    "(GitLab 17.4+); GitLab must be able to mask it (8+ characters of letters, digits, _+=/@:.~-)",
}
_VALUE_OPTIONS = tuple(
    replace(o, help=_VALUE_HELP[o.dest])
    for o in (*IDENTITY_OPTIONS, *PUSH_OPTIONS)
    if o.dest in _VALUE_HELP
)

CONFIGURE_OPTIONS: tuple[Option, ...] = (
    Option("project", "", "--project", "value",
           "the project (numeric id or path such as team/app) whose CI/CD variables to set "
           "(default: CI_PROJECT_ID)", "ID_OR_PATH"),
    Option("group", "", "--group", "value",
           "set the variables of this group (id or path) instead of a project's", "ID_OR_PATH"),
    Option("environment_scope", "", "--environment-scope", "value",
           "environment scope of the variables; other scopes' variables of the same names are "
           "left alone (default: *)", "SCOPE"),
    Option("gitlab_url", "", "--gitlab-url", "value",
           "GitLab base URL, https:// (default: CI_SERVER_URL)", "URL"),
    Option("token_file", "", "--token-file", "value",
           "read the GitLab access token from this file (default: GITLAB_TOKEN); it needs the "
           "api scope and the Maintainer role (Owner for a group); CI_JOB_TOKEN cannot do this",
           "PATH"),
    Option("dry_run", "", "--dry-run", "bool",
           "show what would change and change nothing (default: false)"),
    Option("recreate_hidden", "", "--recreate-hidden", "bool",
           "delete an existing XACCT_EXTERNAL_ID that is not hidden and create it again hidden "
           "(GitLab 17.4+ hides variables only at creation; default: false)"),
    Option("lint", "", "--lint", "bool",
           "also validate the CI file with the project's CI lint API; exit 2 when it is invalid "
           "(default: false)"),
    Option("ci_file", "", "--ci-file", "value",
           "the CI file --lint validates (default: .gitlab-ci.yml)", "PATH"),
    *as_code_options.options((as_code_options.TERRAFORM,)),
)  # fmt: skip
OPTIONS = (*_VALUE_OPTIONS, *CONFIGURE_OPTIONS, *COMMON_OPTIONS)

_PATH = re.compile(r"[\w.+-]+(?:/[\w.+-]+)*")
_SCOPE = re.compile(r"[a-zA-Z0-9_\-/${}. *]{1,255}")
DEFAULT_SCOPE = "*"
DEFAULT_CI_FILE = ".gitlab-ci.yml"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigureSettings:
    url: str
    token: Secret | None  # None with --format: nothing is sent to GitLab
    token_origin: str
    kind: Literal["project", "group"]
    ident: str
    ident_origin: str
    scope: str
    values: tuple[tuple[str, str, bool], ...] = field(repr=False)  # (variable, value, secret)
    dry_run: bool
    recreate_hidden: bool
    lint_file: Path | None
    lint_content: str = field(default="", repr=False)
    as_code: AsCode | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], flags: Mapping[str, object]) -> ConfigureSettings:
        r = Resolver(env, flags, OPTIONS)
        _every_problem(r)
        check_unknown_variables(env)
        kind, ident, ident_origin = _target(r)
        values = _values(r)
        lint = r.boolean("lint")
        if lint and kind == "group":
            raise ConfigError("--lint: CI lint checks a project's CI file; use it with --project")
        if not values and not lint:
            names = ", ".join(o.env for o in _VALUE_OPTIONS)
            raise ConfigError(f"nothing to do: set one of {names} (or their flags), or --lint")
        lint_file, lint_content = _ci_file(r) if lint else (None, "")
        as_code = _as_code(r)
        token, token_origin = _token(r) if as_code is None else (None, "")
        return cls(
            url=_url(r) if as_code is None else "",
            token=token,
            token_origin=token_origin,
            kind=kind,
            ident=ident,
            ident_origin=ident_origin,
            scope=_scope(r),
            values=values,
            dry_run=r.boolean("dry_run"),
            recreate_hidden=r.boolean("recreate_hidden"),
            lint_file=lint_file,
            lint_content=lint_content,
            as_code=as_code,
        )


def _every_problem(r: Resolver) -> None:
    """Every problem of the flags and variables in one run, a line each, as every command."""
    problems = Problems()
    unknown_variables(r.env, problems)
    target = problems.attempt(lambda: _target(r))
    problems.attempt(lambda: _values(r))
    lint = problems.attempt(lambda: r.boolean("lint"))
    if lint and target is not None and target[0] == "project":
        problems.attempt(lambda: _ci_file(r))
    problems.attempt(lambda: _as_code(r))
    if r.get("output_format") is None:  # with --format, no request: no token, no URL
        problems.attempt(lambda: _token(r))
        problems.attempt(lambda: _url(r))
    problems.attempt(lambda: _scope(r))
    problems.raise_several()


def _as_code(r: Resolver) -> AsCode | None:
    given = r.get("external_id")
    return as_code_options.resolve(
        r,
        (as_code_options.TERRAFORM,),
        external_id=Secret(given[0]) if given else None,
        excludes=("dry_run", "recreate_hidden", "lint"),
    )


def _target(r: Resolver) -> tuple[Literal["project", "group"], str, str]:
    project, group = r.get("project"), r.get("group")
    if project and group:
        raise ConfigError("--group: give --project or --group, not both")
    if group:
        return "group", _ident(*group, "group"), group[1]
    found = project or r.fallback("CI_PROJECT_ID")
    if found is None:
        raise ConfigError(
            "--project: not set and no CI_PROJECT_ID; give --project ID_OR_PATH (e.g. team/app) "
            "or --group ID_OR_PATH"
        )
    return "project", _ident(*found, "project"), found[1]


def _ident(value: str, origin: str, kind: str) -> str:
    value = value.strip()
    if value.isdigit() or _PATH.fullmatch(value):
        return value
    if "://" in value:
        path = urlsplit(value).path.strip("/")
        raise ConfigError(
            f"{origin}: give the {kind}'s id or path ({path or 'team/app'}), not a URL"
        )
    raise ConfigError(
        f"{origin}: {value!r} is not a {kind} id or path; expected a number or a path such as "
        "team/app"
    )


def _values(r: Resolver) -> tuple[tuple[str, str, bool], ...]:
    """Each value checked as the job will use it, the External ID also against GitLab's masking
    rule: a value GitLab cannot mask is refused here, before any request."""
    checks = {
        "role_arn": lambda v, o: validate.role_arn(v, o).arn,
        "region": validate.region,
        "repository": validate.repository,
        "external_id": validate.external_id,
    }
    out = []
    for dest, secret in VALUE_DESTS:
        found = r.get(dest)
        if found is None:
            continue
        value, origin = found
        if secret:
            Secret(value)  # registered for masking before anything could print it
        value = checks[dest](value, origin)
        problem = validate.gitlab_mask_problem(value) if secret else None
        if problem:
            raise ConfigError(
                f"{origin}: GitLab could not mask this External ID: {problem}; choose one GitLab "
                "can mask (gitlab-xacct bootstrap role generates one)"
            )
        out.append((r.option(dest).env, value, secret))
    return tuple(out)


def _token(r: Resolver) -> tuple[Secret, str]:
    path = r.get("token_file")
    if path:
        try:
            text = Path(path[0]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"--token-file: cannot read {path[0]} ({exc.__class__.__name__})"
            ) from None
        token, origin = text.strip(), f"--token-file {path[0]}"
    else:
        token, origin = r.env.get("GITLAB_TOKEN", "").strip(), "GITLAB_TOKEN"
    if token:
        secret = Secret(token)
        if any(c.isspace() for c in token):
            raise ConfigError(f"{origin}: the token has whitespace inside; give the token alone")
        if token == r.env.get("CI_JOB_TOKEN", "").strip():
            raise ConfigError(
                f"{origin}: this is the job's CI_JOB_TOKEN, which cannot write CI/CD variables; "
                "give an access token with the api scope, of a user with the Maintainer role"
            )
        return secret, origin
    needs = (
        "give an access token with the api scope, of a user with the Maintainer role (Owner for "
        "a group), in GITLAB_TOKEN (a masked variable) or a file named by --token-file"
    )
    if path:
        raise ConfigError(f"--token-file: {path[0]} is empty; {needs}")
    if r.env.get("CI_JOB_TOKEN", "").strip():
        raise ConfigError(
            f"GITLAB_TOKEN: not set, and CI_JOB_TOKEN cannot write CI/CD variables (GitLab does "
            f"not let job tokens use the variables API); {needs}"
        )
    raise ConfigError(f"GITLAB_TOKEN: not set; {needs}")


def _url(r: Resolver) -> str:
    found = r.get("gitlab_url") or r.fallback("CI_SERVER_URL")
    if found is None:
        raise ConfigError("--gitlab-url: not set and no CI_SERVER_URL; give https://GITLAB-HOST")
    value, origin = found[0].strip(), found[1]
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{origin}: {value!r} is not a URL ({exc})") from None
    if url.scheme not in ("https", "http") or not url.hostname:
        raise ConfigError(f"{origin}: {value!r} is not a GitLab URL; expected https://HOST")
    if url.username or url.password or url.query or url.fragment:
        raise ConfigError(f"{origin}: give the bare base URL https://HOST[/PATH], no credentials")
    if url.scheme == "http" and not validate.is_loopback(url.hostname):
        raise ConfigError(f"{origin}: the token would travel in clear over http://; use https://")
    path = url.path.rstrip("/")
    if path.endswith("/api/v4"):
        raise ConfigError(f"{origin}: give GitLab's base URL, without /api/v4")
    return f"{url.scheme}://{url.netloc}{path}"


def _scope(r: Resolver) -> str:
    found = r.get("environment_scope")
    if found is None:
        return DEFAULT_SCOPE
    if not _SCOPE.fullmatch(found[0]):
        raise ConfigError(
            f"{found[1]}: {found[0]!r} is not an environment scope; use * or an environment name "
            "or pattern such as production or review/*"
        )
    return found[0]


def _ci_file(r: Resolver) -> tuple[Path, str]:
    found = r.get("ci_file")
    path = Path(found[0] if found else DEFAULT_CI_FILE)
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--ci-file: cannot read {path} ({exc.__class__.__name__}); run in the project's "
            "folder or give --ci-file PATH"
        ) from None


def run(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    """Resolve, connect, compare, write (unless --dry-run), lint; print one line per variable."""
    from gitlab_xacct.gitlab import Server, connect
    from gitlab_xacct.gitlab.variables import (
        HIDDEN_SINCE,
        Wanted,
        apply,
        lint,
        open_target,
        plan,
        read_all,
    )

    settings = ConfigureSettings.from_env(env, flags)
    if settings.as_code is not None:
        from gitlab_xacct.iac import emit

        return emit.gitlab_variables(
            kind=settings.kind,
            ident=settings.ident,
            scope=settings.scope,
            values=settings.values,
            as_code=settings.as_code,
        )
    if settings.token is None:
        raise RuntimeError("from_env reads a token unless --format is given")
    conn = connect(Server(settings.url, settings.token, settings.token_origin))
    target = open_target(conn, settings.kind, settings.ident)
    can_hide = conn.version_at_least(*HIDDEN_SINCE)
    log.info(
        "gitlab-xacct gitlab configure: %s on %s (GitLab %s) as %s, environment scope %s%s",
        target.label, settings.url, conn.version, conn.username, settings.scope,
        ", dry run: nothing is changed" if settings.dry_run else "",
    )  # fmt: skip
    if settings.values:
        wanted = [Wanted(key, value, secret) for key, value, secret in settings.values]
        changes = plan(
            read_all(conn, target),
            wanted,
            settings.scope,
            can_hide=can_hide,
            recreate_hidden=settings.recreate_hidden,
        )
        if not settings.dry_run:
            changes = apply(conn, target, changes, wanted, settings.scope)
        for change in changes:
            print(change.line(dry_run=settings.dry_run), flush=True)
    if settings.lint_file is not None:
        result = lint(conn, target, settings.lint_content, str(settings.lint_file))
        print(f"{settings.lint_file}: {'valid' if result.valid else 'invalid'} (GitLab CI lint)")
        for message in result.errors:
            print(f"  error: {message}")
        for message in result.warnings:
            print(f"  warning: {message}")
        if not result.valid:
            count = len(result.errors)
            raise ConfigError(
                f"--ci-file: GitLab's CI lint found {count} error{'s' * (count != 1)} in "
                f"{settings.lint_file}; fix them (listed above)"
            )
    return 0


COMMAND = Command(
    name="gitlab configure",
    summary="set the XACCT_* CI/CD variables of a GitLab project or group; lint its CI file",
    description="Set XACCT_ROLE_ARN, XACCT_REGION, XACCT_REPOSITORY and XACCT_EXTERNAL_ID "
    "(masked, protected, hidden where GitLab can) as CI/CD variables of a project or group, "
    "idempotently, with an access token (GITLAB_TOKEN or --token-file; never CI_JOB_TOKEN); "
    "--lint validates the CI file with GitLab's CI lint; --format terraform writes the variables "
    "as a Terraform configuration instead.",
    options=OPTIONS,
    run=run,
)
