"""`gitlab-xacct doctor` names the cause and the side of each misconfiguration, set up for real
on moto in auth mode (tests/standins/doctor_worlds.py) with the local registry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import CLI
from tests.standins.aws_world import ChainWorld, build_chain_world
from tests.standins.doctor_worlds import (
    BUILD_ACCOUNT,
    OURTHING_ACCOUNT,
    REPOSITORY,
    DoctorWorld,
    build_doctor_world,
    role_arn,
)
from tests.standins.faultproxy import FaultProxy, aws_json_error, aws_query_error
from tests.standins.servers import MotoServer, Registry, free_port, start_moto
from tests.standins.token_issuer import TokenIssuer, TokenRegistry, start_token_registry

EXTERNAL_ID = "sentinel-doctor-ExtId-3b9e17c4"
NAMES = [
    "settings",
    "external id",
    "base identity",
    "assume role",
    "ecr token",
    "repository",
    "registry reachable",
    "push permission",
]


@pytest.fixture(scope="module")
def doctor_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with start_moto(tmp_path_factory.mktemp("doctor-moto")) as server:
        yield server


@pytest.fixture(scope="module")
def doctor_world(doctor_moto: MotoServer) -> DoctorWorld:
    return build_doctor_world(doctor_moto.url, external_id=EXTERNAL_ID)


@dataclass
class Doctor:
    world: DoctorWorld
    registry: Registry
    home: Path
    outputs: list[str] = field(default_factory=list)

    def env(self, **xacct: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            **self.world.keys_env(self.world.runner),
            "CI_PROJECT_ID": "4242",
            "CI_PIPELINE_ID": "1001",
            "CI_JOB_ID": "90001",
            "XACCT_ROLE_ARN": role_arn("OurThingBuildRole"),
            "XACCT_EXTERNAL_ID": EXTERNAL_ID,
            "XACCT_REPOSITORY": REPOSITORY,
            "XACCT_REGISTRY_ENDPOINT": self.registry.url,
            **xacct,
        }

    def run(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CLI, "doctor", *args], env=env, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        self.outputs += [result.stdout, result.stderr]
        return result

    def report(self, env: dict[str, str]) -> tuple[int, dict[str, dict[str, Any]]]:
        """Exit code and the --json report's checks by name (all eight, in order)."""
        result = self.run(env, "--json")
        assert result.stdout, result.stderr
        parsed = json.loads(result.stdout)
        assert [c["name"] for c in parsed["checks"]] == NAMES
        assert parsed["exit_code"] == result.returncode
        assert parsed["ok"] is (result.returncode == 0)
        return result.returncode, {c["name"]: c for c in parsed["checks"]}


@pytest.fixture
def doctor(doctor_world: DoctorWorld, registry: Registry, tmp_path: Path) -> Iterator[Doctor]:
    doctor = Doctor(doctor_world, registry, tmp_path)
    yield doctor
    secrets = [
        EXTERNAL_ID,
        doctor_world.runner.secret_access_key,
        doctor_world.no_assume.secret_access_key,
        doctor_world.blind.secret_access_key,
        registry.password,
    ]
    for text in doctor.outputs:
        for secret in secrets:
            assert secret not in text, "a secret reached the output"


def storage_files(registry: Registry) -> set[str]:
    """Files under the registry's storage, without the hash state distribution 2.8 writes
    after a cancelled upload (distribution/distribution#4524): no data, no startedat, so the
    registry knows no upload there (the doctor checks that with a GET: 404)."""
    root = registry.log_path.parent / "registry-data"
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    return {f for f in files if not re.search(r"/_uploads/[^/]+/hashstates/", f)}


def failed_after(checks: dict[str, dict[str, Any]], name: str) -> None:
    """`name` is the first failure; everything before passed (or warned), everything after
    was skipped."""
    position = NAMES.index(name)
    assert checks[name]["status"] == "FAIL"
    assert all(checks[n]["status"] in ("ok", "warn") for n in NAMES[:position])
    assert all(checks[n]["status"] == "skipped" for n in NAMES[position + 1 :])


