"""`bootstrap role` and `bootstrap build-policy` on fresh stand-ins, moto's auth on throughout.

The accounts start with administrators only: an OURTHING admin and a BUILD admin (IAM users
allowed everything), and the runner's role in BUILD (assumed by the runner host's keys, as an
instance profile would be) with no policy at all. Everything else is made by the commands.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.imagefactory import random_layer, write_oci_layout
from tests.integration.conftest import CLI
from tests.standins.aws_world import (
    AccessKey,
    boto_session,
    create_user,
    enable_auth,
    gitlab_subject,
    make_gitlab_id_token,
    policy,
    session_tags,
    setup_session,
    unsigned_sts,
)
from tests.standins.faultproxy import FaultProxy
from tests.standins.servers import MotoServer, Registry, start_moto

BUILD = "111111111111"
OURTHING = "222222222222"  # the registry stand-in's htpasswd holds this account's ECR token
REGION = "us-east-1"
RUNNER_ROLE = f"arn:aws:iam::{BUILD}:role/gitlab-runner"
GITLAB_HOST = "gitlab.example.test"
SENTINEL = "sentinelXacctBootstrap0123456789"  # an External ID given by the admin
EVERYTHING = policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
READ_ONLY_IAM = {
    "GetCallerIdentity",
    "GetRole",
    "ListRolePolicies",
    "GetRolePolicy",
    "ListAttachedRolePolicies",
}


@dataclass
class Fresh:
    moto: MotoServer
    ourthing_admin: AccessKey
    build_admin: AccessKey
    runner_host: AccessKey
    outputs: list[str] = field(default_factory=list)

    def env(self, key: AccessKey, endpoint: str | None = None, **extra: str) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": "/nonexistent",
            "AWS_ACCESS_KEY_ID": key.access_key_id,
            "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint or self.moto.url,
            **extra,
        }

    def cli(
        self, *argv: str, key: AccessKey, endpoint: str | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CLI, *argv],
            env=self.env(key, endpoint, **extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        return result

    def role(self, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("bootstrap", "role", *argv, key=self.ourthing_admin, **extra)

    def iam(self, key: AccessKey) -> object:
        session = boto_session(key.access_key_id, key.secret_access_key, region=REGION)
        return session.client("iam", endpoint_url=self.moto.url)

    def ourthing_iam(self) -> object:
        return self.iam(self.ourthing_admin)

    def runner_env(self, **extra: str) -> dict[str, str]:
        """The GitLab job's environment: the runner role's session, as an instance role gives."""
        session = boto_session(
            self.runner_host.access_key_id, self.runner_host.secret_access_key, region=REGION
        )
        sts = session.client("sts", endpoint_url=self.moto.url)
        creds = sts.assume_role(RoleArn=RUNNER_ROLE, RoleSessionName="i-0123456789")["Credentials"]
        return {
            "PATH": "/usr/bin:/bin",
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.moto.url,
            "CI_PROJECT_ID": "4242",
            "CI_PIPELINE_ID": "1001",
            "CI_JOB_ID": "90001",
            **extra,
        }


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    workdir = tmp_path_factory.mktemp("bootstrap-moto")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # AmazonEC2ContainerRegistry*
        server = start_moto(workdir)
    with server:
        build = setup_session(server.url, BUILD, REGION)
        build_admin = create_user(build, server.url, "build-admin", EVERYTHING)
        runner_host = create_user(
            build,
            server.url,
            "runner-host",
            policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": RUNNER_ROLE}),
        )
        build.client("iam", endpoint_url=server.url).create_role(
            RoleName="gitlab-runner",
            AssumeRolePolicyDocument=policy(
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{BUILD}:user/runner-host"},
                    "Action": "sts:AssumeRole",
                }
            ),
        )
        ourthing = setup_session(server.url, OURTHING, REGION)
        ourthing_admin = create_user(ourthing, server.url, "ourthing-admin", EVERYTHING)
        ourthing.client("iam", endpoint_url=server.url).create_open_id_connect_provider(
            Url=f"https://{GITLAB_HOST}", ClientIDList=["sts.amazonaws.com"],
            ThumbprintList=["0" * 40],
        )  # fmt: skip
        enable_auth(server.url)
        fresh = Fresh(server, ourthing_admin, build_admin, runner_host)
        yield fresh
        for text in fresh.outputs:
            assert SENTINEL not in text, "the given External ID reached an output"


def push(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "push"], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def pushed_session_arn(log: str) -> str:
    match = re.search(r"assumed (arn:aws:sts::\d{12}:assumed-role/\S+)", log)
    assert match, log
    return match[1]


def external_id_of(stdout: str) -> str:
    match = re.search(r"^External ID \(shown once; [^)]*\): (\S+)$", stdout, re.MULTILINE)
    assert match, stdout
    return match[1]


def test_bootstrap_then_push_works_first_time(
    fresh: Fresh, registry: Registry, tmp_path: Path
) -> None:
    role_arn = f"arn:aws:iam::{OURTHING}:role/gitlab-xacct-push"
    created = fresh.role(
        "--build-principal", RUNNER_ROLE, "--repository", "team/*", "--allow-create",
        "--region", REGION, "--tag-session",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert f"role {role_arn}: created" in created.stdout
    external_id = external_id_of(created.stdout)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", external_id)
    assert external_id not in created.stderr  # only on stdout, once
    assert created.stdout.count(external_id) == 1
    assert f"--role-arn {role_arn} --attach-to-role gitlab-runner --tag-session" in created.stdout

    attached = fresh.cli(
        "bootstrap", "build-policy", "--role-arn", role_arn, "--attach-to-role", "gitlab-runner",
        "--tag-session", key=fresh.build_admin,
    )  # fmt: skip
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout.strip().endswith("on role gitlab-runner: created")

    layout = tmp_path / "layout"
    info = write_oci_layout(layout, [random_layer(4096, seed=61)], ref="boot")
    job = fresh.runner_env(
        XACCT_ROLE_ARN=role_arn,
        XACCT_EXTERNAL_ID=external_id,
        XACCT_REGION=REGION,
        XACCT_REGISTRY_ENDPOINT=registry.url,
        XACCT_SOURCE=f"oci:{layout}:boot",
        XACCT_REPOSITORY="team/boot",
        XACCT_CREATE_REPOSITORY="true",
        XACCT_TAGS="first",
        XACCT_SESSION_TAGS="true",  # sts:TagSession, granted on both sides by the two commands
        CI_PROJECT_PATH="team/boot",
        HOME=str(tmp_path),
    )
    pushed = push(job)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == f"{registry.host}/team/boot:first@{info.manifest_digest}"
    assert "assumed-role/gitlab-xacct-push/" in pushed.stderr
    assert external_id not in pushed.stdout + pushed.stderr
    creds = f"{registry.username}:{registry.password}"
    seen = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--creds", creds,
         f"docker://{registry.host}/team/boot:first"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout)["Digest"] == info.manifest_digest
    session = session_tags(fresh.moto.url, pushed_session_arn(pushed.stderr))
    assert session.tags["GitLabProject"] == "team/boot"

    # Least privilege, for real: the trust wants the External ID, the policy the pattern.
    wrong = push({**job, "XACCT_EXTERNAL_ID": "x" * 32})
    assert wrong.returncode == 3, wrong.stderr
    outside = push({**job, "XACCT_REPOSITORY": "other/app"})
    assert outside.returncode == 4, outside.stderr
    assert "not authorized to perform: ecr:DescribeRepositories" in outside.stderr


def test_second_run_changes_nothing_and_says_so(fresh: Fresh) -> None:
    args = (
        "--role-name", "twice", "--build-account", BUILD,
        "--repository", "team/app", "--repository", "team/web", "--tag-session",
        "--region", REGION,
    )  # fmt: skip
    first = fresh.role(*args)
    assert first.returncode == 0, first.stderr
    assert "--build-account trusts every principal" in first.stderr
    iam = fresh.ourthing_iam()
    before = (
        iam.get_role(RoleName="twice")["Role"],  # type: ignore[attr-defined]
        iam.get_role_policy(RoleName="twice", PolicyName="gitlab-xacct-ecr-push"),  # type: ignore[attr-defined]
    )

    second = fresh.role(*args)

    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [f"role arn:aws:iam::{OURTHING}:role/twice: unchanged"]
    assert "kept the role's current External ID (not shown)" in second.stderr
    after = (
        iam.get_role(RoleName="twice")["Role"],  # type: ignore[attr-defined]
        iam.get_role_policy(RoleName="twice", PolicyName="gitlab-xacct-ecr-push"),  # type: ignore[attr-defined]
    )
    for b, a in zip(before, after, strict=True):
        b.pop("ResponseMetadata", None)
        a.pop("ResponseMetadata", None)
    assert before == after
    assert fresh.role(*args, "--check").returncode == 0

    target = f"arn:aws:iam::{OURTHING}:role/twice"
    policy_args = ("bootstrap", "build-policy", "--role-arn", target, "--attach-to-role",
                   "gitlab-runner", "--tag-session")  # fmt: skip
    assert fresh.cli(*policy_args, key=fresh.build_admin).stdout.endswith(": created\n")
    again = fresh.cli(*policy_args, key=fresh.build_admin)
    assert again.returncode == 0, again.stderr
    assert again.stdout.endswith(": unchanged\n")


def _drift_principal(iam: object, name: str) -> None:
    document = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]  # type: ignore[attr-defined]
    document["Statement"][0]["Principal"] = {"AWS": f"arn:aws:iam::{BUILD}:role/someone-else"}
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(document))  # type: ignore[attr-defined]


def _drift_external_id(iam: object, name: str) -> None:
    document = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]  # type: ignore[attr-defined]
    document["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] = "rotatedByHand12345"
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(document))  # type: ignore[attr-defined]


def _drift_tag_session(iam: object, name: str) -> None:
    document = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]  # type: ignore[attr-defined]
    document["Statement"][0]["Action"] = "sts:AssumeRole"
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(document))  # type: ignore[attr-defined]


def _drift_repository(iam: object, name: str) -> None:
    document = iam.get_role_policy(RoleName=name, PolicyName="gitlab-xacct-ecr-push")[  # type: ignore[attr-defined]
        "PolicyDocument"
    ]
    document["Statement"][1]["Resource"] = [
        r for r in document["Statement"][1]["Resource"] if not r.endswith("/team/web")
    ]
    iam.put_role_policy(  # type: ignore[attr-defined]
        RoleName=name, PolicyName="gitlab-xacct-ecr-push", PolicyDocument=json.dumps(document)
    )


def _drift_missing(iam: object, name: str) -> None:
    iam.delete_role_policy(RoleName=name, PolicyName="gitlab-xacct-ecr-push")  # type: ignore[attr-defined]
    iam.delete_role(RoleName=name)  # type: ignore[attr-defined]


DRIFTS = {
    "principal": (_drift_principal, f"trust: {RUNNER_ROLE} is not allowed: sts:AssumeRole"),
    "external-id": (
        _drift_external_id,
        "trust: the External ID in the role's trust policy differs from the one given "
        "(neither is shown)",
    ),
    "tag-session": (_drift_tag_session, f"trust: {RUNNER_ROLE} is not allowed: sts:TagSession"),
    "repository": (
        _drift_repository,
        f"permissions: arn:aws:ecr:{REGION}:{OURTHING}:repository/team/web is not allowed: "
        "ecr:BatchCheckLayerAvailability",
    ),
    "role-missing": (
        _drift_missing,
        f"role: arn:aws:iam::{OURTHING}:role/drift-role-missing does not exist",
    ),
}


@pytest.mark.parametrize("kind", sorted(DRIFTS))
def test_check_names_each_drift(fresh: Fresh, kind: str) -> None:
    drift, expected = DRIFTS[kind]
    name = f"drift-{kind}"
    args = (
        "--role-name", name, "--build-principal", RUNNER_ROLE, "--tag-session",
        "--repository", "team/app", "--repository", "team/web", "--region", REGION,
    )  # fmt: skip
    made = fresh.role(*args, XACCT_EXTERNAL_ID=SENTINEL)
    assert made.returncode == 0, made.stderr
    assert "External ID (shown once" not in made.stdout  # given, so never printed
    clean = fresh.role(*args, "--check", XACCT_EXTERNAL_ID=SENTINEL)
    assert (clean.returncode, clean.stdout) == (
        0,
        f"role arn:aws:iam::{OURTHING}:role/{name}: matches\n",
    )

    drift(fresh.ourthing_iam(), name)

    checked = fresh.role(*args, "--check", XACCT_EXTERNAL_ID=SENTINEL)
    assert checked.returncode == 3, checked.stderr
    assert expected in checked.stdout, checked.stdout
    assert "rotatedByHand12345" not in checked.stdout + checked.stderr
    assert "difference(s)" in checked.stderr

    fixed = fresh.role(*args, XACCT_EXTERNAL_ID=SENTINEL)
    assert fixed.returncode == 0, fixed.stderr
    outcome = "created" if drift is _drift_missing else "updated"
    assert f"role arn:aws:iam::{OURTHING}:role/{name}: {outcome}" in fixed.stdout
    assert fresh.role(*args, "--check", XACCT_EXTERNAL_ID=SENTINEL).returncode == 0


def test_check_names_a_detached_managed_policy(fresh: Fresh) -> None:
    args = ("--role-name", "managed", "--build-principal", RUNNER_ROLE,
            "--managed-policy", "AmazonEC2ContainerRegistryPowerUser")  # fmt: skip
    made = fresh.role(*args, "--external-id", SENTINEL)
    assert made.returncode == 0, made.stderr
    arn = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser"
    assert f"attached the managed policy {arn}" in made.stderr
    fresh.ourthing_iam().detach_role_policy(RoleName="managed", PolicyArn=arn)  # type: ignore[attr-defined]

    checked = fresh.role(*args, "--check", "--external-id", SENTINEL)

    assert checked.returncode == 3, checked.stderr
    assert checked.stdout == f"permissions: the managed policy {arn} is not attached\n"


def test_dry_run_changes_nothing(fresh: Fresh) -> None:
    args = ("--role-name", "dry", "--build-principal", RUNNER_ROLE, "--repository", "team/app",
            "--region", REGION)  # fmt: skip
    with FaultProxy(fresh.moto.url) as proxy:
        planned = fresh.cli(
            "bootstrap", "role", *args, "--dry-run", key=fresh.ourthing_admin,
            endpoint=proxy.url, XACCT_EXTERNAL_ID=SENTINEL,
        )  # fmt: skip
        assert planned.returncode == 0, planned.stderr
        assert set(proxy.actions) <= READ_ONLY_IAM, proxy.actions
    document = json.loads(planned.stdout)
    assert document["action"] == "create"
    assert document["changes"] == [f"role: arn:aws:iam::{OURTHING}:role/dry does not exist"]
    condition = document["trust_policy"]["Statement"][0]["Condition"]
    assert condition == {"StringEquals": {"sts:ExternalId": "<value of XACCT_EXTERNAL_ID>"}}
    assert document["inline_policy"]["Statement"][1]["Resource"] == [
        f"arn:aws:ecr:{REGION}:{OURTHING}:repository/team/app"
    ]
    iam = fresh.ourthing_iam()
    with pytest.raises(iam.exceptions.NoSuchEntityException):  # type: ignore[attr-defined]
        iam.get_role(RoleName="dry")  # type: ignore[attr-defined]

    # On an existing role: the changes are listed, the role's External ID is not shown.
    made = fresh.role(*args)
    assert made.returncode == 0, made.stderr
    generated = external_id_of(made.stdout)
    with FaultProxy(fresh.moto.url) as proxy:
        planned = fresh.cli(
            "bootstrap", "role", *args, "--tag-session", "--dry-run", key=fresh.ourthing_admin,
            endpoint=proxy.url,
        )  # fmt: skip
        assert planned.returncode == 0, planned.stderr
        assert set(proxy.actions) <= READ_ONLY_IAM, proxy.actions
    document = json.loads(planned.stdout)
    assert document["action"] == "update"
    assert document["changes"] == [f"trust: {RUNNER_ROLE} is not allowed: sts:TagSession"]
    assert generated not in planned.stdout + planned.stderr
    assert fresh.role(*args, "--check").returncode == 0  # still as first made


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--build-account", "12345"), "--build-account"),
        (("--build-principal", "arn:aws:s3:::bucket"), "--build-principal"),
        (("--build-principal", RUNNER_ROLE, "--role-name", "bad name"), "--role-name"),
        (("--build-principal", RUNNER_ROLE, "--repository", "Team/App"), "--repository"),
        (("--build-principal", RUNNER_ROLE, "--external-id", "x"), "--external-id"),
        (("--build-principal", RUNNER_ROLE, "--external-id", "has space in it 1234"),
         "--external-id"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_in_one_line_before_any_call(
    fresh: Fresh, args: tuple[str, ...], flag: str
) -> None:
    full = ("--repository", "team/app", "--region", REGION, *args)
    with FaultProxy(fresh.moto.url) as proxy:
        result = fresh.cli("bootstrap", "role", *full, key=fresh.ourthing_admin,
                           endpoint=proxy.url)  # fmt: skip
        assert proxy.actions == {}
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"gitlab-xacct: error: {flag}: ")


def test_gitlab_oidc_trust_is_restricted_to_the_project(fresh: Fresh) -> None:
    provider = f"arn:aws:iam::{OURTHING}:oidc-provider/{GITLAB_HOST}"
    made = fresh.role(
        "--role-name", "oidc", "--build-principal", RUNNER_ROLE, "--repository", "team/app",
        "--region", REGION, "--gitlab-oidc-provider", provider,
        "--gitlab-project-path", "team/app",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    sts = unsigned_sts(fresh.moto.url, REGION)
    role_arn = f"arn:aws:iam::{OURTHING}:role/oidc"

    def token(project: str, aud: str = "sts.amazonaws.com") -> str:
        return make_gitlab_id_token(host=GITLAB_HOST, sub=gitlab_subject(project), aud=aud)

    ok = sts.assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName="job", WebIdentityToken=token("team/app")
    )
    assert ok["AssumedRoleUser"]["Arn"].startswith(f"arn:aws:sts::{OURTHING}:assumed-role/oidc/")
    with pytest.raises(sts.exceptions.ClientError, match="AccessDenied"):
        sts.assume_role_with_web_identity(
            RoleArn=role_arn, RoleSessionName="job", WebIdentityToken=token("team/other")
        )

    elsewhere = fresh.role(
        "--role-name", "oidc", "--build-principal", RUNNER_ROLE, "--repository", "team/app",
        "--region", REGION, "--gitlab-project-path", "team/app",
        "--gitlab-oidc-provider", f"arn:aws:iam::{BUILD}:oidc-provider/{GITLAB_HOST}",
    )  # fmt: skip
    assert elsewhere.returncode == 2
    assert elsewhere.stderr.splitlines()[-1].startswith(
        "gitlab-xacct: error: --gitlab-oidc-provider: the provider is in account 111111111111"
    )


def test_attach_to_a_missing_role_is_refused(fresh: Fresh) -> None:
    result = fresh.cli(
        "bootstrap", "build-policy", "--role-arn", f"arn:aws:iam::{OURTHING}:role/x",
        "--attach-to-role", "no-such-runner", key=fresh.build_admin,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"gitlab-xacct: error: --attach-to-role: account {BUILD} has no role named "
        f"'no-such-runner' (you are arn:aws:iam::{BUILD}:user/build-admin); give the name of "
        "the runner's role in BUILD"
    )


def test_running_on_the_build_side_is_warned_about(fresh: Fresh) -> None:
    result = fresh.cli(
        "bootstrap", "role", "--role-name", "wrong-side", "--build-account", BUILD,
        "--managed-policy", "AmazonEC2ContainerRegistryPowerUser", "--dry-run",
        key=fresh.build_admin,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"you are in account {BUILD}, which the trust names as BUILD" in result.stderr


def test_no_generated_external_id_is_printed_into_a_job_log(fresh: Fresh) -> None:
    args = ("--role-name", "from-ci", "--build-principal", RUNNER_ROLE, "--repository", "ab",
            "--region", REGION)  # fmt: skip
    refused = fresh.role(*args, GITLAB_CI="true")
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "--external-id: not set, and bootstrap role runs in a GitLab job" in refused.stderr
    iam = fresh.ourthing_iam()
    with pytest.raises(iam.exceptions.NoSuchEntityException):  # type: ignore[attr-defined]
        iam.get_role(RoleName="from-ci")  # type: ignore[attr-defined]
    given = fresh.role(*args, GITLAB_CI="true", XACCT_EXTERNAL_ID=SENTINEL)
    assert given.returncode == 0, given.stderr
    assert given.stdout.startswith(f"role arn:aws:iam::{OURTHING}:role/from-ci: created\n")


@pytest.mark.parametrize("debug", ["false", "true"])
@pytest.mark.parametrize("outcome", ["ok", "refused"])
@pytest.mark.parametrize("command", ["role", "build-policy"])
def test_no_secret_in_any_output(fresh: Fresh, command: str, outcome: str, debug: str) -> None:
    """Part of the sentinel scan of every command (tests/integration/test_no_secrets.py): the
    given External ID and the admins' secret keys, succeeding and refused, normal and debug."""
    # The runner's host user may not touch IAM: every write is refused (AccessDenied).
    admin = fresh.ourthing_admin if command == "role" else fresh.build_admin
    key = admin if outcome == "ok" else fresh.runner_host
    if command == "role":
        argv = ["bootstrap", "role", "--role-name", "SentinelScan", "--build-account", BUILD,
                "--repository", "team/*", "--external-id", SENTINEL]  # fmt: skip
    else:
        argv = ["bootstrap", "build-policy", "--attach-to-role", "gitlab-runner",
                "--role-arn", f"arn:aws:iam::{OURTHING}:role/SentinelScan"]  # fmt: skip
    result = fresh.cli(*argv, key=key, XACCT_DEBUG=debug)
    assert (result.returncode == 0) == (outcome == "ok"), result.stderr
    if debug == "false":  # --debug adds the traceback of a failure, by design
        assert "Traceback" not in result.stderr
    secrets = {admin.secret_access_key, fresh.runner_host.secret_access_key, SENTINEL}
    for text in (result.stdout, result.stderr):
        assert not [s for s in secrets if s in text], "a secret reached the output"


