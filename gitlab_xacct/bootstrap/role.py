"""`bootstrap role` as a library: read the role, plan what the flags describe, compare, apply.

The role belongs to gitlab-xacct: its trust policy is rewritten whole, and its inline policy
`INLINE_POLICY` too. Managed policies attached by someone else are left alone (and mentioned).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from gitlab_xacct.aws import iam as policies
from gitlab_xacct.bootstrap import compare, external_id
from gitlab_xacct.bootstrap.aws import Admin, code, failure, iam_document
from gitlab_xacct.bootstrap.documents import RoleDocuments, role_documents
from gitlab_xacct.bootstrap.settings import RoleSettings
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.secrets import Secret

log = logging.getLogger(__name__)

INLINE_POLICY = "gitlab-xacct-ecr-push"
DESCRIPTION = "gitlab-xacct: GitLab jobs of the BUILD account push images to ECR (bootstrap role)"
PLACEHOLDER = "<value of XACCT_EXTERNAL_ID>"

IdSource = Literal["given", "kept", "generated"]


@dataclass(frozen=True, slots=True)
class RoleState:
    """What IAM holds for the role."""

    arn: str
    trust: policies.PolicyDocument
    inline: policies.PolicyDocument | None  # INLINE_POLICY
    attached: tuple[str, ...]  # managed policy ARNs
    other_inline: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the flags describe, with the External ID the role will have (never printed)."""

    role_name: str
    role_arn: str
    trust: policies.PolicyDocument = field(repr=False)
    printable_trust: policies.PolicyDocument  # the same with PLACEHOLDER as External ID
    permissions: policies.PolicyDocument | None  # inline policy, or None with managed policies
    managed: tuple[str, ...]  # ARNs
    external_id: Secret = field(repr=False)
    id_source: IdSource


def read(admin: Admin, name: str) -> RoleState | None:
    """The role's trust, our inline policy and its attachments; None when it does not exist."""
    client = admin.iam
    try:
        role = client.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if code(exc) == "NoSuchEntity":
            return None
        raise failure(exc, "iam:GetRole", admin) from None
    except BotoCoreError as exc:
        raise failure(exc, "iam:GetRole", admin) from None
    try:
        # Paginated: a role may carry more policies than one page holds.
        names = [
            policy
            for page in client.get_paginator("list_role_policies").paginate(RoleName=name)
            for policy in page["PolicyNames"]
        ]
        inline = None
        if INLINE_POLICY in names:
            inline = iam_document(
                client.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY)["PolicyDocument"],
                f"the inline policy {INLINE_POLICY} of role {name}",
            )
        attached = [
            policy
            for page in client.get_paginator("list_attached_role_policies").paginate(RoleName=name)
            for policy in page["AttachedPolicies"]
        ]
    except (ClientError, BotoCoreError) as exc:
        raise failure(exc, "iam:ListRolePolicies/GetRolePolicy", admin) from None
    return RoleState(
        arn=role["Arn"],
        trust=iam_document(role.get("AssumeRolePolicyDocument", {}), f"the trust of role {name}"),
        inline=inline,
        attached=tuple(sorted(p["PolicyArn"] for p in attached if "PolicyArn" in p)),
        other_inline=tuple(sorted(n for n in names if n != INLINE_POLICY)),
    )


def plan(settings: RoleSettings, admin: Admin, state: RoleState | None) -> Plan:
    secret, source = _choose_external_id(settings, state)
    if settings.oidc is not None and settings.oidc.account != admin.account:
        raise ConfigError(
            f"--gitlab-oidc-provider: the provider is in account {settings.oidc.account}, "
            f"but the role is created in {admin.account}; a role can only trust an IAM OIDC "
            "provider of its own account (create one there for your GitLab host)"
        )

    def filled(value: str) -> RoleDocuments:
        return role_documents(
            settings, partition=admin.partition, account=admin.account, external_id=value
        )

    documents = filled(secret.reveal())
    role_arn = state.arn if state else f"arn:{admin.partition}:iam::{admin.account}:role/"
    return Plan(
        role_name=settings.role_name,
        role_arn=role_arn if state else role_arn + settings.role_name,
        trust=documents.trust,
        printable_trust=filled(PLACEHOLDER).trust,
        permissions=documents.permissions,
        managed=documents.managed,
        external_id=secret,
        id_source=source,
    )