def test_a_correct_setup_passes_every_check_and_leaves_nothing_behind(doctor: Doctor) -> None:
    before = storage_files(doctor.registry)

    code, checks = doctor.report(doctor.env())

    assert code == 0, checks
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert f"user/gitlab-runner (account {BUILD_ACCOUNT}" in checks["base identity"]["detail"]
    assert "assumed-role/OurThingBuildRole/" in checks["assume role"]["detail"]
    assert "probe upload started and cancelled" in checks["push permission"]["detail"]
    left = storage_files(doctor.registry) - before
    assert not left, f"the probe left {sorted(left)}"
    assert not [f for f in left if "/blobs/" in f or f.endswith(("/data", "/startedat"))]


def test_the_text_report_is_one_line_per_check(doctor: Doctor) -> None:
    result = doctor.run(doctor.env())
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "gitlab-xacct doctor"
    for line, name in zip(lines[1:], NAMES, strict=False):
        assert line.split()[0] == "ok"
        assert name in line
    assert lines[-1] == "every check passed"
    assert "Traceback" not in result.stderr


def test_wrong_external_id(doctor: Doctor) -> None:
    code, checks = doctor.report(doctor.env(XACCT_EXTERNAL_ID="sentinel-wrong-ExtId-0000"))
    assert code == 3
    failed_after(checks, "assume role")
    check = checks["assume role"]
    assert "GitLab variables" in check["side"]
    assert check["causes"][0]["cause"].startswith("XACCT_EXTERNAL_ID differs from the sts:Ext")
    assert "sentinel-wrong-ExtId-0000" not in json.dumps(checks)
    trust = check["policies"][0]["document"]
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"AWS": [f"arn:aws:iam::{BUILD_ACCOUNT}:user/gitlab-runner"]}
    assert statement["Condition"] == {
        "StringEquals": {"sts:ExternalId": "<value of XACCT_EXTERNAL_ID>"}
    }
    build = check["policies"][1]["document"]
    assert build["Statement"][0]["Resource"] == [role_arn("OurThingBuildRole")]


def test_external_id_with_a_trailing_newline_is_named_before_any_aws_call(doctor: Doctor) -> None:
    code, checks = doctor.report(doctor.env(XACCT_EXTERNAL_ID=EXTERNAL_ID + "\n"))
    assert code == 2
    failed_after(checks, "external id")
    assert "trailing newline" in checks["external id"]["detail"]
    assert checks["external id"]["side"] == "GitLab variables"


def test_external_id_given_as_a_file_variable(doctor: Doctor) -> None:
    path = doctor.home / "XACCT_EXTERNAL_ID"
    path.write_text(EXTERNAL_ID + "\n")
    code, checks = doctor.report(doctor.env(XACCT_EXTERNAL_ID=str(path)))
    assert code == 2
    assert "type File" in checks["external id"]["detail"]
    assert "holds a usable External ID" in checks["external id"]["detail"]


def test_no_external_id_when_the_role_demands_one(doctor: Doctor) -> None:
    env = doctor.env()
    del env["XACCT_EXTERNAL_ID"]
    code, checks = doctor.report(env)
    assert code == 3
    assert checks["external id"]["status"] == "warn"
    failed_after(checks, "assume role")
    check = checks["assume role"]
    assert check["side"] == "GitLab variables"
    assert check["causes"][0]["cause"].startswith("no External ID is sent")


def test_caller_lacks_assume_role_in_build(doctor: Doctor) -> None:
    env = doctor.env(**doctor.world.keys_env(doctor.world.no_assume))
    code, checks = doctor.report(env)
    assert code == 3
    failed_after(checks, "assume role")
    check = checks["assume role"]
    assert check["side"] == "BUILD"
    assert [c["side"] for c in check["causes"]] == ["BUILD"]
    assert "user/no-assume does not allow sts:AssumeRole" in check["causes"][0]["cause"]


@pytest.mark.parametrize("variable", ["AWS_REGION", "XACCT_REGION"])
def test_caller_lacks_assume_role_with_the_region_from_another_variable(
    doctor: Doctor, variable: str
) -> None:
    """The region as the README and most jobs set it (not AWS_DEFAULT_REGION, the only one
    boto3 reads): the runner's own policies are still read, in that region's partition."""
    env = doctor.env(**doctor.world.keys_env(doctor.world.no_assume))
    del env["AWS_DEFAULT_REGION"]
    env[variable] = "us-east-1"
    code, checks = doctor.report(env)
    assert code == 3
    failed_after(checks, "assume role")
    check = checks["assume role"]
    assert check["side"] == "BUILD"
    assert [c["side"] for c in check["causes"]] == ["BUILD"]
    assert "user/no-assume does not allow sts:AssumeRole" in check["causes"][0]["cause"]


