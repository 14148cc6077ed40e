"""One push, several destinations: two OURTHING-like accounts, two registries, mounts, tags.

Each account's ECR hands out its own token, so each account gets its own docker-registry,
named per destination with the ENDPOINT field of XACCT_DESTINATIONS.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.imagefactory import random_layer, write_oci_index_layout, write_oci_layout
from tests.integration.conftest import CLI
from tests.standins.aws_world import (
    ECR_PUSH_ACTIONS,
    create_user,
    enable_auth,
    policy,
    setup_session,
)
from tests.standins.faultproxy import FaultProxy
from tests.standins.servers import MotoServer, Registry, start_moto, start_registry

ACCOUNTS = ("222222222222", "444444444444")
EXTERNAL_ID = "sentinel-fanout-ExtId-77aa"
REGION = "eu-west-1"


@dataclass(frozen=True)
class FanoutWorld:
    moto_url: str
    key_id: str
    secret: str
    registries: dict[str, Registry]  # account -> its registry
    proxies: dict[str, FaultProxy]  # account -> a counting proxy in front of its registry

    def role(self, account: str) -> str:
        return f"arn:aws:iam::{account}:role/OurThingBuildRole"

    def destination(self, account: str, repository: str) -> str:
        return f"{self.role(account)}|{REGION}|{repository}||{self.proxies[account].url}"


@pytest.fixture(scope="module")
def fanout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FanoutWorld]:
    root = tmp_path_factory.mktemp("fanout")
    with start_moto(root / "moto") as moto:
        key_id, secret = _accounts(moto)
        registries = {a: start_registry(root / a, password=f"{a}-auth-token") for a in ACCOUNTS}
        proxies = {a: FaultProxy(registries[a].url).start() for a in ACCOUNTS}
        try:
            yield FanoutWorld(moto.url, key_id, secret, registries, proxies)
        finally:
            for proxy in proxies.values():
                proxy.stop()
            for registry in registries.values():
                registry.stop()


def _accounts(moto: MotoServer) -> tuple[str, str]:
    """BUILD's runner may assume OurThingBuildRole in both accounts; team/app in each, and an
    immutable repository in the first."""
    roles = [f"arn:aws:iam::{a}:role/OurThingBuildRole" for a in ACCOUNTS]
    build = setup_session(moto.url, "111111111111", REGION)
    runner = create_user(
        build, moto.url, "gitlab-runner",
        policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": roles}),
    )  # fmt: skip
    for account in ACCOUNTS:
        session = setup_session(moto.url, account, REGION)
        iam = session.client("iam", endpoint_url=moto.url)
        iam.create_role(
            RoleName="OurThingBuildRole",
            AssumeRolePolicyDocument=policy({
                "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
            }),
        )  # fmt: skip
        iam.put_role_policy(
            RoleName="OurThingBuildRole", PolicyName="ecr-push",
            PolicyDocument=policy(
                {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                {"Effect": "Allow", "Action": list(ECR_PUSH_ACTIONS),
                 "Resource": f"arn:aws:ecr:{REGION}:{account}:repository/*"},
            ),
        )  # fmt: skip
        ecr = session.client("ecr", endpoint_url=moto.url)
        for name in ("team/app", "team/other"):
            ecr.create_repository(repositoryName=name)
        if account == ACCOUNTS[0]:
            ecr.create_repository(repositoryName="team/frozen", imageTagMutability="IMMUTABLE")
    enable_auth(moto.url)
    return runner.access_key_id, runner.secret_access_key


def job_env(world: FanoutWorld, home: Path, **xacct: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": world.key_id,
        "AWS_SECRET_ACCESS_KEY": world.secret,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": world.moto_url,
        "CI_PROJECT_PATH": "team/app",
        "CI_COMMIT_SHORT_SHA": "a1b2c3d4",
        "XACCT_EXTERNAL_ID": EXTERNAL_ID,
        **xacct,
    }


def push(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CLI, "push"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    for secret in (EXTERNAL_ID, env["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in result.stdout + result.stderr
    return result


def raw(world: FanoutWorld, account: str, reference: str) -> bytes:
    registry = world.registries[account]
    result = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds",
         f"{registry.username}:{registry.password}", f"docker://{registry.host}/{reference}"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_three_destinations_in_two_accounts_read_each_blob_once(
    fanout: FanoutWorld, tmp_path: Path
) -> None:
    layout = tmp_path / "image"
    info = write_oci_layout(layout, [random_layer(3_000_000, seed=1), random_layer(500, seed=2)])
    destinations = "\n".join([
        fanout.destination(ACCOUNTS[0], "team/app"),
        fanout.destination(ACCOUNTS[0], "team/other"),
        fanout.destination(ACCOUNTS[1], "team/app"),
    ])  # fmt: skip
    for proxy in fanout.proxies.values():
        proxy.reset_counts()

    result = push(job_env(fanout, tmp_path, XACCT_SOURCE=f"oci:{layout}:latest",
                          XACCT_DESTINATIONS=destinations, XACCT_TAGS="fan"))  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.rsplit("@", 1)[1] for line in lines] == [info.manifest_digest] * 3
    for account, repository in ((ACCOUNTS[0], "team/app"), (ACCOUNTS[0], "team/other"),
                                (ACCOUNTS[1], "team/app")):  # fmt: skip
        assert raw(fanout, account, f"{repository}:fan") == info.manifest
    # Within the first account's registry, team/other got its blobs by mount, not upload.
    routes = fanout.proxies[ACCOUNTS[0]].routes
    mounts = [r for r in routes if r[0] == "POST" and "team/other" in r[1]]
    assert mounts, routes
    assert "mounted" in result.stderr
    assert not [r for r in routes if r[0] == "PUT" and "team/other/blobs" in r[1]]


def test_platforms_filter_rewrites_the_index_and_keeps_the_children(
    fanout: FanoutWorld, tmp_path: Path
) -> None:
    layout = write_oci_index_layout(tmp_path / "multi")
    env = job_env(fanout, tmp_path, XACCT_SOURCE=f"oci:{tmp_path / 'multi'}:latest",
                  XACCT_ROLE_ARN=fanout.role(ACCOUNTS[0]), XACCT_REGION=REGION,
                  XACCT_REGISTRY_ENDPOINT=fanout.registries[ACCOUNTS[0]].url)  # fmt: skip

    whole = push({**env, "XACCT_TAGS": "all"})
    assert whole.returncode == 0, whole.stderr
    assert raw(fanout, ACCOUNTS[0], "team/app:all") == layout.index  # byte for byte

    only = push({**env, "XACCT_TAGS": "amd", "XACCT_PLATFORMS": "linux/amd64"})
    assert only.returncode == 0, only.stderr
    pushed = json.loads(raw(fanout, ACCOUNTS[0], "team/app:amd"))
    assert [m["platform"]["architecture"] for m in pushed["manifests"]] == ["amd64"]
    amd = [c for c in layout.children if c.manifest_digest == pushed["manifests"][0]["digest"]]
    assert amd

    typo = push({**env, "XACCT_TAGS": "x", "XACCT_PLATFORMS": "linux/amd46"})
    assert typo.returncode == 2
    assert "XACCT_PLATFORMS: 'linux/amd46' names an unknown architecture" in typo.stderr
    assert "did you mean amd64?" in typo.stderr
    missing = push({**env, "XACCT_TAGS": "x", "XACCT_PLATFORMS": "linux/s390x"})
    assert missing.returncode == 2
    assert "has none of linux/s390x; it has linux/amd64, linux/arm64" in missing.stderr


def test_immutable_tag_same_digest_passes_other_digest_is_exit_5(
    fanout: FanoutWorld, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"
    write_oci_layout(first, [random_layer(1000, seed=10)])
    write_oci_layout(second, [random_layer(1000, seed=11)])
    env = job_env(fanout, tmp_path, XACCT_ROLE_ARN=fanout.role(ACCOUNTS[0]),
                  XACCT_REGION=REGION, XACCT_REPOSITORY="team/frozen", XACCT_TAGS="v1",
                  XACCT_REGISTRY_ENDPOINT=fanout.registries[ACCOUNTS[0]].url)  # fmt: skip

    assert push({**env, "XACCT_SOURCE": f"oci:{first}:latest"}).returncode == 0
    again = push({**env, "XACCT_SOURCE": f"oci:{first}:latest"})
    assert again.returncode == 0, again.stderr
    assert "tag " in again.stderr
    assert "is already at" in again.stderr

    before = raw(fanout, ACCOUNTS[0], "team/frozen:v1")
    other = push({**env, "XACCT_SOURCE": f"oci:{second}:latest"})
    assert other.returncode == 5, other.stderr
    assert "tag v1 of" in other.stderr
    assert "immutable" in other.stderr
    assert raw(fanout, ACCOUNTS[0], "team/frozen:v1") == before

    skipped = push({**env, "XACCT_SOURCE": f"oci:{second}:latest",
                    "XACCT_SKIP_EXISTING_TAGS": "true"})  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr
    assert raw(fanout, ACCOUNTS[0], "team/frozen:v1") == before
