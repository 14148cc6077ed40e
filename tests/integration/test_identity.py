"""Every way to the target role, through the installed CLI, against moto in auth mode.

A world of its own: GitLab OIDC in BUILD, a hub account, OURTHING (tests/standins/aws_world.py),
with a fault-injecting proxy in front of moto to count and disturb STS calls.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.imagefactory import make_layer, write_oci_layout
from tests.integration.conftest import CLI, Job
from tests.standins.aws_world import ChainWorld, build_chain_world, session_tags
from tests.standins.faultproxy import FaultProxy
from tests.standins.servers import MotoServer, Registry, start_moto

EXTERNAL_IDS = ("sentinel-hub-ExtId-51c0", "sentinel-target-ExtId-9d2e")
SESSION = "gitlab-xacct-4242-1001-90001"
TARGET_SESSION = f"arn:aws:sts::222222222222:assumed-role/OurThingBuildRole/{SESSION}"


@pytest.fixture(scope="module")
def chain_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with start_moto(tmp_path_factory.mktemp("chain-moto")) as server:
        yield server


@pytest.fixture(scope="module")
def chain_world(chain_moto: MotoServer) -> ChainWorld:
    return build_chain_world(chain_moto.url, external_ids=EXTERNAL_IDS)


@pytest.fixture
def proxy(chain_moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(chain_moto.url) as fault_proxy:
        yield fault_proxy


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("identity-image")
    write_oci_layout(root, [make_layer({"app/id.txt": b"identity paths\n"})], ref="latest")
    return root


@dataclass
class ChainJob:
    world: ChainWorld
    registry: Registry
    proxy: FaultProxy
    layout: Path
    home: Path
    outputs: list[str] = field(default_factory=list)

    def env(self, *, runner_keys: bool = True, **xacct: str) -> dict[str, str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "AWS_DEFAULT_REGION": self.world.region,
            "AWS_ENDPOINT_URL": self.proxy.url,
            "CI_PROJECT_ID": "4242",
            "CI_PROJECT_PATH": "team/app",
            "CI_PIPELINE_ID": "1001",
            "CI_JOB_ID": "90001",
            "CI_COMMIT_SHORT_SHA": "a1b2c3d4",
            "CI_COMMIT_REF_NAME": "main",
            "CI_COMMIT_SHA": "a1b2c3d4" * 5,
            "GITLAB_USER_LOGIN": "alice",
            "XACCT_ROLE_ARN": self.world.ourthing_role_arn,
            "XACCT_EXTERNAL_ID": self.world.external_ids[1],
            "XACCT_REGISTRY_ENDPOINT": self.registry.url,
            "XACCT_SOURCE": f"oci:{self.layout}:latest",
            "XACCT_TAGS": "identity",
        }
        if runner_keys:
            env["AWS_ACCESS_KEY_ID"] = self.world.runner_access_key_id
            env["AWS_SECRET_ACCESS_KEY"] = self.world.runner_secret_access_key
        return {**env, **xacct}

    def push(self, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CLI, "push"], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        self.outputs += [result.stdout, result.stderr]
        return result

    def hub(self, external_id: str | None = None) -> str:
        return f"{self.world.hub_role_arn}|{external_id or self.world.external_ids[0]}"


@pytest.fixture
def chain_job(
    chain_world: ChainWorld, registry: Registry, proxy: FaultProxy, layout: Path, tmp_path: Path
) -> Iterator[ChainJob]:
    job = ChainJob(chain_world, registry, proxy, layout, tmp_path)
    yield job
    secrets = [*EXTERNAL_IDS, chain_world.runner_secret_access_key, chain_world.id_token()[:40]]
    for text in job.outputs:
        for secret in secrets:
            assert secret not in text, "a secret reached the output"


def test_gitlab_oidc_then_hub_then_target_without_any_aws_key(chain_job: ChainJob) -> None:
    env = chain_job.env(
        runner_keys=False,
        XACCT_WEB_IDENTITY_ROLE_ARN=chain_job.world.web_identity_role_arn,
        XACCT_ID_TOKEN=chain_job.world.id_token(),
        XACCT_ROLE_CHAIN=chain_job.hub(),
    )
    assert not any(k.startswith("AWS_ACCESS") or k.startswith("AWS_SECRET") for k in env)

    result = chain_job.push(env)

    assert result.returncode == 0, result.stderr
    assert f"assumed arn:aws:sts::111111111111:assumed-role/GitLabOidcRole/{SESSION}" in (
        result.stderr
    )
    assert f"assumed {TARGET_SESSION}" in result.stderr
    assert chain_job.proxy.action_count("AssumeRoleWithWebIdentity") == 1
    assert chain_job.proxy.action_count("AssumeRole") == 2


def test_oidc_token_of_another_ref_is_refused_with_its_claims(chain_job: ChainJob) -> None:
    env = chain_job.env(
        runner_keys=False,
        XACCT_WEB_IDENTITY_ROLE_ARN=chain_job.world.web_identity_role_arn,
        XACCT_ID_TOKEN=chain_job.world.id_token(ref="v1.0", ref_type="tag"),
        XACCT_ROLE_CHAIN=chain_job.hub(),
    )
    result = chain_job.push(env)
    assert result.returncode == 3, result.stderr
    assert "GitLab OIDC: sts:AssumeRoleWithWebIdentity into" in result.stderr
    assert "sub=project_path:team/app:ref_type:tag:ref:v1.0" in result.stderr
    assert "oidc-provider/gitlab.example.test" in result.stderr


def test_runner_through_a_two_hop_chain_with_tags(chain_job: ChainJob) -> None:
    env = chain_job.env(XACCT_ROLE_CHAIN=chain_job.hub(), XACCT_SESSION_TAGS="true")

    result = chain_job.push(env)

    assert result.returncode == 0, result.stderr
    recorded = session_tags(chain_job.world.endpoint_url, TARGET_SESSION)
    assert recorded.effective_tags == {
        "GitLabProject": "team/app",
        "GitLabPipelineId": "1001",
        "GitLabJobId": "90001",
        "GitLabRef": "main",
        "GitLabCommitSha": "a1b2c3d4" * 5,
        "GitLabUser": "alice",
    }
    assert recorded.tags == {}  # carried from hop 1 as transitive tags, not sent again


@pytest.mark.parametrize(
    ("hop", "label"),
    [("hub", "hop 1 of 2 (XACCT_ROLE_CHAIN hop 1)"), ("target", "hop 2 of 2 (XACCT_ROLE_ARN)")],
)
def test_wrong_external_id_names_the_hop(chain_job: ChainJob, hop: str, label: str) -> None:
    wrong = "sentinel-wrong-ExtId-0000"
    env = chain_job.env(XACCT_ROLE_CHAIN=chain_job.hub(wrong if hop == "hub" else None))
    if hop == "target":
        env["XACCT_EXTERNAL_ID"] = wrong

    result = chain_job.push(env)

    assert result.returncode == 3, result.stderr
    assert f"AccessDenied at {label}:" in result.stderr
    assert wrong not in result.stderr
    assert chain_job.proxy.action_count("AssumeRole") == (1 if hop == "hub" else 2)  # no retry


def test_allowed_accounts_mismatch_is_exit_3(chain_job: ChainJob) -> None:
    env = chain_job.env(XACCT_ALLOWED_ACCOUNT_IDS="444444444444")
    result = chain_job.push(env)
    assert result.returncode == 3, result.stderr
    assert "belong to account 222222222222" in result.stderr
    assert "XACCT_ALLOWED_ACCOUNT_IDS does not list (444444444444)" in result.stderr
    assert chain_job.proxy.action_count("GetAuthorizationToken") == 0  # stopped before ECR


def test_long_chained_session_is_refused_before_calling_aws(chain_job: ChainJob) -> None:
    env = chain_job.env(XACCT_ROLE_CHAIN=chain_job.hub(), XACCT_DURATION_SECONDS="7200")
    result = chain_job.push(env)
    assert result.returncode == 2, result.stderr
    assert "7200 s is more than AWS allows at hop 2 of 2 (XACCT_ROLE_ARN)" in result.stderr
    assert chain_job.proxy.action_count("AssumeRole") == 0


def test_throttling_is_retried_and_then_succeeds(chain_job: ChainJob) -> None:
    chain_job.proxy.throttle_next(2, "AssumeRole")
    result = chain_job.push(chain_job.env())
    assert result.returncode == 0, result.stderr
    assert chain_job.proxy.action_count("AssumeRole") == 3


def test_throttling_past_the_bound_is_exit_3(chain_job: ChainJob) -> None:
    chain_job.proxy.throttle_next(10, "AssumeRole")
    result = chain_job.push(chain_job.env())
    assert result.returncode == 3, result.stderr
    assert "failed after 4 attempts: Throttling: Rate exceeded" in result.stderr
    assert chain_job.proxy.action_count("AssumeRole") == 4  # botocore standard mode: 4 attempts


def test_session_tags_without_tag_session_permission_say_so(job: Job) -> None:
    result = job.push(XACCT_SOURCE="oci:/nonexistent", XACCT_SESSION_TAGS="true")
    assert result.returncode == 2  # the source is checked first
    layout = job.home / "layout"
    write_oci_layout(layout, [make_layer({"x": b"x"})], ref="latest")
    result = job.push(XACCT_SOURCE=f"oci:{layout}:latest", XACCT_SESSION_TAGS="true",
                      XACCT_TAGS="tagged")  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "sts:TagSession allowed both in the role's trust policy and in the caller's" in (
        result.stderr
    )


def test_proxy_variables_are_honoured(chain_job: ChainJob) -> None:
    """AWS calls go through HTTP_PROXY; NO_PROXY keeps the registry direct."""
    env = chain_job.env(
        AWS_ENDPOINT_URL=chain_job.world.endpoint_url,  # moto itself: reached via the proxy
        HTTP_PROXY=chain_job.proxy.url,
        # requests matches NO_PROXY on the bare IP for IP hosts, so name the registry by host.
        XACCT_REGISTRY_ENDPOINT=chain_job.registry.url.replace("127.0.0.1", "localhost"),
        NO_PROXY="localhost",
    )
    result = chain_job.push(env)
    assert result.returncode == 0, result.stderr
    assert chain_job.proxy.proxied >= 2
    assert chain_job.proxy.action_count("AssumeRole") == 1
    assert chain_job.proxy.action_count("GetAuthorizationToken") == 1
    assert not [r for r in chain_job.proxy.routes if "/v2/" in r[1]]  # registry went direct