def test_a_refused_reading_of_the_runners_own_policies_is_said(doctor: Doctor) -> None:
    env = doctor.env(
        **doctor.world.keys_env(doctor.world.blind), XACCT_EXTERNAL_ID="sentinel-wrong-ExtId-0000"
    )
    code, checks = doctor.report(env)
    assert code == 3
    last = checks["assume role"]["causes"][-1]
    assert last["side"] == "BUILD"
    assert (
        "its policies could not be read to tell: iam:ListUserPolicies answered " in (last["cause"])
    )
    assert "AccessDenied" in last["cause"]


def test_role_does_not_exist(doctor: Doctor) -> None:
    code, checks = doctor.report(doctor.env(XACCT_ROLE_ARN=role_arn("OurThingBiuldRole")))
    assert code == 3
    failed_after(checks, "assume role")
    check = checks["assume role"]
    missing = [c for c in check["causes"] if "does not exist" in c["cause"]]
    assert missing
    assert "OURTHING" in missing[0]["side"]
    assert (
        f"role OurThingBiuldRole does not exist in account {OURTHING_ACCOUNT}"
        in (missing[0]["cause"])
    )
    # BUILD is ruled out: the runner may read its own policy, which allows the AssumeRole.
    assert all(c["side"] != "BUILD" for c in check["causes"])


def test_role_lacks_ecr_permissions(doctor: Doctor) -> None:
    code, checks = doctor.report(doctor.env(XACCT_ROLE_ARN=role_arn("NoEcrRole")))
    assert code == 4
    failed_after(checks, "ecr token")
    check = checks["ecr token"]
    assert check["side"] == "OURTHING"
    assert "ecr:GetAuthorizationToken" in check["detail"]
    statements = check["policies"][0]["document"]["Statement"]
    assert statements[0]["Action"] == "ecr:GetAuthorizationToken"
    assert statements[1]["Resource"] == [
        f"arn:aws:ecr:us-east-1:{OURTHING_ACCOUNT}:repository/{REPOSITORY}"
    ]


def test_missing_repository_and_creation_not_allowed(doctor: Doctor) -> None:
    code, checks = doctor.report(
        doctor.env(XACCT_REPOSITORY="team/missing", XACCT_CREATE_REPOSITORY="true")
    )
    assert code == 4
    failed_after(checks, "repository")
    check = checks["repository"]
    assert check["side"] == "OURTHING"
    assert "may not call ecr:CreateRepository" in check["detail"]
    assert not doctor.world.repository_exists("team/missing")


def test_missing_repository_that_the_role_could_create(doctor: Doctor) -> None:
    env = doctor.env(XACCT_REPOSITORY="team/new", XACCT_ROLE_ARN=role_arn("CreatorRole"))
    code, checks = doctor.report(env)
    assert code == 4
    assert checks["repository"]["side"] == "GitLab variables"
    assert "set XACCT_CREATE_REPOSITORY=true" in checks["repository"]["fix"]

    env["XACCT_CREATE_REPOSITORY"] = "true"
    code, checks = doctor.report(env)
    assert checks["repository"]["status"] == "ok", checks["repository"]
    assert "may create it" in checks["repository"]["detail"]
    assert not doctor.world.repository_exists("team/new")  # the probe created nothing


def test_wrong_region(doctor: Doctor) -> None:
    code, checks = doctor.report(doctor.env(XACCT_REGION="eu-west-1"))
    assert code == 4
    failed_after(checks, "repository")
    check = checks["repository"]
    assert check["side"] == "GitLab variables"
    assert "not in eu-west-1" in check["detail"]
    assert "exists in us-east-1" in check["detail"]
    assert check["fix"] == "set XACCT_REGION=us-east-1"