SEED_ID = "some_key_build"  # the classic write-up's External ID: 14 characters, with "_"


def test_the_seed_setup_works_with_every_command(
    fresh: Fresh, registry: Registry, tmp_path: Path
) -> None:
    """The role exactly as the original write-up (../shared/seed/) builds it: BUILD's root
    trusted for sts:AssumeRole only, External ID some_key_build, the AWS managed
    AmazonEC2ContainerRegistryPowerUser; BUILD's runner role allowed to assume it."""
    role_arn = f"arn:aws:iam::{OURTHING}:role/OurThingBuildRole"
    iam = fresh.ourthing_iam()
    iam.create_role(  # type: ignore[attr-defined]
        RoleName="OurThingBuildRole",
        Description="Role for build server to do stuff with our stuff",
        AssumeRolePolicyDocument=policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{BUILD}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": SEED_ID}},
            }
        ),
    )
    iam.attach_role_policy(  # type: ignore[attr-defined]
        RoleName="OurThingBuildRole",
        PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser",
    )
    fresh.iam(fresh.build_admin).put_role_policy(  # type: ignore[attr-defined]
        RoleName="gitlab-runner",
        PolicyName="assume-ourthing",
        PolicyDocument=policy(
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}
        ),
    )
    ecr = boto_session(
        fresh.ourthing_admin.access_key_id,
        fresh.ourthing_admin.secret_access_key,
        region=REGION,
    ).client("ecr", endpoint_url=fresh.moto.url)
    ecr.create_repository(repositoryName="team/seed")

    layout = tmp_path / "layout"
    info = write_oci_layout(layout, [random_layer(4096, seed=67)], ref="seed")
    job = fresh.runner_env(
        XACCT_ROLE_ARN=role_arn,
        XACCT_EXTERNAL_ID=SEED_ID,
        XACCT_REGION=REGION,
        XACCT_REGISTRY_ENDPOINT=registry.url,
        XACCT_SOURCE=f"oci:{layout}:seed",
        XACCT_REPOSITORY="team/seed",
        XACCT_TAGS="seed",
        HOME=str(tmp_path),
    )
    pushed = push(job)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == f"{registry.host}/team/seed:seed@{info.manifest_digest}"
    assert "assumed-role/OurThingBuildRole/" in pushed.stderr

    doctor = subprocess.run(
        [CLI, "doctor"], env=job, capture_output=True, text=True, timeout=180, check=False
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr

    seed_flags = (
        "--role-name", "OurThingBuildRole", "--build-account", BUILD,
        "--managed-policy", "AmazonEC2ContainerRegistryPowerUser",
    )  # fmt: skip
    planned = fresh.role(*seed_flags, "--dry-run", XACCT_EXTERNAL_ID=SEED_ID)
    assert planned.returncode == 0, planned.stderr
    document = json.loads(planned.stdout)
    assert document["action"] == "none", document["changes"]
    (statement,) = document["trust_policy"]["Statement"]
    assert statement["Principal"] == {"AWS": [f"arn:aws:iam::{BUILD}:root"]}
    assert statement["Action"] in ("sts:AssumeRole", ["sts:AssumeRole"])
    assert statement["Condition"] == {
        "StringEquals": {"sts:ExternalId": "<value of XACCT_EXTERNAL_ID>"}
    }
    warning = (
        "warning: XACCT_EXTERNAL_ID: the External ID is 14 characters long, short enough to "
        "guess; use 16 or more random characters (leave it out and bootstrap generates one of 32)"
    )
    assert warning in planned.stderr.splitlines()

    checked = fresh.role(*seed_flags, "--check", "--external-id", SEED_ID)
    assert (checked.returncode, checked.stdout) == (0, f"role {role_arn}: matches\n"), (
        checked.stdout + checked.stderr
    )
    other = fresh.role(*seed_flags, "--check", XACCT_EXTERNAL_ID="another_key_build")
    assert other.returncode == 3, other.stderr
    assert "External ID" in other.stdout
    rerun = fresh.role(*seed_flags, XACCT_EXTERNAL_ID=SEED_ID)
    assert (rerun.returncode, rerun.stdout) == (0, f"role {role_arn}: unchanged\n"), rerun.stderr
    assert push(job).returncode == 0  # and the job still works
    for result in (pushed, doctor, planned, checked, other, rerun):
        assert SEED_ID not in result.stdout + result.stderr
