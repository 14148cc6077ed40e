"""Policy comparison: IAM's reshaping is no difference, every real change is one named line."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gitlab_xacct.aws import iam
from gitlab_xacct.bootstrap import compare, role
from gitlab_xacct.bootstrap.aws import Admin, failure, iam_document
from gitlab_xacct.bootstrap.settings import RoleSettings
from gitlab_xacct.errors import ConfigError, IdentityError
from gitlab_xacct.secrets import Secret, register

RUNNER = "arn:aws:iam::111111111111:role/gitlab-runner"
SECRET = "sentinelCompare0123456789abcdef"


def trust(**kwargs: Any) -> iam.PolicyDocument:
    return iam.trust_policy(principal_arns=[RUNNER], external_id=SECRET, **kwargs)


def as_iam_returns(document: iam.PolicyDocument) -> iam.PolicyDocument:
    """What IAM hands back: one-element lists as strings, no Sid, statements reversed."""
    reshaped = copy.deepcopy(document)
    for statement in reshaped["Statement"]:
        statement.pop("Sid", None)
        for key in ("Action", "Resource"):
            if isinstance(statement.get(key), list) and len(statement[key]) == 1:
                statement[key] = statement[key][0]
        principal = statement.get("Principal", {})
        for kind, value in principal.items():
            if isinstance(value, list) and len(value) == 1:
                principal[kind] = value[0]
    reshaped["Statement"].reverse()
    return reshaped


def test_reshaped_documents_are_the_same() -> None:
    oidc = iam.OidcTrust("arn:aws:iam::2:oidc-provider/g.example", "aud", "team/app")
    desired = trust(tag_session=True, oidc=oidc)
    assert compare.same(desired, as_iam_returns(desired))
    permissions = iam.push_policy(repository_arns=["arn:x/team/app"], allow_create=True)
    assert compare.same(permissions, as_iam_returns(permissions))
    assert compare.trust_differences(desired, as_iam_returns(desired)) == []


def test_external_id_difference_is_named_without_values() -> None:
    current = iam.trust_policy(principal_arns=[RUNNER], external_id="otherValue0123456789")
    lines = compare.trust_differences(trust(), current)
    assert lines == [
        "trust: the External ID in the role's trust policy differs from the one given "
        "(neither is shown)"
    ]
    assert not compare.same(trust(), current)


def test_condition_changes_are_shown_with_the_external_id_masked() -> None:
    current = trust()
    del current["Statement"][0]["Condition"]
    (line,) = compare.trust_differences(trust(), current)
    assert line == (
        f"trust: {RUNNER} sts:AssumeRole: conditions differ (expected StringEquals "
        "sts:ExternalId = (External ID); found no condition)"
    )
    assert SECRET not in line


def test_permission_differences_are_grouped_by_repository() -> None:
    arns = ["arn:aws:ecr:r:2:repository/team/app", "arn:aws:ecr:r:2:repository/team/web"]
    desired = iam.push_policy(repository_arns=arns, allow_create=False)
    current = iam.push_policy(repository_arns=arns[:1], allow_create=True)
    lines = compare.permission_differences(desired, current)
    assert lines == [
        f"permissions: {arns[1]} is not allowed: {', '.join(sorted(iam.PUSH_ACTIONS))}",
        f"permissions: {arns[0]} is also allowed (not asked for): ecr:CreateRepository",
    ]


def test_an_unknown_statement_shape_is_a_difference() -> None:
    current = trust()
    current["Statement"].append({"Effect": "Deny", "Principal": "*", "NotAction": "sts:AssumeRole"})
    assert not compare.same(trust(), current)


class _NoIam:
    """plan/differences/notes never call IAM; an attribute access would fail the test."""


def admin() -> Admin:
    return Admin(iam=_NoIam(), arn="arn:aws:iam::222222222222:user/admin",  # type: ignore[arg-type]
                 account="222222222222", partition="aws")  # fmt: skip


def role_settings(**changes: Any) -> RoleSettings:
    base: dict[str, Any] = dict(
        role_name="r", build_accounts=(), build_principals=(RUNNER,), tag_session=False,
        oidc=None, repositories=("team/*",), allow_create=False, managed_policies=(),
        external_id=None, external_id_origin="", external_id_warnings=(), region="eu-west-1",
        dry_run=False, check=False,
    )  # fmt: skip
    return RoleSettings(**(base | changes))


def state(trust_document: iam.PolicyDocument, **changes: Any) -> role.RoleState:
    base: dict[str, Any] = dict(
        arn="arn:aws:iam::222222222222:role/r", trust=trust_document, inline=None,
        attached=(), other_inline=(),
    )  # fmt: skip
    return role.RoleState(**(base | changes))


def test_an_existing_external_id_is_kept_and_never_printable() -> None:
    existing = state(as_iam_returns(trust()))
    plan = role.plan(role_settings(), admin(), existing)
    assert plan.id_source == "kept"
    assert plan.external_id.reveal() == SECRET
    assert SECRET not in repr(plan)
    assert SECRET not in str(plan.printable_trust)
    assert role.differences(plan, existing) == [
        "permissions: the inline policy gitlab-xacct-ecr-push is missing"
    ]


def test_a_new_role_gets_a_generated_external_id() -> None:
    plan = role.plan(role_settings(), admin(), None)
    assert plan.id_source == "generated"
    assert len(plan.external_id) == 32
    assert plan.role_arn == "arn:aws:iam::222222222222:role/r"
    assert role.differences(plan, None) == [f"role: {plan.role_arn} does not exist"]


def test_a_given_external_id_wins() -> None:
    given = Secret("givenExternalId0123456789")
    plan = role.plan(role_settings(external_id=given), admin(), state(trust()))
    assert (plan.id_source, plan.external_id) == ("given", given)


def test_managed_policy_names_become_aws_arns_and_notes_name_the_rest() -> None:
    settings = role_settings(repositories=(), region=None,
                             managed_policies=("AmazonEC2ContainerRegistryPowerUser",))  # fmt: skip
    other = "arn:aws:iam::222222222222:policy/extra"
    existing = state(trust(), attached=(other,), inline={"Statement": []})
    plan = role.plan(settings, admin(), existing)
    assert plan.managed == ("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser",)
    assert plan.permissions is None
    assert role.differences(plan, existing) == [
        "permissions: the inline policy gitlab-xacct-ecr-push is on the role; --managed-policy "
        "replaces it",
        f"permissions: the managed policy {plan.managed[0]} is not attached",
    ]
    assert role.notes(plan, existing) == [
        f"the role also has the managed policy {other} (not managed by bootstrap; detach it if "
        "nothing else needs it)"
    ]


def _client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "CreateRole")


def test_iam_errors_become_one_line_with_the_right_exit_code() -> None:
    denied = failure(_client_error("AccessDenied", "not authorized"), "iam:CreateRole", admin())
    assert isinstance(denied, IdentityError)
    assert str(denied).startswith(
        "AccessDenied: arn:aws:iam::222222222222:user/admin may not call iam:CreateRole in "
        "account 222222222222; run this with administrator credentials of that account"
    )
    register(SECRET)
    malformed = failure(
        _client_error("MalformedPolicyDocument", f"Invalid principal near {SECRET}"),
        "iam:CreateRole",
        admin(),
    )
    assert isinstance(malformed, ConfigError)
    assert "--build-principal" in str(malformed)
    assert SECRET not in str(malformed)


def test_a_document_iam_returns_that_is_not_json_is_said_not_a_traceback() -> None:
    assert iam_document("%7B%22Version%22%3A%20%222012-10-17%22%7D", "x") == {
        "Version": "2012-10-17"
    }
    for bad in ("{'Version': '2012-10-17'}", "[1]", 7):
        with pytest.raises(IdentityError, match="IAM returned the trust of role r that is not"):
            iam_document(bad, "the trust of role r")