@pytest.mark.parametrize("role", ["AnyRegionRole", "OurThingBuildRole"])
def test_repository_in_another_region_with_no_hint(doctor: Doctor, role: str) -> None:
    """The most common mistake: XACCT_REGION=eu-west-1, the repository made in us-east-1 (where
    `aws ecr create-repository` puts it when nothing is configured), and nothing else in the job
    hints at us-east-1. AnyRegionRole may describe it everywhere (eu-west-1 answers "not
    found"); OurThingBuildRole only in us-east-1 (eu-west-1 answers AccessDenied)."""
    env = doctor.env(XACCT_REGION="eu-west-1", XACCT_ROLE_ARN=role_arn(role))
    del env["AWS_DEFAULT_REGION"]
    started = time.monotonic()
    code, checks = doctor.report(env)
    elapsed = time.monotonic() - started
    assert code == 4, checks
    failed_after(checks, "repository")
    check = checks["repository"]
    assert check["side"] == "GitLab variables"
    assert f"{REPOSITORY} is not in eu-west-1" in check["detail"]
    assert "exists in us-east-1" in check["detail"]
    assert check["fix"] == "set XACCT_REGION=us-east-1"
    assert "create" not in check["fix"]
    assert elapsed < 30, f"the look into every region took {elapsed:.1f} s"


def test_least_privilege_role_that_cannot_look_elsewhere(doctor: Doctor) -> None:
    """OurThingBuildRole may describe only in us-east-1: a repository missing there may still
    be in another region, and the doctor says it could not look, before any create."""
    code, checks = doctor.report(doctor.env(XACCT_REPOSITORY="team/elsewhere"))
    assert code == 4
    failed_after(checks, "repository")
    check = checks["repository"]
    assert "the doctor could not look for it in the other regions" in check["detail"]
    assert "refused or not enabled in 33" in check["detail"]
    assert check["fix"].startswith("find the region that holds team/elsewhere in account ")
    assert "set XACCT_REGION to it; only if none does:" in check["fix"]


def test_wrong_region_in_a_destination_entry_names_the_entry(doctor: Doctor) -> None:
    """The fix names the field of the entry to change, as push's messages do, not the variable
    the entry replaces (which the job may not even set)."""
    role = role_arn("OurThingBuildRole")
    env = doctor.env(
        XACCT_DESTINATIONS=f"{role}|us-east-1|{REPOSITORY}\n{role}|eu-west-1|{REPOSITORY}"
    )
    for name in ("XACCT_ROLE_ARN", "XACCT_REPOSITORY", "XACCT_REGION"):
        env.pop(name, None)

    result = doctor.run(env, "--json")

    assert result.returncode == 4, result.stdout + result.stderr
    first, second = json.loads(result.stdout)["destinations"]
    assert first["ok"]
    check = next(c for c in second["checks"] if c["name"] == "repository")
    assert "not in eu-west-1" in check["detail"]
    assert check["fix"] == "set the region in XACCT_DESTINATIONS entry 2 to us-east-1"
    assert "XACCT_REGION" not in json.dumps(second)


def test_chained_session_asking_for_more_than_an_hour(doctor: Doctor) -> None:
    env = doctor.env(**doctor.world.instance_role_env(), XACCT_DURATION_SECONDS="7200")
    code, checks = doctor.report(env)
    assert code == 2
    failed_after(checks, "base identity")
    check = checks["base identity"]
    assert "assumed-role/RunnerInstanceRole/" in check["detail"]
    assert "role chaining" in check["detail"]
    assert check["side"] == "GitLab variables"
    assert check["fix"] == "set XACCT_DURATION_SECONDS to 3600 or less"

    env["XACCT_DURATION_SECONDS"] = "3600"
    code, checks = doctor.report(env)
    assert code == 0, checks


def test_duration_over_the_roles_maximum(doctor: Doctor) -> None:
    code, checks = doctor.report(doctor.env(XACCT_DURATION_SECONDS="10800"))
    assert code == 3
    failed_after(checks, "assume role")
    check = checks["assume role"]
    assert "MaxSessionDuration" in check["detail"]
    assert check["side"] == "GitLab variables or OURTHING"
    assert "raise the MaxSessionDuration of role OurThingBuildRole" in check["fix"]


def test_tag_session_missing_with_tags_on(doctor: Doctor) -> None:
    code, checks = doctor.report(doctor.env(XACCT_SESSION_TAGS="true"))
    assert code == 3
    failed_after(checks, "assume role")
    check = checks["assume role"]
    assert check["side"] == "OURTHING"
    assert len(check["causes"]) == 1
    assert "does not allow sts:TagSession" in check["causes"][0]["cause"]
    trust = check["policies"][0]["document"]
    assert trust["Statement"][0]["Action"] == ["sts:AssumeRole", "sts:TagSession"]


