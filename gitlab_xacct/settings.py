"""Flags and variables -> frozen settings, validated once, at the edge.

`IdentitySettings` is how the job reaches the target role (shared by every command);
`PushSettings` adds what `push` needs. The option table lives in `options.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gitlab_xacct import validate
from gitlab_xacct.engine_settings import engine_options, platform_list
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.options import (
    COMMON_OPTIONS,
    CREDENTIAL_FORMATS,
    CREDENTIALS_OPTIONS,
    DEFAULT_ID_TOKEN_VARIABLE,
    DESTINATION_FORM,
    ENGINE_OPTIONS,
    IDENTITY_OPTIONS,
    LOGIN_OPTIONS,
    PUSH_OPTIONS,
    REGISTRY_OPTIONS,
    Resolver,
    check_unknown_variables,
)
from gitlab_xacct.registry.platforms import Platform
from gitlab_xacct.registry.push import EngineOptions
from gitlab_xacct.registry.sources import SourceSpec, parse_source
from gitlab_xacct.secrets import Secret
from gitlab_xacct.validate import RoleArn

# GitLab predefined variables that become session tags (key, variable), when XACCT_SESSION_TAGS.
SESSION_TAG_SOURCES = (
    ("GitLabProject", "CI_PROJECT_PATH"),
    ("GitLabPipelineId", "CI_PIPELINE_ID"),
    ("GitLabJobId", "CI_JOB_ID"),
    ("GitLabRef", "CI_COMMIT_REF_NAME"),
    ("GitLabCommitSha", "CI_COMMIT_SHA"),
    ("GitLabUser", "GITLAB_USER_LOGIN"),
)
_TAG_VALUE_BAD = re.compile(r"[^\w\s.:/=+\-@]")
CHAINED_MAX_SECONDS = 3600  # AWS's cap on a role session assumed with role credentials


@dataclass(frozen=True, slots=True, kw_only=True)
class Hop:
    """One sts:AssumeRole call; `origin` names where the user set it, for error messages."""

    role: RoleArn
    external_id: Secret | None
    origin: str
    external_id_origin: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WebIdentity:
    role: RoleArn
    token: Secret
    token_variable: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentitySettings:
    web_identity: WebIdentity | None
    hops: tuple[Hop, ...]  # the chain in order; the last is the target role (XACCT_ROLE_ARN)
    region: str
    session_name: str
    duration_seconds: int
    session_tags: tuple[tuple[str, str], ...]  # empty unless XACCT_SESSION_TAGS
    allowed_account_ids: frozenset[str] | None

    @property
    def target(self) -> Hop:
        return self.hops[-1]

    @classmethod
    def resolve(
        cls, r: Resolver, *, target: Hop | None = None, region: tuple[str, str] | None = None
    ) -> IdentitySettings:
        """From the variables; `target` and `region` replace XACCT_ROLE_ARN and XACCT_REGION
        for one entry of XACCT_DESTINATIONS."""
        env = r.env
        region_value, region_origin = region or resolve_region(r)
        if target is None:
            role = validate.role_arn(*r.required("role_arn", "the ARN of the role to assume"))
            target = Hop(
                role=role,
                external_id=_external_id(r.get("external_id")),
                origin=r.option("role_arn").env,
                external_id_origin=r.option("external_id").env,
            )
        hops = (*resolve_chain(r), target)
        web = resolve_web_identity(r)
        roles = [*(h.role for h in hops), *([web.role] if web else [])]
        for arn in roles:
            validate.same_partition(arn, region_value, region_origin)
        session = r.get("session_name")
        duration = r.get("duration_seconds")
        allowed = r.get("allowed_account_ids")
        return cls(
            web_identity=web,
            hops=hops,
            region=region_value,
            session_name=(
                validate.session_name(*session)
                if session
                else validate.derive_session_name(
                    env.get("CI_PROJECT_ID", ""),
                    env.get("CI_PIPELINE_ID", ""),
                    env.get("CI_JOB_ID", ""),
                )
            ),
            duration_seconds=resolve_duration(duration, hops, web),
            session_tags=session_tags(env) if r.boolean("session_tags") else (),
            allowed_account_ids=validate.account_ids(*allowed) if allowed else None,
        )

    def summary(self) -> list[tuple[str, str]]:
        """For the job log; External IDs show only whether they are set."""
        lines = []
        if self.web_identity:
            lines.append(
                ("web identity", f"{self.web_identity.role} (token from "
                 f"{self.web_identity.token_variable})")
            )  # fmt: skip
        else:
            lines.append(("base identity", "the runner's own (boto3 default chain)"))
        for number, hop in enumerate(self.hops[:-1], start=1):
            lines.append(
                (f"chain hop {number}", f"{hop.role} (External ID {_said(hop.external_id)})")
            )
        lines += [
            ("role", str(self.target.role)),
            ("external id", _said(self.target.external_id)),
            ("region", self.region),
            ("session name", self.session_name),
        ]
        if self.session_tags:
            lines.append(("session tags", ", ".join(k for k, _ in self.session_tags)))
        return lines


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """One place to push: the role to reach it, its ECR repository, and its registry endpoint."""

    identity: IdentitySettings
    repository: str
    registry_endpoint: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PushSettings:
    destinations: tuple[Destination, ...]
    source: SourceSpec
    source_origin: str
    tags: tuple[str, ...]
    create_repository: bool
    platforms: tuple[Platform, ...]  # empty: every platform, the index kept byte for byte
    platforms_origin: str
    engine: EngineOptions
    dotenv: Path | None
    annotations: Path | None = None  # GitLab's annotations report (links on the job page)
    debug: bool

    OPTIONS = (
        *IDENTITY_OPTIONS, *REGISTRY_OPTIONS, *PUSH_OPTIONS, *ENGINE_OPTIONS, *COMMON_OPTIONS
    )  # fmt: skip

    @property
    def identity(self) -> IdentitySettings:
        return self.destinations[0].identity

    @property
    def repository(self) -> str:
        return self.destinations[0].repository

    @property
    def registry_endpoint(self) -> str | None:
        return self.destinations[0].registry_endpoint

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], flags: Mapping[str, object] | None = None
    ) -> PushSettings:
        check_unknown_variables(env)
        r = Resolver(env, flags or {}, cls.OPTIONS)
        source, source_origin = resolve_source(r)
        platforms, platforms_origin = platform_list(r)
        return cls(
            destinations=_destinations(r),
            source=source,
            source_origin=source_origin,
            tags=resolve_tags(r),
            create_repository=r.boolean("create_repository"),
            platforms=platforms,
            platforms_origin=platforms_origin,
            engine=engine_options(r),
            dotenv=resolve_report(r, "dotenv"),
            annotations=resolve_report(r, "annotations"),
            debug=r.boolean("debug"),
        )

    def summary(self) -> list[tuple[str, str]]:
        lines = [*self.identity.summary()]
        for number, destination in enumerate(self.destinations, start=1):
            where = f"{destination.identity.target.role} {destination.identity.region} " + (
                destination.repository
            )
            lines.append((f"destination {number}", where))
        return [
            *lines,
            ("source", str(self.source)),
            ("platforms", ", ".join(map(str, self.platforms)) or "all"),
            ("tags", ", ".join(self.tags)),
            ("registry endpoint", self.registry_endpoint or "as ECR names it"),
            ("create repository", str(self.create_repository).lower()),
            ("parallel uploads", str(self.engine.parallelism)),
        ]


@dataclass(frozen=True, slots=True)
class DestinationEntry:
    """One XACCT_DESTINATIONS entry (or --destination), split and checked, not resolved."""

    origin: str  # "XACCT_DESTINATIONS entry 2", for messages
    role_arn: RoleArn
    region: str
    repository: str
    external_id: Secret | None  # the entry's own, else None (XACCT_EXTERNAL_ID applies)
    registry_endpoint: str | None  # the entry's own, else None

    def named(self, field: str) -> str:
        """How messages name one of the entry's fields: "the region in ... entry 2"."""
        return f"the {field} in {self.origin}"


