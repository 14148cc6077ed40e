"""Does the caller's own identity policy allow an action on a resource? Read, not simulated.

AWS answers the same AccessDenied to AssumeRole whether the caller's identity policy (BUILD) or
the role's trust policy (OURTHING) refused, and whether the role exists at all. What the caller
can see on its own side is its own policies, when it may read them (iam:Get*/List* on itself,
as docs/doctor.md suggests granting). This evaluates their Allow and Deny statements on Action
and Resource only: conditions, permissions boundaries and SCPs are not evaluated, so "allowed"
means "some statement grants it", while "not allowed" (no statement grants it) is a finding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import unquote

from boto3.session import Session
from botocore.exceptions import BotoCoreError, ClientError

from gitlab_xacct.aws.credentials import client
from gitlab_xacct.aws.explain import principal_for
from gitlab_xacct.secrets import mask

_USER = re.compile(r"arn:[\w-]+:iam::\d{12}:user/(?:.*/)?(?P<name>[^/]+)")
_ROLE = re.compile(r"arn:[\w-]+:iam::\d{12}:role/(?:.*/)?(?P<name>[^/]+)")


class Verdict(Enum):
    ALLOWED = "allowed"  # an Allow statement matches (conditions and boundaries not evaluated)
    NOT_ALLOWED = "not allowed"  # no Allow matches, or a Deny without conditions does
    UNKNOWN = "unknown"  # the policies could not be read


@dataclass(frozen=True, slots=True)
class Reading:
    """A verdict, and for UNKNOWN why: which IAM call failed and what AWS answered."""

    verdict: Verdict
    error: str = ""


def verdict(session: Session, caller_arn: str, action: str, resource: str, region: str) -> Reading:
    """`region` is the settings' region: IAM is global, but its endpoint and signing follow the
    region's partition (and without one botocore cannot sign at all behind an endpoint)."""
    principal = principal_for(caller_arn)
    try:
        documents = list(_documents(session, principal, region))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        said = mask(str(error.get("Message", "")))
        return Reading(
            Verdict.UNKNOWN,
            f"iam:{exc.operation_name} answered {error.get('Code', 'an error')}"
            + (f" ({said})" if said else ""),
        )
    except BotoCoreError as exc:
        return Reading(Verdict.UNKNOWN, f"IAM could not be asked: {mask(str(exc))}")
    except ValueError as exc:  # the account root, a federated user; or a document not JSON
        return Reading(Verdict.UNKNOWN, str(exc))
    except (KeyError, TypeError) as exc:
        return Reading(Verdict.UNKNOWN, f"IAM answered a policy that could not be read ({exc})")
    return Reading(evaluate(documents, action, resource))


def evaluate(documents: list[dict[str, Any]], action: str, resource: str) -> Verdict:
    """ALLOWED or NOT_ALLOWED by these identity policies (Action/Resource only, see above)."""
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement", [])):
            if not isinstance(statement, dict) or not _covers(statement, action, resource):
                continue
            if statement.get("Effect") == "Deny" and not statement.get("Condition"):
                return Verdict.NOT_ALLOWED
            allowed = allowed or statement.get("Effect") == "Allow"
    return Verdict.ALLOWED if allowed else Verdict.NOT_ALLOWED


def _documents(session: Session, principal: str, region: str) -> Iterator[dict[str, Any]]:
    """Inline and attached policies of an IAM user (and its groups) or a role."""
    iam = client(session, "iam", region)
    user, role = _USER.fullmatch(principal), _ROLE.fullmatch(principal)
    if user:
        name = user["name"]
        for policy in iam.list_user_policies(UserName=name)["PolicyNames"]:
            yield _load(iam.get_user_policy(UserName=name, PolicyName=policy)["PolicyDocument"])
        attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
        for group in iam.list_groups_for_user(UserName=name)["Groups"]:
            group_name = group["GroupName"]
            for policy in iam.list_group_policies(GroupName=group_name)["PolicyNames"]:
                got = iam.get_group_policy(GroupName=group_name, PolicyName=policy)
                yield _load(got["PolicyDocument"])
            attached += iam.list_attached_group_policies(GroupName=group_name)["AttachedPolicies"]
    elif role:
        name = role["name"]
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            yield _load(iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"])
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    else:  # the account root, a federated user: nothing to read
        raise ValueError(f"no readable identity policies for {principal}")
    for attachment in attached:
        arn = attachment["PolicyArn"]
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]
        yield _load(document["Document"])


def _load(document: object) -> dict[str, Any]:
    """boto3 decodes IAM's URL-encoded JSON; a stand-in may hand back the string."""
    if isinstance(document, str):
        document = json.loads(unquote(document))
    if not isinstance(document, dict):
        raise TypeError("a policy document that is not a JSON object")
    return document


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _match(pattern: str, value: str, *, ignore_case: bool) -> bool:
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _covers(statement: dict[str, Any], action: str, resource: str) -> bool:
    def any_of(key: str, value: str, *, ignore_case: bool) -> bool:
        return any(_match(str(p), value, ignore_case=ignore_case) for p in _as_list(statement[key]))

    if "Action" in statement:
        action_ok = any_of("Action", action, ignore_case=True)
    else:
        action_ok = "NotAction" in statement and not any_of("NotAction", action, ignore_case=True)
    if "Resource" in statement:
        resource_ok = any_of("Resource", resource, ignore_case=False)
    else:
        resource_ok = "NotResource" in statement and not any_of(
            "NotResource", resource, ignore_case=False
        )
    return action_ok and resource_ok
