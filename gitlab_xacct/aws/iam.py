"""The IAM policy documents both accounts need, generated from one place.

`bootstrap` writes them, `doctor` prints them filled in, docs/identity.md shows them. The push
actions are what `push` really calls: the ECR API (`aws/ecr.py`) and the registry HTTP API,
which ECR authorises per request as the actions named below.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PolicyDocument = dict[str, Any]

VERSION = "2012-10-17"

# Statement ids: `bootstrap role --check` names a difference by them.
SID_ASSUME = "GitLabXacctAssumeRole"
SID_OIDC = "GitLabXacctOidc"
SID_TOKEN = "GitLabXacctEcrToken"  # noqa: S105 - a statement id, not a token
SID_PUSH = "GitLabXacctEcrPush"
SID_CREATE = "GitLabXacctEcrCreate"
SID_BUILD = "GitLabXacctAssumeTarget"

ASSUME = "sts:AssumeRole"
TAG_SESSION = "sts:TagSession"
WEB_IDENTITY = "sts:AssumeRoleWithWebIdentity"
EXTERNAL_ID_KEY = "sts:ExternalId"

TOKEN_ACTION = "ecr:GetAuthorizationToken"  # noqa: S105 - an action name
# Per repository, what a push does: DescribeRepositories (ensure_repository, immutability),
# HEAD blob (BatchCheckLayerAvailability), POST/PATCH/PUT upload (Initiate/Upload/Complete),
# HEAD/GET manifest for the tag plan (BatchGetImage), PUT manifest (PutImage), and blob reads
# for cross-repository mounts and docker:// sources in the same registry
# (GetDownloadUrlForLayer). DescribeImages lets a later `doctor` or a person check the result.
PUSH_ACTIONS: tuple[str, ...] = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
# XACCT_CREATE_REPOSITORY: CreateRepository with scanOnPush in the same call and no tags, so
# neither ecr:TagResource nor ecr:PutImageScanningConfiguration is needed.
CREATE_ACTIONS: tuple[str, ...] = ("ecr:CreateRepository",)


@dataclass(frozen=True, slots=True)
class OidcTrust:
    """GitLab ID tokens trusted through an IAM OIDC provider of the role's account."""

    provider_arn: str  # arn:aws:iam::ACCOUNT:oidc-provider/gitlab.example.com
    audience: str  # the id_tokens aud, e.g. https://gitlab.example.com
    project_path: str  # group/project; the sub condition is project_path:group/project:*

    @property
    def host(self) -> str:
        """The provider's URL without scheme: IAM's prefix of the token's condition keys."""
        return self.provider_arn.split(":oidc-provider/", 1)[-1]

    @property
    def subject_pattern(self) -> str:
        # GitLab's sub: project_path:GROUP/PROJECT:ref_type:branch|tag:ref:NAME
        return f"project_path:{self.project_path}:*"


def document(*statements: dict[str, Any]) -> PolicyDocument:
    return {"Version": VERSION, "Statement": list(statements)}


def trust_policy(
    *,
    principal_arns: Sequence[str],
    external_id: str,
    tag_session: bool = False,
    oidc: OidcTrust | None = None,
) -> PolicyDocument:
    """Trust of the OURTHING role: the BUILD principals with the External ID; GitLab OIDC too.

    `external_id` is written as given: callers that print the document pass a placeholder.
    """
    if not principal_arns:
        raise ValueError("a trust policy needs at least one principal")
    actions = [ASSUME, TAG_SESSION] if tag_session else [ASSUME]
    statements: list[dict[str, Any]] = [
        {
            "Sid": SID_ASSUME,
            "Effect": "Allow",
            "Principal": {"AWS": sorted(set(principal_arns))},
            "Action": actions,
            # Also evaluated for sts:TagSession: AWS puts the request's ExternalId in its context.
            "Condition": {"StringEquals": {EXTERNAL_ID_KEY: external_id}},
        }
    ]
    if oidc is not None:
        statements.append(
            {
                "Sid": SID_OIDC,
                "Effect": "Allow",
                "Principal": {"Federated": oidc.provider_arn},
                "Action": WEB_IDENTITY,
                "Condition": {
                    "StringEquals": {f"{oidc.host}:aud": oidc.audience},
                    "StringLike": {f"{oidc.host}:sub": oidc.subject_pattern},
                },
            }
        )
    return document(*statements)


def repository_arn(partition: str, region: str, account_id: str, name: str) -> str:
    """ARN of an ECR repository; `name` may hold IAM wildcards (team/*)."""
    return f"arn:{partition}:ecr:{region}:{account_id}:repository/{name}"


def push_policy(*, repository_arns: Sequence[str], allow_create: bool) -> PolicyDocument:
    """Least privilege for `gitlab-xacct push` (and `login`) into these repositories."""
    if not repository_arns:
        raise ValueError("a push policy needs at least one repository ARN")
    resources = sorted(set(repository_arns))
    statements: list[dict[str, Any]] = [
        # GetAuthorizationToken has no resource-level permissions: "*" is the only form.
        {"Sid": SID_TOKEN, "Effect": "Allow", "Action": TOKEN_ACTION, "Resource": "*"},
        {"Sid": SID_PUSH, "Effect": "Allow", "Action": list(PUSH_ACTIONS), "Resource": resources},
    ]
    if allow_create:
        statements.append(
            {
                "Sid": SID_CREATE,
                "Effect": "Allow",
                "Action": list(CREATE_ACTIONS),
                "Resource": resources,
            }
        )
    return document(*statements)


def build_policy(*, role_arns: Sequence[str], tag_session: bool = False) -> PolicyDocument:
    """The BUILD side's identity policy (the runner's role): assume the OURTHING role(s)."""
    if not role_arns:
        raise ValueError("a build policy needs at least one role ARN")
    return document(
        {
            "Sid": SID_BUILD,
            "Effect": "Allow",
            "Action": [ASSUME, TAG_SESSION] if tag_session else [ASSUME],
            "Resource": sorted(set(role_arns)),
        }
    )


def to_json(policy: PolicyDocument) -> str:
    """The form printed to people and sent to IAM (stable key order, readable)."""
    return json.dumps(policy, indent=2)
