"""`--format cloudformation|terraform`: the documents the CLI applies, written for other tools.

The CloudFormation template and the Terraform configuration are filled in here as each tool
would fill them where they are deployed (the account, the partition, the External ID), and
must then equal the documents `bootstrap role` plans for the same flags: one set of documents,
two writers. cfn-lint and a real deployment on moto are in tests/integration/test_setup_as_code.
"""

from __future__ import annotations

import errno
import json
import re
import stat
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from gitlab_xacct import report
from gitlab_xacct.bootstrap import role
from gitlab_xacct.bootstrap.aws import Admin
from gitlab_xacct.bootstrap.settings import RoleSettings
from gitlab_xacct.cli import main
from gitlab_xacct.commands.gitlab_configure import ConfigureSettings
from gitlab_xacct.iac import cloudformation, symbols, terraform

OURTHING = "222222222222"
RUNNER = "arn:aws:iam::111111111111:role/gitlab-runner"
SENTINEL = "sentinelXacctAsCode0123456789"  # the External ID: in no output, no file unasked
ROLE_ARN = f"arn:aws:iam::{OURTHING}:role/gitlab-xacct-push"

ROLE_FLAGS: dict[str, dict[str, object]] = {
    "runner role, repositories, create, tags": {
        "build_principals": [RUNNER],
        "repositories": ["team/*", "infra/base"],
        "allow_create": True,
        "tag_session": True,
    },
    "BUILD account, managed policy": {
        "build_accounts": ["111111111111"],
        "managed_policies": ["AmazonEC2ContainerRegistryPowerUser"],
        "role_name": "ci-push",
    },
    "GitLab OIDC": {
        "build_principals": [RUNNER],
        "repositories": ["team/app"],
        "oidc_provider": f"arn:aws:iam::{OURTHING}:oidc-provider/gitlab.example.com",
        "project_path": "team/app",
    },
}


def settings(flags: dict[str, object], partition: str = "aws") -> RoleSettings:
    """The flags, with their ARNs in `partition` (a China account's runner is arn:aws-cn:...)."""
    region = "cn-north-1" if partition == "aws-cn" else "eu-west-1"
    env = {"XACCT_EXTERNAL_ID": SENTINEL, "AWS_REGION": region}

    def moved(value: object) -> object:
        if isinstance(value, list):
            return [moved(v) for v in value]
        return value.replace("arn:aws:", f"arn:{partition}:") if isinstance(value, str) else value

    return RoleSettings.from_env(env, {k: moved(v) for k, v in flags.items()})


def planned(made: RoleSettings, partition: str) -> role.Plan:
    oidc_account = made.oidc.account if made.oidc else OURTHING
    admin = Admin(iam=cast(Any, None), arn="x", account=oidc_account, partition=partition)
    return role.plan(made, admin, None)