def _choose_external_id(settings: RoleSettings, state: RoleState | None) -> tuple[Secret, IdSource]:
    """The given one; else the role's current one (no silent rotation); else a new one."""
    if settings.external_id is not None:
        return settings.external_id, "given"
    current = compare.external_ids(state.trust) if state else set()
    if len(current) > 1:
        raise ConfigError(
            f"--external-id: the role's trust policy accepts {len(current)} External IDs; give "
            "the one to keep with --external-id (or XACCT_EXTERNAL_ID)"
        )
    if current:
        return Secret(current.pop()), "kept"
    return Secret(external_id.generate()), "generated"


def differences(plan: Plan, state: RoleState | None) -> list[str]:
    """Each way the role differs from the plan, one line each; no External ID value in any."""
    if state is None:
        return [f"role: {plan.role_arn} does not exist"]
    lines = compare.trust_differences(plan.trust, state.trust)
    if not compare.external_ids(state.trust):
        lines.append("trust: no sts:ExternalId condition; the role can be assumed without one")
    if plan.permissions is not None:
        if state.inline is None:
            lines.append(f"permissions: the inline policy {INLINE_POLICY} is missing")
        else:
            lines += compare.permission_differences(plan.permissions, state.inline)
    elif state.inline is not None:
        lines.append(
            f"permissions: the inline policy {INLINE_POLICY} is on the role; --managed-policy "
            "replaces it"
        )
    lines += [
        f"permissions: the managed policy {arn} is not attached"
        for arn in plan.managed
        if arn not in state.attached
    ]
    return lines


def notes(plan: Plan, state: RoleState | None) -> list[str]:
    """What the role also has that bootstrap does not manage (it stays; worth a look)."""
    if state is None:
        return []
    found = [
        f"the role also has the managed policy {arn} (not managed by bootstrap; detach it if "
        "nothing else needs it)"
        for arn in state.attached
        if arn not in plan.managed
    ]
    found += [
        f"the role also has the inline policy {name} (not managed by bootstrap)"
        for name in state.other_inline
    ]
    return found


def apply(admin: Admin, plan: Plan, state: RoleState | None) -> list[str]:
    """Make IAM match the plan; returns what was done (empty: nothing to do)."""
    client = admin.iam
    done: list[str] = []
    trust_json = json.dumps(plan.trust)
    if state is None:
        _call(
            admin,
            "iam:CreateRole",
            lambda: client.create_role(
                RoleName=plan.role_name,
                AssumeRolePolicyDocument=trust_json,
                Description=DESCRIPTION,
            ),
        )
        done.append("created the role with its trust policy")
    elif not compare.same(plan.trust, state.trust):
        _call(
            admin,
            "iam:UpdateAssumeRolePolicy",
            lambda: client.update_assume_role_policy(
                RoleName=plan.role_name, PolicyDocument=trust_json
            ),
        )
        done.append("replaced the trust policy")

    inline = state.inline if state else None
    if plan.permissions is not None and not compare.same(plan.permissions, inline):
        text = json.dumps(plan.permissions)
        _call(
            admin,
            "iam:PutRolePolicy",
            lambda: client.put_role_policy(
                RoleName=plan.role_name, PolicyName=INLINE_POLICY, PolicyDocument=text
            ),
        )
        done.append(f"{'replaced' if inline else 'put'} the inline policy {INLINE_POLICY}")
    if plan.permissions is None and inline is not None:
        _call(
            admin,
            "iam:DeleteRolePolicy",
            lambda: client.delete_role_policy(RoleName=plan.role_name, PolicyName=INLINE_POLICY),
        )
        done.append(f"deleted the inline policy {INLINE_POLICY} (replaced by --managed-policy)")
    attached = state.attached if state else ()
    for arn in plan.managed:
        if arn not in attached:
            _attach(admin, plan.role_name, arn)
            done.append(f"attached the managed policy {arn}")
    return done


def _attach(admin: Admin, role_name: str, arn: str) -> None:
    try:
        admin.iam.attach_role_policy(RoleName=role_name, PolicyArn=arn)
    except ClientError as exc:
        if code(exc) in ("NoSuchEntity", "InvalidInput"):
            raise ConfigError(
                f"--managed-policy: IAM has no policy {arn}; check its name (AWS managed "
                "policies: AmazonEC2ContainerRegistryPowerUser...) or give its ARN"
            ) from None
        raise failure(exc, "iam:AttachRolePolicy", admin) from None
    except BotoCoreError as exc:
        raise failure(exc, "iam:AttachRolePolicy", admin) from None


def _call(admin: Admin, action: str, call: Any) -> None:
    try:
        call()
    except (ClientError, BotoCoreError) as exc:
        raise failure(exc, action, admin) from None
