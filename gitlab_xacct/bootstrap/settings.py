"""The flags of `bootstrap role` and `bootstrap build-policy` (bootstrap/options.py), checked
before any AWS call. `--external-id` also reads XACCT_EXTERNAL_ID: a secret is better passed in
the environment than on a command line every `ps` shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from gitlab_xacct.bootstrap import external_id
from gitlab_xacct.bootstrap.options import (
    BUILD_POLICY_OPTIONS,
    DEFAULT_AUDIENCE,
    DEFAULT_ROLE_NAME,
    FORMATS,
    ROLE_OPTIONS,
)
from gitlab_xacct.config import validate
from gitlab_xacct.config.identity import region_given
from gitlab_xacct.config.problems import Problems, unknown_variables
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.config.resolver import check_unknown_variables as _check_unknown
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.iac.options import AsCode
from gitlab_xacct.iac.options import resolve as resolve_as_code
from gitlab_xacct.secrets import Secret

_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")
_ACCOUNT = re.compile(r"\d{12}")
_PARTITION = r"aws|aws-cn|aws-us-gov"
_PRINCIPAL = re.compile(
    rf"arn:(?:{_PARTITION}):iam::\d{{12}}:(?:root|(?:role|user)/(?:[\w+=,.@-]+/)*[\w+=,.@-]+)"
)
_OIDC_PROVIDER = re.compile(rf"arn:(?:{_PARTITION}):iam::(\d{{12}}):oidc-provider/[\w.:/-]+")
_PROJECT_PATH = re.compile(r"[\w.*-]+(?:/[\w.*-]+)+")
_AUDIENCE = re.compile(r"\S{1,255}")
_COMPONENT = r"[a-z0-9*?]+(?:[._-][a-z0-9*?]+)*"
_REPOSITORY_PATTERN = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}")
_POLICY_ARN = re.compile(rf"arn:(?:{_PARTITION}):iam::(?:aws|\d{{12}}):policy/(?:[\w+=,.@-]+/)*")


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcSpec:
    provider_arn: str
    project_path: str
    audience: str

    @property
    def account(self) -> str:
        return self.provider_arn.split(":")[4]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleSettings:
    role_name: str
    build_accounts: tuple[str, ...]
    build_principals: tuple[str, ...]
    tag_session: bool
    oidc: OidcSpec | None
    repositories: tuple[str, ...]
    allow_create: bool
    managed_policies: tuple[str, ...]  # names of AWS managed policies or ARNs, as given
    external_id: Secret | None
    external_id_origin: str
    external_id_warnings: tuple[str, ...]  # accepted by AWS, but weak: said, not refused
    region: str | None
    dry_run: bool
    check: bool
    as_code: AsCode | None = None  # --format: write the role as code instead of making it

    @classmethod
    def from_env(cls, env: Mapping[str, str], flags: Mapping[str, object]) -> RoleSettings:
        r = Resolver(env, flags, ROLE_OPTIONS)
        _role_problems(r)
        _check_unknown(env)
        role_name = _role_name(*(r.get("role_name") or (DEFAULT_ROLE_NAME, "--role-name")))
        accounts = tuple(_account(v) for v in _values(r, "build_accounts"))
        principals = tuple(_principal(v) for v in _values(r, "build_principals"))
        _trusted(accounts, principals)
        repositories = tuple(_repository(v) for v in _values(r, "repositories"))
        managed = tuple(_managed_policy(v) for v in _values(r, "managed_policies"))
        allow_create = r.boolean("allow_create")
        if repositories and managed:
            raise ConfigError(
                "--managed-policy: give either --repository (an inline least-privilege policy) "
                "or --managed-policy, not both"
            )
        _permissions(repositories, managed)
        if allow_create and managed:
            raise ConfigError(
                "--allow-create: only applies to the inline policy of --repository; a managed "
                "policy grants what it grants"
            )
        # The IAM and STS clients take it too (their partition), so it is read whenever set.
        found = region_given(r)
        if found is None and repositories:
            raise ConfigError(
                "XACCT_REGION (--region): not set; give the region of the ECR repositories "
                "(AWS_REGION and AWS_DEFAULT_REGION are unset too)"
            )
        region = validate.region(*found) if found else None
        secret, origin = None, ""
        warnings: tuple[str, ...] = ()
        given = r.get("external_id")
        if given is not None:
            value, origin = given
            secret = Secret(value)  # registered for masking before any check can fail
            warnings = external_id.check_given(value, origin)
        dry_run, check = r.boolean("dry_run"), r.boolean("check")
        if dry_run and check:
            raise ConfigError("--check: --dry-run and --check exclude each other; give one")
        as_code = resolve_as_code(r, FORMATS, external_id=secret, excludes=("dry_run", "check"))
        return cls(
            role_name=role_name,
            build_accounts=accounts,
            build_principals=principals,
            tag_session=r.boolean("tag_session"),
            oidc=_oidc(r),
            repositories=repositories,
            allow_create=allow_create,
            managed_policies=managed,
            external_id=secret,
            external_id_origin=origin,
            external_id_warnings=warnings,
            region=region,
            dry_run=dry_run,
            check=check,
            as_code=as_code,
        )

    def principal_arns(self, partition: str) -> list[str]:
        roots = [f"arn:{partition}:iam::{account}:root" for account in self.build_accounts]
        return sorted({*self.build_principals, *roots})


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildPolicySettings:
    role_arn: validate.RoleArn
    tag_session: bool
    attach_to_role: str | None
    as_code: AsCode | None = None
    region: str | None = None  # where --attach-to-role's STS and IAM clients sign (AWS_REGION)

    @classmethod
    def from_env(cls, env: Mapping[str, str], flags: Mapping[str, object]) -> BuildPolicySettings:
        r = Resolver(env, flags, BUILD_POLICY_OPTIONS)
        problems = Problems()
        unknown_variables(env, problems)
        required = partial(r.required, "role_arn", "the ARN of the OURTHING role to assume")
        problems.attempt(lambda: validate.role_arn(*required()))
        attach = r.get("attach_to_role")
        if attach:
            problems.attempt(partial(_role_name, *attach))
        problems.attempt(lambda: resolve_as_code(r, FORMATS, external_id=None))
        region = region_given(r)
        if region:
            problems.attempt(partial(validate.region, *region))
        problems.raise_several()
        _check_unknown(env)
        role = validate.role_arn(*r.required("role_arn", "the ARN of the OURTHING role to assume"))
        tag_flag = r.flag("tag_session")
        if isinstance(tag_flag, bool):
            tag_session = tag_flag
        else:
            found = r.fallback("XACCT_SESSION_TAGS")
            tag_session = validate.boolean(*found) if found else False
        attach = r.get("attach_to_role")
        return cls(
            role_arn=role,
            tag_session=tag_session,
            attach_to_role=_role_name(*attach) if attach else None,
            as_code=resolve_as_code(r, FORMATS, external_id=None),
            region=validate.region(*region) if region else None,
        )


def _role_problems(r: Resolver) -> None:
    """Every problem of `bootstrap role`'s flags in one run, a line each, as every command."""
    problems = Problems()
    unknown_variables(r.env, problems)
    given = r.get("role_name")
    if given:
        problems.attempt(partial(_role_name, *given))
    lists: tuple[tuple[str, Callable[[str], str]], ...] = (
        ("build_accounts", _account),
        ("build_principals", _principal),
        ("repositories", _repository),
        ("managed_policies", _managed_policy),
    )
    for dest, check in lists:
        for value in _values(r, dest):
            problems.attempt(partial(check, value))
    problems.attempt(lambda: _trusted(_values(r, "build_accounts"), _values(r, "build_principals")))
    problems.attempt(
        lambda: _permissions(_values(r, "repositories"), _values(r, "managed_policies"))
    )
    region = region_given(r)
    if region:
        problems.attempt(partial(validate.region, *region))
    given = r.get("external_id")
    problems.attempt(
        lambda: resolve_as_code(
            r,
            FORMATS,
            external_id=Secret(given[0]) if given else None,
            excludes=("dry_run", "check"),
        )
    )
    problems.raise_several()


