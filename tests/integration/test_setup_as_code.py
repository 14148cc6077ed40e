"""Setup as code, for real: every generated template passes cfn-lint, and stacks made from them
in moto's CloudFormation (auth on) give a role `push` works through and `--check` finds equal to
the flags; a stack with the wrong External ID makes `push` fail as a wrong ID always does."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.imagefactory import random_layer, write_oci_layout
from tests.integration.conftest import CLI
from tests.integration.test_bootstrap import (  # the same fresh accounts, made for this module
    BUILD,
    OURTHING,
    REGION,
    RUNNER_ROLE,
    Fresh,
    fresh,  # noqa: F401 - a fixture
    push,
)
from tests.standins.aws_world import AccessKey, boto_session
from tests.standins.servers import Registry

EXTERNAL_ID = "sentinelXacctStack0123456789ab"  # the stack's parameter: in no output, no file
ROLE_CASES = {
    "runner-repos": ["--build-principal", RUNNER_ROLE, "--repository", "team/*",
                     "--allow-create", "--tag-session"],
    "account-managed": ["--build-account", BUILD, "--managed-policy",
                        "AmazonEC2ContainerRegistryPowerUser"],
    "oidc": ["--build-principal", RUNNER_ROLE, "--repository", "team/app",
             "--gitlab-oidc-provider", f"arn:aws:iam::{OURTHING}:oidc-provider/gitlab.test",
             "--gitlab-project-path", "team/app"],
}  # fmt: skip


def generate(*argv: str, output: Path) -> None:
    """The CLI writing a file, with no AWS credentials at all: --format makes no call."""
    result = subprocess.run(
        [CLI, *argv, "--output", str(output)],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "AWS_REGION": REGION},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert EXTERNAL_ID not in result.stdout + result.stderr + output.read_text()


def test_every_generated_template_passes_cfn_lint(tmp_path: Path) -> None:
    files = []
    for name, argv in ROLE_CASES.items():
        files.append(tmp_path / f"role-{name}.yaml")
        generate("bootstrap", "role", *argv, "--format", "cloudformation", output=files[-1])
    for tag in ([], ["--tag-session"]):
        files.append(tmp_path / f"build-policy{''.join(tag)}.yaml")
        generate("bootstrap", "build-policy", "--role-arn", f"arn:aws:iam::{OURTHING}:role/r",
                 "--attach-to-role", "gitlab-runner", *tag, "--format", "cloudformation",
                 output=files[-1])  # fmt: skip
    lint = subprocess.run(
        ["cfn-lint", "--", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout == ""


def deploy(world: Fresh, key: AccessKey, name: str, template: Path, **parameters: str) -> Any:
    session = boto_session(key.access_key_id, key.secret_access_key, region=REGION)
    client = session.client("cloudformation", endpoint_url=world.moto.url)
    client.create_stack(
        StackName=name,
        TemplateBody=template.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = client.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    # (moto's describe_stacks shows a NoEcho parameter's value; CloudFormation shows ****.)
    return stack


def stored_as_json(world: Fresh, role_name: str, policy_name: str) -> None:
    """moto's CloudFormation keeps a role's inline policy as the Python repr of the template's
    mapping, which IAM never returns (and `bootstrap role` refuses in one line). The same
    document, put back as the JSON IAM keeps, so that --check compares the stack's content."""
    iam: Any = world.ourthing_iam()
    found = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    if isinstance(found, str):
        document = ast.literal_eval(found)
        iam.put_role_policy(
            RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
        )


