"""The doctor's offline parts: settings collected whole, External ID pitfalls, own-policy
evaluation, the report's shapes and exit codes, and a run that stops before AWS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitlab_xacct.cli import main
from gitlab_xacct.commands.doctor import OPTIONS
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.config.validate import whitespace
from gitlab_xacct.doctor import report
from gitlab_xacct.doctor.config import check_external_id, check_settings
from gitlab_xacct.doctor.own_policy import Verdict, evaluate
from gitlab_xacct.doctor.report import Cause, Check
from gitlab_xacct.secrets import register

ROLE = "arn:aws:iam::222222222222:role/OurThingBuildRole"
SECRET_ID = "sentinel-unit-ExtId-5a1c"


def resolver(**env: str) -> Resolver:
    return Resolver(env, {}, OPTIONS)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("abcd\n", ["trailing newline"]),
        (" abcd", ["leading space"]),
        ("abcd\r\n", ["trailing carriage return and newline (a Windows line ending)"]),
        ("ab\tcd", ["tab inside the value"]),
        ("\tab cd ", ["leading tab", "trailing space", "space inside the value"]),
        ("abcd", []),
    ],
)
def test_whitespace_is_described_in_words(value: str, said: list[str]) -> None:
    assert whitespace(value) == said


def test_settings_lists_every_problem_at_once() -> None:
    check = check_settings(
        resolver(XACCT_REGOIN="eu-west-1", XACCT_REGION="Europe", XACCT_DURATION_SECONDS="60")
    )
    assert check.status == "FAIL"
    assert check.exit_code == 2
    assert check.side == "GitLab variables"
    lines = check.detail.splitlines()
    assert lines[0].startswith("XACCT_REGOIN: unknown gitlab-xacct variable; did you mean")
    assert any(line.startswith("XACCT_ROLE_ARN (--role-arn): not set") for line in lines)
    assert any(line.startswith("XACCT_REGION: 'Europe' is not an AWS region") for line in lines)
    assert any(line.startswith("XACCT_DURATION_SECONDS") for line in lines)
    assert any(line.startswith("XACCT_REPOSITORY (--repository)") for line in lines)
    assert len(lines) == 5


def test_valid_settings_pass() -> None:
    check = check_settings(
        resolver(XACCT_ROLE_ARN=ROLE, XACCT_REGION="eu-west-1", CI_PROJECT_PATH="Team/App")
    )
    assert check.status == "ok", check.detail


def test_external_id_with_a_trailing_newline_never_shows_the_value() -> None:
    check = check_external_id(resolver(XACCT_EXTERNAL_ID=SECRET_ID + "\n"))
    assert check.status == "FAIL"
    assert check.exit_code == 2
    assert "trailing newline" in check.detail
    rendered = report.as_text([check]) + report.as_json([check])
    assert SECRET_ID not in rendered


def test_external_id_file_variable_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "XACCT_EXTERNAL_ID"
    path.write_text("has a space\n")
    check = check_external_id(resolver(XACCT_EXTERNAL_ID=str(path)))
    assert check.status == "FAIL"
    assert "GitLab variable of type File" in check.detail
    assert "does not hold a usable External ID" in check.detail
    assert "type Variable" in check.fix


def test_external_id_unset_is_a_warning_and_a_good_one_is_ok() -> None:
    assert check_external_id(resolver()).status == "warn"
    check = check_external_id(resolver(XACCT_EXTERNAL_ID=SECRET_ID))
    assert check.status == "ok"
    assert check.detail == f"set ({len(SECRET_ID)} characters, all of them allowed by AWS)"
    bad = check_external_id(resolver(XACCT_EXTERNAL_ID="abc#def"))
    assert bad.status == "FAIL"
    assert "position 4" in bad.detail


def _statement(effect: str, **fields: object) -> dict[str, object]:
    return {"Effect": effect, **fields}


def test_own_policy_evaluation() -> None:
    allow = _statement("Allow", Action="sts:Assume*", Resource="arn:aws:iam::222222222222:role/*")
    deny = _statement("Deny", Action="sts:AssumeRole", Resource=ROLE)
    conditional_deny = {**deny, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    not_action = _statement("Allow", NotAction=["iam:*"], Resource="*")
    other = _statement("Allow", Action="sts:AssumeRole", Resource="arn:aws:iam::3:role/X")

    def verdict(*statements: dict[str, object]) -> Verdict:
        return evaluate([{"Statement": list(statements)}], "sts:AssumeRole", ROLE)

    assert verdict(allow) is Verdict.ALLOWED
    assert verdict(allow, deny) is Verdict.NOT_ALLOWED
    assert verdict(allow, conditional_deny) is Verdict.ALLOWED
    assert verdict(not_action) is Verdict.ALLOWED
    assert verdict(other) is Verdict.NOT_ALLOWED
    assert verdict() is Verdict.NOT_ALLOWED
    assert evaluate([{"Statement": allow}], "STS:ASSUMEROLE", ROLE) is Verdict.ALLOWED


def test_report_masks_secrets_and_exits_with_the_first_failure() -> None:
    register(SECRET_ID)
    checks = [
        Check("settings", "ok", "fine"),
        Check("external id", "warn", "hm", side="GitLab variables"),
        Check(
            "assume role", "FAIL", f"leaked {SECRET_ID}", side="OURTHING", fix="do it",
            exit_code=3, causes=(Cause(f"because {SECRET_ID}", "BUILD"),),
            policies=(("trust", {"Condition": SECRET_ID}),),
        ),
        Check("ecr token", "FAIL", "later", exit_code=4),
        report.skipped("repository"),
    ]  # fmt: skip
    assert report.exit_code(checks) == 3
    assert report.exit_code(checks[:2]) == 0
    text = report.as_text(checks)
    parsed = json.loads(report.as_json(checks))
    assert SECRET_ID not in text
    assert SECRET_ID not in json.dumps(parsed)
    assert parsed["ok"] is False
    assert parsed["exit_code"] == 3
    assert parsed["checks"][2]["side"] == "OURTHING"
    assert parsed["checks"][2]["causes"] == [{"cause": "because [MASKED]", "side": "BUILD"}]
    assert parsed["checks"][0]["side"] is None
    assert "  FAIL    assume role          [OURTHING] leaked [MASKED]" in text
    assert "1. [BUILD] because [MASKED]" in text
    assert text.endswith("2 check(s) failed; fix the first one first (exit 3)\n")


def test_bad_settings_stop_before_any_aws_call(capsys: pytest.CaptureFixture[str]) -> None:
    # Unit tests block the network: any AWS call would fail as unreachable, not as below.
    code = main(["doctor", "--json"], env={"XACCT_EXTERNAL_ID": SECRET_ID + " "})
    out = capsys.readouterr()
    parsed = json.loads(out.out)
    assert code == 2
    assert [c["status"] for c in parsed["checks"]] == ["FAIL", "FAIL"] + ["skipped"] * 6
    assert SECRET_ID not in out.out + out.err