def _trusted(accounts: Sequence[str], principals: Sequence[str]) -> None:
    if not accounts and not principals:
        raise ConfigError(
            "--build-principal: not set; give the runner's role ARN with --build-principal "
            "(recommended) or the BUILD account with --build-account"
        )


def _permissions(repositories: Sequence[str], managed: Sequence[str]) -> None:
    if not repositories and not managed:
        raise ConfigError(
            "--repository: not set; give the ECR repositories the role may push to "
            "(wildcards allowed: team/*), or --managed-policy"
        )


def _values(r: Resolver, dest: str) -> list[str]:
    found = r.list(dest)
    return [v.strip() for v in found[0]] if found else []


def _role_name(value: str, origin: str) -> str:
    if value.startswith("arn:"):
        raise ConfigError(f"{origin}: {value!r} is an ARN; give the role's name only")
    if _ROLE_NAME.fullmatch(value):
        return value
    raise ConfigError(
        f"{origin}: {value!r} is not a valid IAM role name "
        "(1-64 characters of letters, digits and _+=,.@-)"
    )


def _account(value: str) -> str:
    if _ACCOUNT.fullmatch(value):
        return value
    raise ConfigError(
        f"--build-account: {value!r} is not an AWS account id (exactly 12 digits); "
        "for a role or user, use --build-principal ARN"
    )