def outputs(stack: Any) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def both_stacks(world: Fresh, tmp_path: Path, role_name: str, external_id: str) -> list[str]:
    """The role's stack in OURTHING and the runner's in BUILD, from the generated templates;
    returns the flags the role was generated from."""
    flags = ["--role-name", role_name, "--build-principal", RUNNER_ROLE,
             "--repository", "team/*", "--region", REGION]  # fmt: skip
    role_template = tmp_path / f"{role_name}.yaml"
    generate("bootstrap", "role", *flags, "--format", "cloudformation", output=role_template)
    stack = deploy(world, world.ourthing_admin, role_name, role_template, ExternalId=external_id)
    assert outputs(stack)["RoleArn"] == f"arn:aws:iam::{OURTHING}:role/{role_name}"
    runner_template = tmp_path / f"{role_name}-runner.yaml"
    generate("bootstrap", "build-policy", "--role-arn", outputs(stack)["RoleArn"],
             "--attach-to-role", "gitlab-runner", "--format", "cloudformation",
             output=runner_template)  # fmt: skip
    deploy(world, world.build_admin, f"{role_name}-runner", runner_template)
    return flags


def push_through(
    world: Fresh, registry: Registry, tmp_path: Path, role_name: str, seed: int
) -> tuple[subprocess.CompletedProcess[str], str]:
    """A job in BUILD pushing into OURTHING's team/ROLE_NAME through the role; the digest."""
    repository = f"team/{role_name}"
    admin = world.ourthing_admin
    ecr = boto_session(admin.access_key_id, admin.secret_access_key, region=REGION).client(
        "ecr", endpoint_url=world.moto.url
    )
    ecr.create_repository(repositoryName=repository)
    layout = tmp_path / "layout"
    info = write_oci_layout(layout, [random_layer(2048, seed=seed)], ref="stack")
    job = world.runner_env(
        XACCT_ROLE_ARN=f"arn:aws:iam::{OURTHING}:role/{role_name}",
        XACCT_EXTERNAL_ID=EXTERNAL_ID,
        XACCT_REGION=REGION,
        XACCT_REGISTRY_ENDPOINT=registry.url,
        XACCT_SOURCE=f"oci:{layout}:stack",
        XACCT_REPOSITORY=repository,
        XACCT_TAGS="v1",
        HOME=str(tmp_path),
    )
    pushed = push(job)
    world.outputs += [pushed.stdout, pushed.stderr]
    assert "Traceback" not in pushed.stderr
    return pushed, info.manifest_digest


def test_stacks_from_the_templates_make_a_role_push_works_through(
    fresh: Fresh,  # noqa: F811 - the fixture imported above
    registry: Registry,
    tmp_path: Path,
) -> None:
    flags = both_stacks(fresh, tmp_path, "stacked", EXTERNAL_ID)

    # The CLI's own comparison: the stack's role is the role these flags describe.
    stored_as_json(fresh, "stacked", "gitlab-xacct-ecr-push")
    checked = fresh.role(*flags, "--check", XACCT_EXTERNAL_ID=EXTERNAL_ID)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == f"role arn:aws:iam::{OURTHING}:role/stacked: matches"
    other = fresh.role(*flags, "--check", XACCT_EXTERNAL_ID="another-external-id-42")
    assert other.returncode == 3
    assert "External ID" in other.stdout

    pushed, digest = push_through(fresh, registry, tmp_path, "stacked", seed=71)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == f"{registry.host}/team/stacked:v1@{digest}"
    assert "assumed-role/stacked/" in pushed.stderr


def test_a_stack_with_another_external_id_fails_push_with_the_usual_explanation(
    fresh: Fresh,  # noqa: F811 - the fixture imported above
    registry: Registry,
    tmp_path: Path,
) -> None:
    both_stacks(fresh, tmp_path, "stacked-wrong", "not-the-jobs-external-id")
    pushed, _ = push_through(fresh, registry, tmp_path, "stacked-wrong", seed=72)
    assert pushed.returncode == 3, pushed.stderr
    assert "External ID" in pushed.stderr
    assert pushed.stdout == ""


@pytest.mark.parametrize("case", list(ROLE_CASES))
def test_terraform_parses_for_every_case(case: str, tmp_path: Path) -> None:
    target = tmp_path / "role.tf.json"
    generate("bootstrap", "role", *ROLE_CASES[case], "--format", "terraform", output=target)
    config = json.loads(target.read_text())
    assert config["variable"]["external_id"]["sensitive"] is True
    assert config["output"]["role_arn"]["value"] == "${aws_iam_role.gitlab_xacct.arn}"
