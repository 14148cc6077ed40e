"""AWS's own reason for an AccessDenied, when its message gives one.

AWS's newer denial messages end by naming the kind of policy that refused: "because no
identity-based policy allows the sts:AssumeRole action", "... with an explicit deny in a
service control policy: arn:...", "... in a permissions boundary", "... in a session policy",
"... resource-based policy". That is the best evidence there is: the cause it names goes
first, with AWS's words quoted. A service control policy (or a resource control policy) is the
organization's; a permissions boundary is whoever set it on the principal: each is a side of
its own, neither account's everyday administrators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gitlab_xacct.doctor.report import BOUNDARY, ORGANIZATION, OURTHING, Cause

_PHRASE = re.compile(
    r"(?:with an explicit deny in an? |because no )"
    r"(?P<kind>service control policy|resource control policy|permissions boundary|"
    r"session policy|identity-based policy|resource-based policy)[^.\n]*",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Reason:
    kind: str  # the policy kind AWS named, lower case: "service control policy", ...
    phrase: str  # AWS's words, from "because no" / "with an explicit deny" to the sentence's end

    @property
    def quoted(self) -> str:
        return f'AWS says "{self.phrase}"'


def found(message: str) -> Reason | None:
    match = _PHRASE.search(message)
    if match is None:
        return None
    return Reason(match["kind"].lower(), match[0].strip())


@dataclass(frozen=True, slots=True)
class Denial:
    """Who was refused what, for wording a reason as a cause and a fix."""

    principal: str  # the ARN refused (a role for an assumed-role session)
    principal_account: str
    principal_side: str  # BUILD for the runner, OURTHING for the assumed role
    action: str  # sts:AssumeRole, ecr:GetAuthorizationToken...
    resource: str
    resource_account: str
    resource_policy: str  # what the resource-based policy is here: "the trust policy of ..."


def cause(reason: Reason, denial: Denial) -> tuple[Cause, str]:
    """The cause AWS named and its fix."""
    d = denial
    what = f"{d.action} for {d.principal} on {d.resource}"
    if reason.kind == "service control policy":
        return Cause(
            f"{reason.quoted}: a service control policy of the AWS Organization of account "
            f"{d.principal_account} (on the account or an organizational unit above it) refuses "
            f"{what}",
            ORGANIZATION,
        ), (
            f"ask the organization's administrators (its management account) to allow "
            f"{d.action} on {d.resource} for account {d.principal_account} in that SCP"
        )
    if reason.kind == "resource control policy":
        return Cause(
            f"{reason.quoted}: a resource control policy of the AWS Organization of account "
            f"{d.resource_account} refuses {what}",
            ORGANIZATION,
        ), (
            f"ask the organization's administrators to allow {d.action} on {d.resource} in "
            "that resource control policy"
        )
    if reason.kind == "permissions boundary":
        return Cause(
            f"{reason.quoted}: the permissions boundary set on {d.principal} (account "
            f"{d.principal_account}) does not allow {d.action} on {d.resource}",
            BOUNDARY,
        ), (
            f"whoever set the permissions boundary of {d.principal} (often a platform team of "
            f"account {d.principal_account}) must allow {d.action} on {d.resource} in it"
        )
    if reason.kind == "session policy":
        return Cause(
            f"{reason.quoted}: the session policy passed when the session of {d.principal} "
            f"was made does not allow {d.action} on {d.resource}",
            d.principal_side,
        ), f"allow {d.action} in the session policy given where that session is made"
    if reason.kind == "resource-based policy":
        return Cause(
            f"{reason.quoted}: {d.resource_policy} does not allow {what}",
            OURTHING,
        ), f"allow {d.action} for {d.principal} in {d.resource_policy}"
    return Cause(  # identity-based policy
        f"{reason.quoted}: the identity policy of {d.principal} does not allow {d.action} on "
        f"{d.resource}",
        d.principal_side,
    ), f"allow {d.action} on {d.resource} in the identity policy of {d.principal}"