def _principal(value: str) -> str:
    if _PRINCIPAL.fullmatch(value):
        return value
    parts = value.split(":", 5)
    expected = "expected arn:aws:iam::ACCOUNT:role/NAME (or :user/NAME, :root)"
    if len(parts) != 6 or parts[0] != "arn":
        reason = "is not an ARN"
    elif parts[2] == "sts":
        reason = "is a role session's ARN; trust the role itself"
    elif parts[2] != "iam":
        reason = f"is an ARN of service {parts[2]!r}, not an IAM principal"
    elif parts[1] not in validate.PARTITIONS:
        reason = f"names partition {parts[1]!r} (known: {', '.join(validate.PARTITIONS)})"
    elif not _ACCOUNT.fullmatch(parts[4]):
        reason = f"has account id {parts[4]!r}; an account id is exactly 12 digits"
    else:
        reason = "is not a role, a user or an account root"
    raise ConfigError(f"--build-principal: {value!r} {reason}; {expected}")


def _repository(value: str) -> str:
    if not any(c in value for c in "*?"):
        return validate.repository(value, "--repository")
    if len(value) <= 256 and _REPOSITORY_PATTERN.fullmatch(value):
        return value
    raise ConfigError(
        f"--repository: {value!r} is not a valid ECR repository name or pattern (lower-case "
        "letters and digits, separated by single '.', '_', '-' or '/', with * or ? wildcards: "
        "team/*)"
    )


def _managed_policy(value: str) -> str:
    if value.startswith("arn:"):
        parts = value.split(":", 5)
        if len(parts) == 6 and parts[2] != "iam":
            raise ConfigError(
                f"--managed-policy: {value!r} is an ARN of service {parts[2]!r}; expected "
                "arn:aws:iam::aws:policy/NAME or arn:aws:iam::ACCOUNT:policy/NAME"
            )
        match = _POLICY_ARN.match(value)
        if match and _POLICY_NAME.fullmatch(value[match.end() :]):
            return value
        raise ConfigError(
            f"--managed-policy: {value!r} is not a policy ARN; expected "
            "arn:aws:iam::aws:policy/NAME or arn:aws:iam::ACCOUNT:policy/NAME"
        )
    if _POLICY_NAME.fullmatch(value):
        return value
    raise ConfigError(
        f"--managed-policy: {value!r} is neither a policy ARN nor an AWS managed policy name "
        "(such as AmazonEC2ContainerRegistryPowerUser)"
    )


def _oidc(r: Resolver) -> OidcSpec | None:
    provider, path, audience = r.get("oidc_provider"), r.get("project_path"), r.get("audience")
    if provider is None and path is None:
        if audience is not None:
            raise ConfigError("--gitlab-audience: only applies with --gitlab-oidc-provider")
        return None
    if provider is None:
        raise ConfigError(
            "--gitlab-oidc-provider: not set; --gitlab-project-path needs the ARN of the IAM "
            "OIDC provider for your GitLab (arn:aws:iam::ACCOUNT:oidc-provider/HOST)"
        )
    if path is None:
        raise ConfigError(
            "--gitlab-project-path: not set; give the group/project whose jobs may use the "
            "role (the OIDC trust is restricted on the token's sub claim)"
        )
    if not _OIDC_PROVIDER.fullmatch(provider[0]):
        raise ConfigError(
            f"--gitlab-oidc-provider: {provider[0]!r} is not the ARN of an IAM OIDC provider; "
            "expected arn:aws:iam::ACCOUNT:oidc-provider/gitlab.example.com"
        )
    if not _PROJECT_PATH.fullmatch(path[0]):
        raise ConfigError(
            f"--gitlab-project-path: {path[0]!r} is not a GitLab project path (group/project, "
            "subgroups allowed, * as a wildcard)"
        )
    aud = audience[0] if audience else DEFAULT_AUDIENCE
    if not _AUDIENCE.fullmatch(aud):
        raise ConfigError(f"--gitlab-audience: {aud!r} is not an audience (no spaces)")
    return OidcSpec(provider_arn=provider[0], project_path=path[0], audience=aud)
