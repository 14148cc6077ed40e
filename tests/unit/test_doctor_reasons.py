"""AWS's newer AccessDenied messages name the kind of policy that refused; the doctor reads it.
The messages are worded as AWS words them (moto never produces them)."""

from __future__ import annotations

import pytest

from gitlab_xacct.doctor import reasons
from gitlab_xacct.doctor.report import BOUNDARY, BUILD, ORGANIZATION, OURTHING

CALLER = "arn:aws:iam::111111111111:user/gitlab-runner"
ROLE = "arn:aws:iam::222222222222:role/OurThingBuildRole"
HEAD = f"User: {CALLER} is not authorized to perform: sts:AssumeRole on resource: {ROLE} "
SCP = "arn:aws:organizations::999999999999:policy/o-abc123/service_control_policy/p-def456"
DENIAL = reasons.Denial(
    principal=CALLER, principal_account="111111111111", principal_side=BUILD,
    action="sts:AssumeRole", resource=ROLE, resource_account="222222222222",
    resource_policy=f"the trust policy of {ROLE}",
)  # fmt: skip


@pytest.mark.parametrize(
    ("tail", "kind", "side"),
    [
        ("because no identity-based policy allows the sts:AssumeRole action",
         "identity-based policy", BUILD),
        ("with an explicit deny in an identity-based policy", "identity-based policy", BUILD),
        ("because no resource-based policy allows the sts:AssumeRole action",
         "resource-based policy", OURTHING),
        (f"with an explicit deny in a service control policy: {SCP}", "service control policy",
         ORGANIZATION),
        ("because no service control policy allows the sts:AssumeRole action",
         "service control policy", ORGANIZATION),
        ("with an explicit deny in a resource control policy", "resource control policy",
         ORGANIZATION),
        ("because no permissions boundary allows the sts:AssumeRole action",
         "permissions boundary", BOUNDARY),
        ("with an explicit deny in a permissions boundary", "permissions boundary", BOUNDARY),
        ("because no session policy allows the sts:AssumeRole action", "session policy", BUILD),
    ],
)  # fmt: skip
def test_each_phrase_is_its_own_cause_quoted(tail: str, kind: str, side: str) -> None:
    reason = reasons.found(HEAD + tail)
    assert reason is not None
    assert reason.kind == kind
    assert reason.phrase == tail
    cause, fix = reasons.cause(reason, DENIAL)
    assert cause.side == side
    assert cause.text.startswith(f'AWS says "{tail}": ')
    assert fix


def test_a_bare_access_denied_names_nothing() -> None:
    assert reasons.found(HEAD.strip()) is None
    assert reasons.found("Access denied") is None


def test_an_scp_is_the_organizations_to_fix() -> None:
    reason = reasons.found(HEAD + f"with an explicit deny in a service control policy: {SCP}.")
    assert reason is not None
    cause, fix = reasons.cause(reason, DENIAL)
    assert SCP in cause.text  # AWS's words, the policy's ARN included
    assert "AWS Organization of account 111111111111" in cause.text
    assert fix.startswith("ask the organization's administrators")