def test_failure_text_names_side_causes_and_policies(doctor: Doctor) -> None:
    result = doctor.run(doctor.env(XACCT_ROLE_ARN=role_arn("OurThingBiuldRole")))
    assert result.returncode == 3
    out = result.stdout
    assert "  FAIL    assume role          [" in out
    assert "likely causes, most likely first:" in out
    assert f'"arn:aws:iam::{OURTHING_ACCOUNT}:role/OurThingBiuldRole"' in out
    assert "skipped ecr token" in " ".join(out.split())
    assert "Traceback" not in result.stderr


def test_unreachable_registry_is_exit_5(doctor: Doctor) -> None:
    code, checks = doctor.report(
        doctor.env(XACCT_REGISTRY_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    )
    assert code == 5
    failed_after(checks, "registry reachable")
    assert "could not reach the registry" in checks["registry reachable"]["detail"]
    assert "BUILD" in checks["registry reachable"]["side"]


# ---- AWS's own reason (newer AccessDenied messages), through the fault proxy --------------

RUNNER = f"arn:aws:iam::{BUILD_ACCOUNT}:user/gitlab-runner"
SCP_ARN = "arn:aws:organizations::999999999999:policy/o-abc123/service_control_policy/p-def456"


@pytest.mark.parametrize(
    ("tail", "side", "fix"),
    [
        (f"with an explicit deny in a service control policy: {SCP_ARN}",
         "the organization's administrators", "ask the organization's administrators"),
        ("because no permissions boundary allows the sts:AssumeRole action",
         "whoever set the permissions boundary", "whoever set the permissions boundary of "),
        ("because no identity-based policy allows the sts:AssumeRole action", "BUILD",
         "allow sts:AssumeRole on "),
    ],
)  # fmt: skip
def test_aws_names_the_policy_that_refused_assume_role(
    doctor: Doctor, tail: str, side: str, fix: str
) -> None:
    """moto never words its denials so: the proxy answers the AssumeRole as AWS would. The
    runner's own policy allows the AssumeRole, so without AWS's words BUILD would be ruled
    out; AWS's reason goes first, quoted, with its own side."""
    message = f"User: {RUNNER} is not authorized to perform: sts:AssumeRole on resource: " + (
        f"{role_arn('OurThingBuildRole')} {tail}"
    )
    with FaultProxy(doctor.world.endpoint_url) as aws:
        aws.fail_next(1, status=403, body=aws_query_error("AccessDenied", message),
                      action="AssumeRole")  # fmt: skip
        code, checks = doctor.report(doctor.env(AWS_ENDPOINT_URL=aws.url))
    assert code == 3
    failed_after(checks, "assume role")
    check = checks["assume role"]
    first = check["causes"][0]
    assert (check["side"], first["side"]) == (side, side)
    assert first["cause"].startswith(f'AWS says "{tail}": ')
    assert check["fix"].startswith(fix)
    assert len(check["causes"]) > 1  # the others follow, ranked as before
    assert "AWS names the kind of policy that refused" in check["detail"]


def ecr_denied(
    doctor: Doctor, action: str, resource: str, reason: str, **xacct: str
) -> tuple[int, dict[str, Any]]:
    """The doctor's report when ECR refuses the role's `action` once, in AWS's own words."""
    message = (
        f"User: arn:aws:sts::{OURTHING_ACCOUNT}:assumed-role/OurThingBuildRole/s is not "
        f"authorized to perform: ecr:{action} on resource: {resource} {reason}"
    )
    with FaultProxy(doctor.world.endpoint_url) as aws:
        aws.fail_next(1, status=400, body=aws_json_error("AccessDeniedException", message),
                      action=action)  # fmt: skip
        return doctor.report(doctor.env(AWS_ENDPOINT_URL=aws.url, **xacct))


def test_an_scp_refusing_the_ecr_token_is_the_organizations(doctor: Doctor) -> None:
    code, checks = ecr_denied(
        doctor, "GetAuthorizationToken", "*",
        f"with an explicit deny in a service control policy: {SCP_ARN}",
    )  # fmt: skip
    assert code == 4
    failed_after(checks, "ecr token")
    check = checks["ecr token"]
    assert check["side"] == "the organization's administrators"
    assert f"AWS Organization of account {OURTHING_ACCOUNT}" in check["causes"][0]["cause"]
    assert SCP_ARN in check["causes"][0]["cause"]


def test_a_boundary_refusing_describe_repositories_is_its_setters(doctor: Doctor) -> None:
    _, checks = ecr_denied(
        doctor, "DescribeRepositories",
        f"arn:aws:ecr:us-east-1:{OURTHING_ACCOUNT}:repository/team/app",
        "because no permissions boundary allows the ecr:DescribeRepositories action",
        XACCT_CREATE_REPOSITORY="true",
    )  # fmt: skip
    check = checks["repository"]
    assert check["status"] == "FAIL"
    assert check["side"] == "whoever set the permissions boundary"
    cause = check["causes"][0]["cause"]
    assert cause.startswith('AWS says "because no permissions boundary allows')
    assert "ecr:DescribeRepositories" in check["fix"]


# ---- GitLab OIDC and a role chain (tests/standins/aws_world.py build_chain_world) ---------

CHAIN_IDS = ("sentinel-doctor-hub-ExtId-77", "sentinel-doctor-target-ExtId-88")


@pytest.fixture(scope="module")
def chain_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainWorld]:
    with start_moto(tmp_path_factory.mktemp("doctor-chain-moto")) as server:
        yield build_chain_world(server.url, external_ids=CHAIN_IDS)


