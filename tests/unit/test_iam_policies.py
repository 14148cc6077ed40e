"""The generated policy documents: shape, least privilege, and what push really calls."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from gitlab_xacct.aws import iam

PACKAGE = Path(__file__).resolve().parents[2] / "gitlab_xacct"
RUNNER = "arn:aws:iam::111111111111:role/gitlab-runner"
TARGET = "arn:aws:iam::222222222222:role/gitlab-xacct-push"


def test_trust_policy_names_principals_and_external_id() -> None:
    policy = iam.trust_policy(principal_arns=[RUNNER, RUNNER], external_id="abcd1234")
    (statement,) = policy["Statement"]
    assert policy["Version"] == "2012-10-17"
    assert statement["Principal"] == {"AWS": [RUNNER]}
    assert statement["Action"] == ["sts:AssumeRole"]
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "abcd1234"}}


def test_tag_session_is_added_to_the_same_statement() -> None:
    policy = iam.trust_policy(principal_arns=[RUNNER], external_id="x1", tag_session=True)
    assert policy["Statement"][0]["Action"] == ["sts:AssumeRole", "sts:TagSession"]


def test_oidc_statement_is_restricted_on_sub_and_aud() -> None:
    oidc = iam.OidcTrust(
        provider_arn="arn:aws:iam::222222222222:oidc-provider/gitlab.example.com",
        audience="https://gitlab.example.com",
        project_path="team/app",
    )
    policy = iam.trust_policy(principal_arns=[RUNNER], external_id="x1", oidc=oidc)
    web = policy["Statement"][1]
    assert web["Principal"] == {"Federated": oidc.provider_arn}
    assert web["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert web["Condition"] == {
        "StringEquals": {"gitlab.example.com:aud": "https://gitlab.example.com"},
        "StringLike": {"gitlab.example.com:sub": "project_path:team/app:*"},
    }


def test_push_policy_is_least_privilege() -> None:
    arns = [iam.repository_arn("aws", "eu-west-1", "222222222222", "team/*")]
    assert arns == ["arn:aws:ecr:eu-west-1:222222222222:repository/team/*"]
    policy = iam.push_policy(repository_arns=arns, allow_create=False)
    token, push = policy["Statement"]
    assert token == {
        "Sid": iam.SID_TOKEN,
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    }
    assert push["Resource"] == arns
    assert "ecr:CreateRepository" not in json.dumps(policy)
    assert not any(a.startswith("ecr:Delete") or a == "ecr:*" for a in push["Action"])


def test_allow_create_adds_create_repository_on_the_same_repositories() -> None:
    arns = [iam.repository_arn("aws", "eu-west-1", "222222222222", "team/app")]
    policy = iam.push_policy(repository_arns=arns, allow_create=True)
    create = policy["Statement"][2]
    assert create["Action"] == ["ecr:CreateRepository"]
    assert create["Resource"] == arns


def test_build_policy_allows_assume_on_the_target_only() -> None:
    policy = iam.build_policy(role_arns=[TARGET], tag_session=True)
    (statement,) = policy["Statement"]
    assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert statement["Resource"] == [TARGET]


@pytest.mark.parametrize(
    "make",
    [
        lambda: iam.trust_policy(principal_arns=[], external_id="x1"),
        lambda: iam.push_policy(repository_arns=[], allow_create=False),
        lambda: iam.build_policy(role_arns=[]),
    ],
)
def test_empty_inputs_are_refused(make: object) -> None:
    with pytest.raises(ValueError, match="at least one"):
        make()  # type: ignore[operator]


def _ecr_operations() -> dict[str, str]:
    """ECR's API operations by boto3 method name (from botocore's bundled model, no network)."""
    model = botocore.session.get_session().get_service_model("ecr")
    return {xform_name(name): f"ecr:{name}" for name in model.operation_names}


def _ecr_calls() -> set[str]:
    """Every ECR operation the package calls as a method (`client.describe_repositories(...)`)."""
    operations = _ecr_operations()
    calls: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in operations
            ):
                calls.add(operations[node.func.attr])
    return calls


def test_every_ecr_api_call_of_the_package_is_granted() -> None:
    """A new ECR call in the product must come with its action in the generated policy."""
    granted = {iam.TOKEN_ACTION, *iam.PUSH_ACTIONS, *iam.CREATE_ACTIONS}
    calls = _ecr_calls()
    expected = {"ecr:DescribeRepositories", "ecr:CreateRepository", "ecr:GetAuthorizationToken"}
    assert expected <= calls
    assert calls <= granted, f"called but not granted: {sorted(calls - granted)}"


def _json_blocks(path: Path) -> list[object]:
    text = path.read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]


def test_docs_show_the_generated_documents() -> None:
    """docs/identity.md's examples are exactly what bootstrap writes (no hand-written drift)."""
    blocks = _json_blocks(PACKAGE.parent / "docs" / "identity.md")
    repository = iam.repository_arn("aws", "eu-west-1", "222222222222", "team/*")
    generated = [
        iam.push_policy(repository_arns=[repository], allow_create=False),
        iam.trust_policy(principal_arns=[RUNNER], external_id="<value of XACCT_EXTERNAL_ID>"),
        iam.build_policy(role_arns=["arn:aws:iam::222222222222:role/OurThingBuildRole"]),
    ]
    for document in generated:
        assert document in blocks, f"docs/identity.md lacks {json.dumps(document)}"
