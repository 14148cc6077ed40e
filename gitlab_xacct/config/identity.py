"""How the job reaches the target role, shared by every command that assumes it: the hops
(XACCT_ROLE_CHAIN, then XACCT_ROLE_ARN with its External ID), GitLab OIDC, the region, the
session's name, duration and tags; and the role-chaining rule, the one copy."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gitlab_xacct.config import validate
from gitlab_xacct.config.options import (
    DEFAULT_ID_TOKEN_VARIABLE,
)
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.config.validate import RoleArn
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.secrets import Secret

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
                external_id=external_id_secret(r.get("external_id")),
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


def region_given(r: Resolver) -> tuple[str, str] | None:
    """The one reading of the region, with its origin: XACCT_REGION (--region), else
    AWS_REGION, else AWS_DEFAULT_REGION. Every AWS client takes its region from here; a command
    without a --region (bootstrap build-policy, an admin's) reads only the AWS variables."""
    given = r.get("region") if "region" in r else None
    return given or r.fallback("AWS_REGION", "AWS_DEFAULT_REGION")


def resolve_region(r: Resolver) -> tuple[str, str]:
    found = region_given(r)
    if found is None:
        raise ConfigError(
            "XACCT_REGION (--region): no region set; give the region of the target ECR "
            "registry (AWS_REGION and AWS_DEFAULT_REGION are unset too)"
        )
    return validate.region(*found), found[1]


def external_id_secret(found: tuple[str, str] | None) -> Secret | None:
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
                external_id=external_id_secret((external.strip(), where))
                if external.strip()
                else None,
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