def chain_env(world: ChainWorld, registry: Registry, home: Path, **xacct: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_DEFAULT_REGION": world.region,
        "AWS_ENDPOINT_URL": world.endpoint_url,
        "XACCT_WEB_IDENTITY_ROLE_ARN": world.web_identity_role_arn,
        "XACCT_ID_TOKEN": world.id_token(),
        "XACCT_ROLE_CHAIN": f"{world.hub_role_arn}|{CHAIN_IDS[0]}",
        "XACCT_ROLE_ARN": world.ourthing_role_arn,
        "XACCT_EXTERNAL_ID": CHAIN_IDS[1],
        "XACCT_REPOSITORY": REPOSITORY,
        "XACCT_REGISTRY_ENDPOINT": registry.url,
        **xacct,
    }


def test_gitlab_oidc_and_a_chain(
    doctor: Doctor, chain_world: ChainWorld, registry: Registry, tmp_path: Path
) -> None:
    env = chain_env(chain_world, registry, tmp_path)
    code, checks = doctor.report(env)
    assert code == 0, checks
    assert "assumed-role/GitLabOidcRole/" in checks["base identity"]["detail"]
    assert "role chaining" in checks["base identity"]["detail"]
    assert (
        "(through arn:aws:sts::333333333333:assumed-role/HubRole/"
        in (checks["assume role"]["detail"])
    )

    refused = {**env, "XACCT_ID_TOKEN": chain_world.id_token(ref="v1", ref_type="tag")}
    code, checks = doctor.report(refused)
    assert code == 3
    failed_after(checks, "base identity")
    assert checks["base identity"]["side"] == "BUILD"
    assert "ref_type:tag:ref:v1" in checks["base identity"]["detail"]

    env["XACCT_ROLE_CHAIN"] = f"{chain_world.hub_role_arn}|sentinel-wrong-hub-ExtId"
    code, checks = doctor.report(env)
    assert code == 3
    failed_after(checks, "assume role")
    assert "AccessDenied at hop 1 of 2 (XACCT_ROLE_CHAIN hop 1)" in checks["assume role"]["detail"]
    first = checks["assume role"]["causes"][0]["cause"]
    assert first.startswith("the External ID after '|' in XACCT_ROLE_CHAIN hop 1 differs")

    env["XACCT_ROLE_CHAIN"] = f"{chain_world.hub_role_arn}|{CHAIN_IDS[0]}"
    env["XACCT_DURATION_SECONDS"] = "7200"
    code, checks = doctor.report(env)
    assert code == 2
    # Known from the variables alone (OIDC, then a chain): the settings check fails, the
    # External ID is still looked at, and nothing calls AWS.
    assert checks["settings"]["status"] == "FAIL"
    assert all(checks[n]["status"] == "skipped" for n in NAMES[NAMES.index("base identity") :])
    assert "role chaining" in checks["settings"]["detail"]
    assert checks["settings"]["side"] == "GitLab variables"
    doctor.outputs += [json.dumps(checks)]
    for secret in (*CHAIN_IDS, chain_world.id_token()[:40]):
        assert all(secret not in text for text in doctor.outputs)


# ---- a registry that decides per action (distribution's token auth) ------------------------