def destination_entries(r: Resolver) -> tuple[DestinationEntry, ...]:
    """XACCT_DESTINATIONS (or --destination) entries; () when neither is given."""
    entries: list[tuple[str, str]] = []
    flag = r.flag("destinations")
    listed = r.get("destinations")
    if isinstance(flag, list) and flag:
        entries = [(str(e), f"--destination {n}") for n, e in enumerate(flag, start=1)]
    elif listed:
        value, origin = listed
        items = [i.strip() for i in re.split(r"[\n,]", value) if i.strip()]
        if not items:
            raise ConfigError(
                f"{origin}: lists no destination; give ROLE_ARN|REGION|REPOSITORY entries, one "
                "per line or separated by commas"
            )
        entries = [(item, f"{origin} entry {n}") for n, item in enumerate(items, start=1)]
    return tuple(_entry(entry, origin) for entry, origin in entries)


def _entry(entry: str, origin: str) -> DestinationEntry:
    fields = [f.strip() for f in entry.split("|")]
    if not 3 <= len(fields) <= 5:
        raise ConfigError(f"{origin}: expected {DESTINATION_FORM}, got {len(fields)} fields")
    arn, region, name = fields[:3]
    external = fields[3] if len(fields) > 3 else ""
    endpoint = fields[4] if len(fields) > 4 else ""
    return DestinationEntry(
        origin=origin,
        role_arn=validate.role_arn(arn, origin),
        region=validate.region(region, origin),
        repository=validate.repository(name, origin),
        external_id=_external_id((external, origin)) if external else None,
        registry_endpoint=validate.registry_endpoint(endpoint, origin) if endpoint else None,
    )


