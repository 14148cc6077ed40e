"""`bootstrap build-policy` as a library: the runner's identity policy, printed or put inline."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Literal

from botocore.exceptions import BotoCoreError, ClientError

from gitlab_xacct.aws import iam as policies
from gitlab_xacct.bootstrap import compare
from gitlab_xacct.bootstrap.aws import Admin, code, failure, iam_document
from gitlab_xacct.bootstrap.settings import BuildPolicySettings
from gitlab_xacct.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Attached:
    role_name: str
    policy_name: str
    outcome: Literal["created", "updated", "unchanged"]

    def line(self) -> str:
        return f"inline policy {self.policy_name} on role {self.role_name}: {self.outcome}"


def document(settings: BuildPolicySettings) -> policies.PolicyDocument:
    return policies.build_policy(
        role_arns=[str(settings.role_arn)], tag_session=settings.tag_session
    )


def policy_name(settings: BuildPolicySettings) -> str:
    """One inline policy per target role: a runner pushing to several accounts keeps them all."""
    role = settings.role_arn
    return f"gitlab-xacct-assume-{role.account}-{role.name}"[:128]


def attach(admin: Admin, settings: BuildPolicySettings, role_name: str) -> Attached:
    """Put the policy inline on `role_name`, idempotently (compared grant by grant)."""
    client = admin.iam
    name = policy_name(settings)
    wanted = document(settings)
    if settings.role_arn.account == admin.account:
        log.warning(
            "the target role %s is in this account (%s): same-account pushes need no "
            "cross-account trust, but this works too",
            settings.role_arn,
            admin.account,
        )
    try:
        client.get_role(RoleName=role_name)
    except ClientError as exc:
        if code(exc) == "NoSuchEntity":
            raise ConfigError(
                f"--attach-to-role: account {admin.account} has no role named {role_name!r} "
                f"(you are {admin.arn}); give the name of the runner's role in BUILD"
            ) from None
        raise failure(exc, "iam:GetRole", admin) from None
    except BotoCoreError as exc:
        raise failure(exc, "iam:GetRole", admin) from None
    current = None
    try:
        current = iam_document(
            client.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"],
            f"the inline policy {name} of role {role_name}",
        )
    except ClientError as exc:
        if code(exc) != "NoSuchEntity":
            raise failure(exc, "iam:GetRolePolicy", admin) from None
    except BotoCoreError as exc:
        raise failure(exc, "iam:GetRolePolicy", admin) from None
    if current is not None and compare.same(wanted, current):
        return Attached(role_name, name, "unchanged")
    try:
        client.put_role_policy(
            RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps(wanted)
        )
    except (ClientError, BotoCoreError) as exc:
        raise failure(exc, "iam:PutRolePolicy", admin) from None
    return Attached(role_name, name, "updated" if current is not None else "created")