@dataclass
class Granting:
    """A token-auth docker-registry whose token service grants only `allowed` actions."""

    registry: TokenRegistry
    allowed: list[str]


@pytest.fixture(scope="module")
def granting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Granting]:
    allowed: list[str] = []

    def grant(user: str | None, repository: str, asked: list[str]) -> list[str]:
        return [a for a in asked if user == "AWS" and a in allowed]

    issuer = TokenIssuer(users={"AWS": "222222222222-auth-token"}, grant=grant)
    with issuer, start_token_registry(tmp_path_factory.mktemp("token-registry"), issuer) as reg:
        yield Granting(reg, allowed)


@pytest.mark.parametrize(
    ("actions", "code", "status"),
    [(["pull", "push", "delete"], 0, "ok"), (["pull", "push"], 0, "warn"), (["pull"], 4, "FAIL")],
)
def test_push_probe_against_a_registry_that_grants_per_action(
    doctor: Doctor, granting: Granting, actions: list[str], code: int, status: str
) -> None:
    granting.allowed[:] = actions
    result, checks = doctor.report(doctor.env(XACCT_REGISTRY_ENDPOINT=granting.registry.url))
    assert result == code, checks
    check = checks["push permission"]
    assert check["status"] == status
    if status == "warn":
        assert "expires on its own" in check["detail"]
    if status == "FAIL":
        assert check["side"] == "OURTHING"
        assert "ecr:InitiateLayerUpload" in check["fix"]
    issued = granting.registry.issuer.issued
    assert issued
    for text in doctor.outputs:  # registry tokens are secrets too
        assert not any(token in text for token in issued)


# ---- several destinations (XACCT_DESTINATIONS) ------------------------------------------


def test_each_destination_gets_its_own_checklist(doctor: Doctor) -> None:
    """A fan-out job is diagnosed entry by entry: the first destination passes, the second,
    with a wrong External ID of its own, fails at assume role; the exit code is the first
    failure's and the entry's External ID is never printed."""
    wrong = "sentinel-doctor-entry-ExtId-58c1"
    role = role_arn("OurThingBuildRole")
    env = doctor.env(
        XACCT_DESTINATIONS=f"{role}|us-east-1|{REPOSITORY}\n{role}|us-east-1|{REPOSITORY}|{wrong}"
    )
    for name in ("XACCT_ROLE_ARN", "XACCT_REPOSITORY"):
        env.pop(name, None)  # the entries replace them, as for push

    result = doctor.run(env, "--json")
    assert result.returncode == 3, result.stdout + result.stderr
    parsed = json.loads(result.stdout)
    first, second = parsed["destinations"]
    assert (parsed["ok"], parsed["exit_code"]) == (False, 3)
    assert first["destination"] == "XACCT_DESTINATIONS entry 1"
    assert first["where"] == f"{role} us-east-1 {REPOSITORY}"
    assert (first["ok"], [c["status"] for c in first["checks"]]) == (True, ["ok"] * len(NAMES))
    statuses = {c["name"]: c["status"] for c in second["checks"]}
    assert statuses["assume role"] == "FAIL"
    assert second["exit_code"] == 3
    assume = next(c for c in second["checks"] if c["name"] == "assume role")
    assert assume["causes"][0]["cause"].startswith(
        "the External ID in XACCT_DESTINATIONS entry 2 differs from the sts:ExternalId"
    )

    text = doctor.run(env)
    assert text.returncode == 3
    assert "== destination 1 of 2 (XACCT_DESTINATIONS entry 1)" in text.stdout
    assert "== destination 2 of 2 (XACCT_DESTINATIONS entry 2)" in text.stdout
    assert "1 of 2 destination(s) failed: XACCT_DESTINATIONS entry 2" in text.stdout
    assert all(wrong not in output for output in doctor.outputs)


def test_an_unreadable_destination_entry_fails_the_settings_check(doctor: Doctor) -> None:
    env = doctor.env(XACCT_DESTINATIONS="arn:aws:iam::222222222222:role/R|us-east-1")
    result = doctor.run(env, "--json")
    assert result.returncode == 2
    (only,) = json.loads(result.stdout)["destinations"]
    settings = only["checks"][0]
    assert (settings["name"], settings["status"]) == ("settings", "FAIL")
    assert "XACCT_DESTINATIONS entry 1: expected ROLE_ARN|REGION|REPOSITORY" in settings["detail"]