def _destinations(r: Resolver) -> tuple[Destination, ...]:
    """XACCT_DESTINATIONS entries, else the one destination of XACCT_ROLE_ARN and friends."""
    entries = destination_entries(r)
    if not entries:
        return (variables_destination(r),)
    return tuple(entry_destination(entry, r) for entry in entries)


def variables_destination(r: Resolver) -> Destination:
    """The one destination of XACCT_ROLE_ARN, XACCT_REGION, XACCT_REPOSITORY and friends."""
    return Destination(
        identity=IdentitySettings.resolve(r),
        repository=repository(r),
        registry_endpoint=registry_endpoint(r),
    )


def entry_destination(entry: DestinationEntry, r: Resolver) -> Destination:
    """One entry as the destination push uses (and the doctor diagnoses)."""
    return Destination(
        identity=entry_identity(entry, r),
        repository=entry.repository,
        registry_endpoint=entry.registry_endpoint or registry_endpoint(r),
    )


def entry_identity(entry: DestinationEntry, r: Resolver) -> IdentitySettings:
    """The identity settings of one entry: its role and region in place of XACCT_ROLE_ARN and
    XACCT_REGION, its own External ID or else XACCT_EXTERNAL_ID, each named as the entry's."""
    target = Hop(
        role=entry.role_arn,
        external_id=entry.external_id or _external_id(r.get("external_id")),
        origin=entry.origin,
        external_id_origin=entry.named("External ID") if entry.external_id else "XACCT_EXTERNAL_ID",
    )
    return IdentitySettings.resolve(r, target=target, region=(entry.region, entry.origin))


def entry_values(entry: DestinationEntry) -> dict[str, tuple[str, str]]:
    """The entry's fields as the settings they replace (for `Resolver.pinned`), each with the
    origin messages name: the entry, not a variable the job does not set."""
    values = {
        "role_arn": (str(entry.role_arn), entry.origin),
        "region": (entry.region, entry.origin),
        "repository": (entry.repository, entry.origin),
    }
    if entry.external_id:
        values["external_id"] = (entry.external_id.reveal(), entry.named("External ID"))
    if entry.registry_endpoint:
        values["registry_endpoint"] = (entry.registry_endpoint, entry.named("endpoint"))
    return values


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginSettings:
    """`gitlab-xacct login`: where the Docker config goes and which registries go in it."""

    identity: IdentitySettings
    registry_endpoint: str | None
    docker_config: Path
    registries: tuple[str, ...]  # extra ECR registries: 12-digit account ids or ECR host names
    debug: bool

    OPTIONS = (*IDENTITY_OPTIONS, *REGISTRY_OPTIONS, *LOGIN_OPTIONS, *COMMON_OPTIONS)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], flags: Mapping[str, object] | None = None
    ) -> LoginSettings:
        check_unknown_variables(env)
        r = Resolver(env, flags or {}, cls.OPTIONS)
        found = r.get("docker_config")
        if found:
            docker_config = Path(found[0])
        elif env.get("DOCKER_CONFIG", "").strip():
            docker_config = Path(env["DOCKER_CONFIG"]) / "config.json"
        else:
            docker_config = Path(env.get("HOME") or Path.home()) / ".docker" / "config.json"
        listed = r.list("login_registries")
        registries = [validate.ecr_registry(v, listed[1]) for v in listed[0]] if listed else []
        return cls(
            identity=IdentitySettings.resolve(r),
            registry_endpoint=registry_endpoint(r),
            docker_config=docker_config,
            registries=tuple(dict.fromkeys(registries)),
            debug=r.boolean("debug"),
        )


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
        check_unknown_variables(env)
        r = Resolver(env, flags or {}, cls.OPTIONS)
        chosen, origin = r.get("format") or ("env", "")
        if chosen not in CREDENTIAL_FORMATS:
            raise ConfigError(
                f"{origin}: {chosen!r} is not a format; use one of {', '.join(CREDENTIAL_FORMATS)}"
            )
        output = r.get("output")
        profile, profile_origin = r.get("profile") or ("xacct", "")
        if not re.fullmatch(r"[\w.-]{1,64}", profile):
            raise ConfigError(
                f"{profile_origin}: {profile!r} is not a usable AWS profile name (1-64 letters, "
                "digits, '_', '.', '-')"
            )
        home = Path(env.get("HOME") or Path.home())
        config = r.get("config_file") or r.fallback("AWS_CONFIG_FILE")
        creds = r.get("credentials_file") or r.fallback("AWS_SHARED_CREDENTIALS_FILE")
        return cls(
            identity=IdentitySettings.resolve(r),
            format=chosen,
            output=_report_path(*output) if output else None,
            allow_log_output=r.boolean("allow_log_output"),
            profile=profile,
            config_file=Path(config[0]) if config else home / ".aws" / "config",
            credentials_file=Path(creds[0]) if creds else home / ".aws" / "credentials",
            debug=r.boolean("debug"),
        )