def deployed_cloudformation(value: Any, partition: str) -> Any:
    """What CloudFormation makes of Ref and Fn::Sub in a stack of OURTHING."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] == cloudformation.EXTERNAL_ID_PARAMETER:
            return SENTINEL
        if set(value) == {"Fn::Sub"}:
            pseudo = {"AWS::Partition": partition, "AWS::AccountId": OURTHING}
            pseudo[cloudformation.EXTERNAL_ID_PARAMETER] = SENTINEL
            return re.sub(r"\$\{([^}!]+)\}", lambda m: pseudo[m[1]], value["Fn::Sub"])
        return {k: deployed_cloudformation(v, partition) for k, v in value.items()}
    if isinstance(value, list):
        return [deployed_cloudformation(v, partition) for v in value]
    return value


def deployed_terraform(text: str, partition: str) -> str:
    """What Terraform makes of the interpolations, applied in OURTHING."""
    return (
        text.replace("${data.aws_partition.current.partition}", partition)
        .replace("${data.aws_caller_identity.current.account_id}", OURTHING)
        .replace("${var.external_id}", SENTINEL)
    )


@pytest.mark.parametrize("partition", ["aws", "aws-cn"])
@pytest.mark.parametrize("case", list(ROLE_FLAGS))
def test_the_template_holds_the_documents_the_cli_applies(case: str, partition: str) -> None:
    made = settings(ROLE_FLAGS[case], partition)
    plan = planned(made, partition)
    template = yaml.safe_load(cloudformation.dump(cloudformation.role_template(made), "t", "c"))
    properties = deployed_cloudformation(template["Resources"]["Role"]["Properties"], partition)
    assert properties["RoleName"] == made.role_name
    assert properties["AssumeRolePolicyDocument"] == plan.trust
    policies = properties.get("Policies", [])
    assert [p["PolicyDocument"] for p in policies] == (
        [plan.permissions] if plan.permissions else []
    )
    assert [p["PolicyName"] for p in policies] == ([role.INLINE_POLICY] if plan.permissions else [])
    assert properties.get("ManagedPolicyArns", []) == list(plan.managed)
    assert SENTINEL not in json.dumps(template)
    parameter = template["Parameters"][cloudformation.EXTERNAL_ID_PARAMETER]
    assert (parameter["NoEcho"], parameter["MinLength"], parameter["MaxLength"]) == (True, 2, 1224)


@pytest.mark.parametrize("partition", ["aws", "aws-cn"])
@pytest.mark.parametrize("case", list(ROLE_FLAGS))
def test_the_terraform_holds_the_documents_the_cli_applies(case: str, partition: str) -> None:
    made = settings(ROLE_FLAGS[case], partition)
    plan = planned(made, partition)
    text = terraform.dump(terraform.role_config(made))
    assert SENTINEL not in text
    resources = json.loads(text)["resource"]
    the_role = resources["aws_iam_role"][terraform.RESOURCE]
    assert the_role["name"] == made.role_name
    assert json.loads(deployed_terraform(the_role["assume_role_policy"], partition)) == plan.trust
    inline = resources.get("aws_iam_role_policy", {}).get(terraform.RESOURCE)
    if plan.permissions is None:
        assert inline is None
    else:
        assert inline["name"] == role.INLINE_POLICY
        assert json.loads(deployed_terraform(inline["policy"], partition)) == plan.permissions
    attached = resources.get("aws_iam_role_policy_attachment", {}).values()
    assert sorted(deployed_terraform(a["policy_arn"], partition) for a in attached) == list(
        plan.managed
    )


def test_a_placeholder_never_survives_a_writer() -> None:
    made = settings(ROLE_FLAGS["GitLab OIDC"])
    for text in (
        cloudformation.dump(cloudformation.role_template(made), "t", "c"),
        terraform.dump(terraform.role_config(made)),
    ):
        assert "{{xacct:" not in text
    assert symbols.fill({"a": [f"x{symbols.ACCOUNT}y"]}, {"account": "1"}) == {"a": ["x1y"]}


def test_a_literal_interpolation_is_escaped_for_each_tool() -> None:
    assert terraform.policy_string({"a": "${aws:username}"}) == '{\n  "a": "$${aws:username}"\n}'
    sub = cloudformation._deployable({"a": f"{symbols.ACCOUNT}/${{aws:username}}"})
    assert sub == {"a": {"Fn::Sub": "${AWS::AccountId}/${!aws:username}"}}


def run_cli(
    argv: list[str], capsys: pytest.CaptureFixture[str], **env: str
) -> tuple[int, str, str]:
    code = main(argv, env={"AWS_REGION": "eu-west-1", **env})
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


ROLE_ARGV = ["bootstrap", "role", "--build-principal", RUNNER, "--repository", "team/*"]


@pytest.mark.parametrize("kind", ["cloudformation", "terraform"])
def test_the_external_id_given_is_in_no_output_unless_embedded(
    kind: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_cli([*ROLE_ARGV, "--format", kind], capsys, XACCT_EXTERNAL_ID=SENTINEL)
    assert code == 0, err
    assert SENTINEL not in out + err
    assert "External ID given is not written" in err
    assert out.startswith("# Generated by gitlab-xacct" if kind == "cloudformation" else "{")

    target = tmp_path / "role.out"
    argv = [*ROLE_ARGV, "--format", kind, "--output", str(target), "--embed-external-id"]
    code, out, err = run_cli(argv, capsys, XACCT_EXTERNAL_ID=SENTINEL)
    assert code == 0, err
    assert out == ""
    assert SENTINEL not in err
    assert f"to {target} with the External ID's value in it (mode 0600)" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text().count(SENTINEL) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["role.out"]  # no temp file left


def test_without_embedding_the_file_is_an_ordinary_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "runner.tf.json"
    argv = ["bootstrap", "build-policy", "--role-arn", ROLE_ARN, "--attach-to-role",
            "gitlab-runner", "--format", "terraform", "--output", str(target)]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert out == ""
    assert f"wrote the runner's policy as terraform to {target}" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    config = json.loads(target.read_text())
    policy = config["resource"]["aws_iam_role_policy"][terraform.RESOURCE]
    assert policy["name"] == f"gitlab-xacct-assume-{OURTHING}-gitlab-xacct-push"
    assert json.loads(policy["policy"])["Statement"][0]["Resource"] == [ROLE_ARN]
    assert config["variable"]["runner_role_name"]["default"] == "gitlab-runner"


BAD_ROLE_INPUTS = [
    ["--build-account", "12345"],
    ["--repository", "Team/App"],
    ["--build-principal", "arn:aws:sts::111111111111:assumed-role/r/s", "--region", "Europe"],
    ["--managed-policy", "arn:aws:s3:::bucket"],
]


@pytest.mark.parametrize("bad", BAD_ROLE_INPUTS, ids=lambda b: b[0])
@pytest.mark.parametrize("kind", ["cloudformation", "terraform"])
def test_bad_input_is_refused_as_the_cli_refuses_it_and_nothing_is_written(
    bad: list[str], kind: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = ["bootstrap", "role", "--repository", "team/app", "--build-account", "111111111111"]
    cli_code, _, cli_err = run_cli([*base, *bad], capsys)
    target = tmp_path / "out"
    code, out, err = run_cli([*base, *bad, "--format", kind, "--output", str(target)], capsys)
    assert (code, cli_code) == (2, 2)
    assert err == cli_err
    assert out == ""
    assert not target.exists()


def test_a_bad_external_id_is_refused_in_the_cli_words(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, cli_err = run_cli(ROLE_ARGV, capsys, XACCT_EXTERNAL_ID="sentinelWith Space0123")
    assert code == 2
    code, _, err = run_cli(
        [*ROLE_ARGV, "--format", "terraform"], capsys, XACCT_EXTERNAL_ID="sentinelWith Space0123"
    )
    assert code == 2
    assert err == cli_err
    assert err.startswith("gitlab-xacct: error: XACCT_EXTERNAL_ID: the External ID ")
    assert "Space0123" not in err


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (["--format", "xml"], {}, "--format: 'xml' is not a format this command writes; give "
         "cloudformation or terraform"),
        (["--output", "x.yaml"], {}, "--output: only applies with --format cloudformation or "
         "terraform"),
        (["--format", "terraform", "--embed-external-id"], {"XACCT_EXTERNAL_ID": SENTINEL},
         "--embed-external-id: needs --output FILE"),
        (["--format", "terraform", "--embed-external-id", "--output", "{tmp}/f"], {},
         "--embed-external-id: no External ID to write; set XACCT_EXTERNAL_ID"),
        (["--format", "terraform", "--check"], {}, "--check: --format prints what would be made"),
        (["--format", "terraform", "--output", "{tmp}/no/such/f"], {}, "--output: the folder"),
    ],
)  # fmt: skip
def test_format_flags_are_checked_in_one_line(
    extra: list[str],
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    argv = [*ROLE_ARGV, *(e.replace("{tmp}", str(tmp_path)) for e in extra)]
    code, out, err = run_cli(argv, capsys, **env)
    assert code == 2
    assert out == ""
    assert err.startswith(f"gitlab-xacct: error: {message}"), err
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_every_problem_at_once_includes_the_format_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["bootstrap", "role", "--build-account", "1", "--repository", "x", "--format", "hcl"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    named = [line.removeprefix("gitlab-xacct: error: ").split(":")[0] for line in err.splitlines()]
    assert named == ["--build-account", "--repository", "--format"], err


CONFIGURE = [
    "gitlab", "configure", "--role-arn", ROLE_ARN, "--region", "eu-west-1",
    "--repository", "team/app", "--format", "terraform",
]  # fmt: skip


@pytest.mark.parametrize("target", [["--project", "team/app"], ["--group", "team"]])
def test_gitlab_variables_as_terraform_are_those_configure_sets(
    target: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli([*CONFIGURE, *target], capsys, XACCT_EXTERNAL_ID=SENTINEL)
    assert code == 0, err
    assert SENTINEL not in out + err
    kind = target[0].removeprefix("--")
    wanted = ConfigureSettings.from_env(
        {"XACCT_EXTERNAL_ID": SENTINEL, "GITLAB_TOKEN": "t", "CI_SERVER_URL": "https://g.test"},
        {"role_arn": ROLE_ARN, "region": "eu-west-1", "repository": "team/app",
         "project" if kind == "project" else "group": target[1]},
    ).values  # fmt: skip
    config = json.loads(out)
    resources = config["resource"][f"gitlab_{kind}_variable"]
    assert sorted(resources) == sorted(key for key, _, _ in wanted)
    for key, value, secret in wanted:
        made = resources[key]
        assert made[kind] == target[1]
        assert (made["key"], made["environment_scope"], made["variable_type"]) == (
            key,
            "*",
            "env_var",
        )
        assert (made["masked"], made["protected"], made.get("hidden", False)) == (secret,) * 3
        assert made["value"] == ("${var.external_id}" if secret else value)
    assert config["variable"]["external_id"]["sensitive"] is True
    # Terraform refuses at plan time what configure refuses before any request.
    conditions = [v["condition"] for v in config["variable"]["external_id"]["validation"]]
    assert any("{8,}" in c for c in conditions)


def test_gitlab_configure_as_code_needs_no_token_and_refuses_what_configure_refuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli([*CONFIGURE, "--project", "team/app"], capsys)
    assert code == 0, err
    code, _, err = run_cli(
        [*CONFIGURE, "--project", "team/app", "--lint"], capsys, XACCT_EXTERNAL_ID="short"
    )
    assert code == 2
    lines = err.splitlines()
    assert any("XACCT_EXTERNAL_ID: GitLab could not mask this External ID" in x for x in lines)
    assert any("--lint: --format prints what would be made" in x for x in lines)
    assert not any("GITLAB_TOKEN" in x for x in lines)
    code, _, err = run_cli([*CONFIGURE, "--project", "team/app", "--format", "cloudformation"],
                           capsys)  # fmt: skip
    assert code == 2
    assert "give terraform" in err
    assert "GITLAB_TOKEN" not in err


def test_a_file_that_cannot_be_written_is_one_line_and_leaves_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, text: str, *, mode: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "replace_atomically", full)
    target = tmp_path / "role.yaml"
    code, out, err = run_cli(
        [*ROLE_ARGV, "--format", "cloudformation", "--output", str(target)], capsys
    )
    assert code == 2
    assert out == ""
    assert err == (
        f"gitlab-xacct: error: cannot write the --output file {target}: No space left on device\n"
    )
    assert list(tmp_path.iterdir()) == []
