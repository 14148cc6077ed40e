"""`--format cloudformation`: the role (`bootstrap role`) or the runner's policy (`bootstrap
build-policy`) as a CloudFormation template, in YAML (pyyaml).

The account, the partition and the External ID are the stack's (`AWS::AccountId`,
`AWS::Partition`, the `ExternalId` parameter), so one template serves every OURTHING account of
a StackSet. Only intrinsic functions every region has are used: `Ref`, `Fn::Sub`, `Fn::GetAtt`.
"""

from __future__ import annotations

from typing import Any

import yaml

from gitlab_xacct import __version__
from gitlab_xacct.aws import iam as policies
from gitlab_xacct.bootstrap import build_policy
from gitlab_xacct.bootstrap.role import DESCRIPTION, INLINE_POLICY
from gitlab_xacct.bootstrap.settings import BuildPolicySettings, RoleSettings
from gitlab_xacct.config import validate
from gitlab_xacct.iac import symbols
from gitlab_xacct.secrets import Secret

EXTERNAL_ID_PARAMETER = "ExternalId"
RUNNER_ROLE_PARAMETER = "RunnerRoleName"
_PSEUDO = {
    "partition": "${AWS::Partition}",
    "account": "${AWS::AccountId}",
    "external_id": "${" + EXTERNAL_ID_PARAMETER + "}",
}


def _intrinsic(text: str) -> Any:
    """A string with placeholders as CloudFormation computes it at deploy time."""
    if text == symbols.EXTERNAL_ID:
        return {"Ref": EXTERNAL_ID_PARAMETER}
    # Fn::Sub reads ${...} as a reference: a literal one is written ${!...}.
    body = "".join(
        _PSEUDO[piece] if placeholder else piece.replace("${", "${!")
        for piece, placeholder in symbols.split(text)
    )
    return {"Fn::Sub": body}


def _deployable(document: Any) -> Any:
    return symbols.replace_strings(document, _intrinsic)


def external_id_parameter(embedded: Secret | None) -> dict[str, Any]:
    low, high = validate.EXTERNAL_ID_LENGTHS
    parameter: dict[str, Any] = {
        "Type": "String",
        "NoEcho": True,  # never shown by describe-stacks or the console
        "MinLength": low,
        "MaxLength": high,
        "AllowedPattern": f"{validate.EXTERNAL_ID_CHARACTERS}*",
        "ConstraintDescription": validate.EXTERNAL_ID_RULE,
        "Description": "The External ID the role's trust demands (sts:ExternalId): the value of "
        "the jobs' XACCT_EXTERNAL_ID",
    }
    if embedded is not None:
        parameter["Default"] = embedded.reveal()
    return parameter


def role_template(settings: RoleSettings, embedded: Secret | None = None) -> dict[str, Any]:
    documents = symbols.role_documents(settings)
    properties: dict[str, Any] = {
        "RoleName": settings.role_name,
        "Description": DESCRIPTION,
        "AssumeRolePolicyDocument": _deployable(documents.trust),
    }
    if documents.permissions is not None:
        properties["Policies"] = [
            {"PolicyName": INLINE_POLICY, "PolicyDocument": _deployable(documents.permissions)}
        ]
    if documents.managed:
        properties["ManagedPolicyArns"] = _deployable(list(documents.managed))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "gitlab-xacct: the role GitLab jobs of BUILD assume to push images to "
        "ECR, with an External ID (bootstrap role --format cloudformation)",
        "Parameters": {EXTERNAL_ID_PARAMETER: external_id_parameter(embedded)},
        "Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": properties}},
        "Outputs": {
            "RoleArn": {
                "Description": "The jobs' XACCT_ROLE_ARN",
                "Value": {"Fn::GetAtt": ["Role", "Arn"]},
            }
        },
    }


def build_policy_template(settings: BuildPolicySettings) -> dict[str, Any]:
    """The runner's identity policy, inline on the runner's role (a parameter, defaulting to
    --attach-to-role), under the name `bootstrap build-policy --attach-to-role` gives it."""
    runner: dict[str, Any] = {
        "Type": "String",
        "AllowedPattern": r"[\w+=,.@-]{1,64}",
        "Description": "Name of the runner's IAM role in BUILD (the role the jobs run as)",
    }
    if settings.attach_to_role:
        runner["Default"] = settings.attach_to_role
    document: policies.PolicyDocument = build_policy.document(settings)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "gitlab-xacct: lets the runner's role in BUILD assume the OURTHING role "
        "(bootstrap build-policy --format cloudformation)",
        "Parameters": {RUNNER_ROLE_PARAMETER: runner},
        "Resources": {
            "AssumeTargetPolicy": {
                "Type": "AWS::IAM::Policy",  # inline on an existing role, by name
                "Properties": {
                    "PolicyName": build_policy.policy_name(settings),
                    "PolicyDocument": document,
                    "Roles": [{"Ref": RUNNER_ROLE_PARAMETER}],
                },
            }
        },
    }


def dump(template: dict[str, Any], command: str, capability: str) -> str:
    """`capability`: what the stack must be given, CAPABILITY_NAMED_IAM for a named role."""
    header = f"# Generated by gitlab-xacct {__version__} ({command}); deploy with {capability}.\n"
    return header + yaml.safe_dump(template, sort_keys=False, width=100, allow_unicode=True)