def registry_endpoint(r: Resolver) -> str | None:
    endpoint = r.get("registry_endpoint")
    return validate.registry_endpoint(*endpoint) if endpoint else None


def session_tags(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """GitLab's ids as session tags, values cleaned to AWS's characters and 256-char limit."""
    tags = []
    for key, variable in SESSION_TAG_SOURCES:
        value = _TAG_VALUE_BAD.sub("_", env.get(variable, ""))[:256]
        if value:
            tags.append((key, value))
    return tuple(tags)


def resolve_duration(
    found: tuple[str, str] | None, hops: tuple[Hop, ...], web: WebIdentity | None
) -> int:
    """XACCT_DURATION_SECONDS; over an hour is refused here when a hop is known to be assumed
    with role credentials (a chain, or after OIDC): AWS caps role chaining at one hour. A base
    identity that is itself a role is found out only at run time (aws/identity.py), by the
    same rule."""
    if found is None:
        return 3600
    seconds, origin = validate.duration(*found), found[1]
    check_chained_duration(
        seconds, hops, 1 if web else 2, origin=origin,
        label=lambda number: f"hop {number} of {len(hops)} ({hops[number - 1].origin})",
    )  # fmt: skip
    return seconds


def check_chained_duration(
    seconds: int,
    hops: tuple[Hop, ...],
    first_chained: int,
    *,
    origin: str,
    label: Callable[[int], str],
    setting: str = "it",
) -> None:
    """The role-chaining rule, the one copy: hop `first_chained` onwards are assumed with role
    credentials (after OIDC, after a chain's first hop, or from a base identity that is itself
    a role session), and AWS caps such a session at CHAINED_MAX_SECONDS. Refused before any
    AssumeRole, naming the hop by `label(number)` and the setting to lower."""
    if seconds <= CHAINED_MAX_SECONDS or first_chained > len(hops):
        return
    raise ConfigError(
        f"{origin}: {seconds} s is more than AWS allows at {label(first_chained)}: it is assumed "
        f"with role credentials (role chaining), which AWS caps at {CHAINED_MAX_SECONDS} s; set "
        f"{setting} to {CHAINED_MAX_SECONDS} or less"
    )


def _said(external_id: Secret | None) -> str:
    return f"set ({len(external_id)} characters)" if external_id else "not set"


def resolve_region(r: Resolver) -> tuple[str, str]:
    found = r.get("region") or r.fallback("AWS_REGION", "AWS_DEFAULT_REGION")
    if found is None:
        raise ConfigError(
            "XACCT_REGION (--region): no region set; give the region of the target ECR "
            "registry (AWS_REGION and AWS_DEFAULT_REGION are unset too)"
        )
    return validate.region(*found), found[1]


def _external_id(found: tuple[str, str] | None) -> Secret | None:
    return Secret(validate.external_id(*found)) if found else None


def resolve_chain(r: Resolver) -> list[Hop]:
    found = r.get("role_chain")
    if found is None:
        return []
    value, origin = found
    hops = []
    for number, item in enumerate((i.strip() for i in value.split(",")), start=1):
        if not item:
            raise ConfigError(f"{origin}: hop {number} is empty; separate role ARNs by commas")
        arn, _, external = item.partition("|")
        where = f"{origin} hop {number}"
        hops.append(
            Hop(
                role=validate.role_arn(arn.strip(), where),
                external_id=_external_id((external.strip(), where)) if external.strip() else None,
                origin=where,
                external_id_origin=f"the External ID after '|' in {where}",
            )
        )
    return hops


def resolve_web_identity(r: Resolver) -> WebIdentity | None:
    found = r.get("web_identity_role_arn")
    if found is None:
        return None
    role = validate.role_arn(*found)
    variable_found = r.get("id_token_variable")
    variable = variable_found[0].strip() if variable_found else DEFAULT_ID_TOKEN_VARIABLE
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        raise ConfigError(
            f"XACCT_ID_TOKEN_VARIABLE: {variable!r} is not a variable name (letters, digits and "
            "'_', not starting with a digit)"
        )
    token = r.env.get(variable, "").strip()
    if not token:
        raise ConfigError(
            f"{variable}: empty, but {found[1]} asks for GitLab OIDC; add to the job "
            f"`id_tokens: {{{variable}: {{aud: sts.amazonaws.com}}}}` (the audience your OIDC "
            "provider in AWS expects)"
        )
    return WebIdentity(role=role, token=Secret(token), token_variable=variable)


def resolve_source(r: Resolver) -> tuple[SourceSpec, str]:
    """XACCT_SOURCE (--source), parsed (not opened), and where it was set."""
    value, origin = r.required("source", "the image to push")
    try:
        return parse_source(value), origin
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def resolve_report(r: Resolver, dest: str) -> Path | None:
    """A report's path (XACCT_DOTENV, XACCT_ANNOTATIONS): a file in an existing folder."""
    found = r.get(dest)
    return _report_path(*found) if found else None


def resolve_tags(r: Resolver) -> tuple[str, ...]:
    explicit = r.list("tags")
    pairs: list[tuple[str, str]]
    if explicit:
        values, origin = explicit
        if not values:
            raise ConfigError(f"{origin}: lists no tag; give tags separated by commas or spaces")
        pairs = [(v, origin) for v in values]
    else:
        pairs = [(r.env[n], n) for n in ("CI_COMMIT_SHORT_SHA", "CI_COMMIT_TAG") if r.env.get(n)]
    if not pairs:
        raise ConfigError(
            "XACCT_TAGS (--tag): no tags set and CI_COMMIT_SHORT_SHA is unset; "
            "give at least one tag"
        )
    tags = [
        _defaulted(validate.tag, value, origin, "XACCT_TAGS (--tag)") for value, origin in pairs
    ]
    return tuple(dict.fromkeys(tags))  # keep order, drop repeats


def repository(r: Resolver) -> str:
    """XACCT_REPOSITORY, else the GitLab project's path lower-cased (ECR names are)."""
    found = r.get("repository")
    if found is None and r.env.get("CI_PROJECT_PATH"):
        found = (r.env["CI_PROJECT_PATH"].lower(), "CI_PROJECT_PATH (lower-cased)")
    if found is None:
        raise ConfigError(
            "XACCT_REPOSITORY (--repository): no repository set and CI_PROJECT_PATH is "
            "unset; give the ECR repository name, for example team/app"
        )
    return _defaulted(validate.repository, *found, "XACCT_REPOSITORY (--repository)")


def _defaulted(check: Callable[[str, str], str], value: str, origin: str, override: str) -> str:
    """`check(value, origin)`; a value GitLab chose (a CI_* default) also names the override."""
    try:
        return check(value, origin)
    except ConfigError as exc:
        if not origin.startswith("CI_"):
            raise
        raise ConfigError(f"{exc}; or set {override}") from None


def _report_path(value: str, origin: str) -> Path:
    path = Path(value)
    try:
        is_dir, folder_exists = path.is_dir(), path.parent.is_dir()
    except OSError as exc:  # a name too long for the file system, a folder that is a file
        raise ConfigError(f"{origin}: cannot use {value!r} as a path: {exc.strerror}") from None
    if is_dir:
        raise ConfigError(f"{origin}: {value!r} is a directory; give a file path")
    if not folder_exists:
        raise ConfigError(
            f"{origin}: the folder {str(path.parent)!r} does not exist; create it or choose "
            "another path"
        )
    return path
