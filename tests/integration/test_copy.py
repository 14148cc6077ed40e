"""`gitlab-xacct copy` against real registries: docker-registry with htpasswd (Basic) and with
token auth (tests/standins/token_issuer.py), skopeo reading every result back."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitlab_xacct.registry.client import Credentials, Registry
from gitlab_xacct.registry.image import OCI_LAYER_TAR, Blob
from gitlab_xacct.secrets import Secret
from tests.imagefactory import (
    IndexLayoutInfo,
    LayoutInfo,
    random_layer,
    write_oci_index_layout,
    write_oci_layout,
)
from tests.integration.conftest import CLI, Job
from tests.standins.faultproxy import FaultProxy, RequestInfo
from tests.standins.servers import Registry as BasicRegistry
from tests.standins.token_issuer import TokenIssuer, TokenRegistry, start_token_registry

ALICE = "alice"
ALICE_PW = "sentinel-alice-pw-4c1d"
JOB_TOKEN = "sentinel-job-token-93ab"
CI_USER, CI_PW = "ci-user", "sentinel-ci-registry-pw-77e0"


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    users = {ALICE: ALICE_PW, "gitlab-ci-token": JOB_TOKEN, CI_USER: CI_PW}
    workdir = tmp_path_factory.mktemp("token-registry")
    with TokenIssuer(users) as issuer, start_token_registry(workdir, issuer) as registry:
        yield registry


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LayoutInfo]:
    root = tmp_path_factory.mktemp("copy-layout") / "layout"
    layers = [random_layer(1024 * 1024, seed=31), random_layer(2000, seed=32)]
    return root, write_oci_layout(root, layers, ref="v1")


@pytest.fixture(scope="module")
def index_layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IndexLayoutInfo]:
    root = tmp_path_factory.mktemp("copy-index") / "multi"
    return root, write_oci_index_layout(root)


@dataclass
class Copier:
    basic: BasicRegistry
    token: TokenRegistry
    home: Path
    outputs: list[str] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home), **extra}

    @property
    def basic_creds(self) -> str:
        return f"{self.basic.username}:{self.basic.password}"

    def copy(
        self, *args: str, env: dict[str, str] | None = None, python: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, *python, "-m", "gitlab_xacct"] if python else [CLI]
        result = subprocess.run(
            [*argv, "copy", *args],
            env=env if env is not None else self.env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        return result

    def skopeo(self, registry: str, reference: str, *, raw: bool = False) -> str:
        creds = ALICE + ":" + ALICE_PW if registry == self.token.host else self.basic_creds
        argv = ["skopeo", "inspect", "--tls-verify=false", "--creds", creds]
        result = subprocess.run(
            [*argv, *(["--raw"] if raw else []), f"docker://{registry}/{reference}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def digest_at(self, registry: str, reference: str) -> str:
        return str(json.loads(self.skopeo(registry, reference))["Digest"])


@pytest.fixture
def copier(
    registry: BasicRegistry, token_registry: TokenRegistry, tmp_path: Path
) -> Iterator[Copier]:
    home = tmp_path / "copier-home"
    home.mkdir()
    copier = Copier(registry, token_registry, home)
    yield copier
    secrets = [ALICE_PW, JOB_TOKEN, CI_PW, registry.password, *token_registry.issuer.issued]
    for text in copier.outputs:
        for secret in secrets:
            assert secret not in text, "a secret reached the output"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- the stand-in is as strict as distribution ---------------------------------------------


def test_the_token_registry_accepts_only_what_distribution_verifies(
    token_registry: TokenRegistry,
) -> None:
    """Guards the stand-in itself: without a token, and with a token for another repository,
    the registry answers 401 with a Bearer challenge; with the right one, it answers."""
    issuer = token_registry.issuer
    url = f"{token_registry.url}/v2/team/app/tags/list"
    scope = ("repository:team/app:pull",)
    with Registry(token_registry.url, None) as raw:
        denied = raw._transport.request("GET", url)
        assert denied.status_code == 401
        assert denied.headers["WWW-Authenticate"].startswith(f'Bearer realm="{issuer.realm}"')
        for token, status in (
            (issuer.token(ALICE, ("repository:other:pull",), "standin-registry"), 401),
            (issuer.token(ALICE, scope, "another-service"), 401),  # aud must be the service
            (issuer.token(ALICE, scope, "standin-registry"), 404),  # authorised; no such repo
        ):
            answer = raw._transport.request(
                "GET", url, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == status, answer.headers


# ---- copies ----------------------------------------------------------------------------------


def test_basic_to_token_and_back_keeps_every_digest(
    copier: Copier, layout: tuple[Path, LayoutInfo]
) -> None:
    root, info = layout
    basic, token = copier.basic.host, copier.token.host
    seeded = copier.copy(
        f"oci:{root}:v1", f"docker://{basic}/team/copy-src:v1", "--dest-creds", copier.basic_creds
    )
    assert seeded.returncode == 0, seeded.stderr
    assert seeded.stdout == f"{basic}/team/copy-src:v1@{info.manifest_digest}\n"

    there = copier.copy(
        f"docker://{basic}/team/copy-src:v1",
        f"docker://{token}/team/from-basic:v1",
        "--tag", "also",
        env=copier.env(SRC_LOGIN=copier.basic_creds, XACCT_SRC_CREDS="SRC_LOGIN",
                       XACCT_DEST_CREDS=f"{ALICE}:{ALICE_PW}"),
    )  # fmt: skip
    assert there.returncode == 0, there.stderr
    assert there.stdout.splitlines() == [
        f"{token}/team/from-basic:v1@{info.manifest_digest}",
        f"{token}/team/from-basic:also@{info.manifest_digest}",
    ]
    assert "source login:      XACCT_SRC_CREDS ($SRC_LOGIN)" in there.stderr

    back = copier.copy(
        f"docker://{token}/team/from-basic:also",
        f"docker://{basic}/team/back:v2",
        "--src-creds", f"{ALICE}:{ALICE_PW}", "--dest-creds", copier.basic_creds,
    )  # fmt: skip
    assert back.returncode == 0, back.stderr

    for registry, reference in ((token, "team/from-basic:v1"), (basic, "team/back:v2")):
        assert copier.skopeo(registry, reference, raw=True).encode() == info.manifest
        seen = json.loads(copier.skopeo(registry, reference))
        assert seen["Digest"] == info.manifest_digest
        assert seen["Layers"] == list(info.layer_digests)


def test_an_index_is_copied_whole_with_its_digest(
    copier: Copier, index_layout: tuple[Path, IndexLayoutInfo]
) -> None:
    root, info = index_layout
    basic, token = copier.basic.host, copier.token.host
    first = copier.copy(
        f"oci:{root}:latest", f"docker://{token}/team/multi:1",
        "--dest-creds", f"{ALICE}:{ALICE_PW}",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    second = copier.copy(
        f"docker://{token}/team/multi@{info.index_digest}", f"docker://{basic}/team/multi:1",
        "--src-creds", f"{ALICE}:{ALICE_PW}", "--dest-creds", copier.basic_creds,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "source: index of 2 images" in second.stderr
    for registry in (token, basic):
        assert copier.skopeo(registry, "team/multi:1", raw=True).encode() == info.index
        for child in info.children:
            seen = json.loads(copier.skopeo(registry, f"team/multi@{child.manifest_digest}"))
            assert seen["Layers"] == list(child.layer_digests)


@pytest.mark.parametrize(
    ("variables", "user", "origin"),
    [
        ({"CI_JOB_TOKEN": JOB_TOKEN}, "gitlab-ci-token", "CI_JOB_TOKEN"),
        (
            {"CI_REGISTRY_USER": CI_USER, "CI_REGISTRY_PASSWORD": CI_PW, "CI_JOB_TOKEN": JOB_TOKEN},
            CI_USER,
            "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD",
        ),
    ],
)
def test_in_a_gitlab_job_the_ci_registry_credentials_are_used(
    copier: Copier,
    layout: tuple[Path, LayoutInfo],
    variables: dict[str, str],
    user: str,
    origin: str,
) -> None:
    root, info = layout
    issuer = copier.token.issuer
    before = len(issuer.requests)
    env = copier.env(CI="true", CI_REGISTRY=copier.token.host, **variables)
    result = copier.copy(f"oci:{root}:v1", f"docker://{copier.token.host}/team/ci:{user}", env=env)
    assert result.returncode == 0, result.stderr
    assert f"destination login: {origin}" in result.stderr
    assert {r.user for r in issuer.requests[before:]} == {user}
    assert copier.digest_at(copier.token.host, f"team/ci:{user}") == info.manifest_digest


def test_wrong_destination_credentials_are_exit_4_in_one_line(
    copier: Copier, layout: tuple[Path, LayoutInfo]
) -> None:
    root, _ = layout
    result = copier.copy(
        f"oci:{root}:v1", f"docker://{copier.token.host}/team/denied:1",
        "--dest-creds", f"{ALICE}:sentinel-wrong-pw-0000",
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert result.stderr.count("gitlab-xacct: error:") == 1
    assert "refused the credentials" in result.stderr
    assert "sentinel-wrong-pw-0000" not in result.stderr + result.stdout


def test_copy_loads_no_aws_library(copier: Copier, layout: tuple[Path, LayoutInfo]) -> None:
    root, _ = layout
    result = copier.copy(
        f"oci:{root}:v1", f"docker://{copier.basic.host}/team/no-aws:1",
        "--dest-creds", copier.basic_creds, python=("-X", "importtime"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    imported = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert len(imported) > 50  # -X importtime did report
    assert not [line for line in imported if "boto" in line]


# ---- mounts and chunks, counted at a proxy ---------------------------------------------------


def blob_of(data: bytes) -> Blob:
    return Blob(
        digest=sha256(data), size=len(data), media_type=OCI_LAYER_TAR,
        open=lambda: __import__("io").BytesIO(data),
    )  # fmt: skip


def test_mount_201_links_and_202_falls_back_to_an_upload_in_the_same_session(
    token_registry: TokenRegistry,
) -> None:
    present, absent = blob_of(b"mounted layer " * 1000), blob_of(b"never pushed " * 1000)
    alice = Credentials(ALICE, Secret(ALICE_PW))
    with FaultProxy(token_registry.url) as proxy, Registry(proxy.url, alice) as client:
        client.upload_blob("team/mount-a", present)
        proxy.reset_counts()

        assert client.mount_blob("team/mount-b", present.digest, "team/mount-a") is True
        assert proxy.route_count("POST", "/v2/team/mount-b/blobs/uploads/") == 1
        assert not [r for r in proxy.history if r.method in ("PUT", "PATCH")]

        assert client.mount_blob("team/mount-c", absent.digest, "team/mount-a") is False
        client.upload_blob("team/mount-c", absent)
        assert proxy.route_count("POST", "/v2/team/mount-c/blobs/uploads/") == 1  # reused
        assert len([r for r in proxy.history if r.method == "PUT"]) == 1
        assert not [r for r in proxy.history if r.method == "DELETE"]

        assert client.blob_exists("team/mount-b", present.digest)
        assert client.blob_exists("team/mount-c", absent.digest)
        assert not client.blob_exists("team/mount-c", present.digest)


def test_a_chunked_upload_resumes_after_the_connection_drops(
    copier: Copier, layout: tuple[Path, LayoutInfo]
) -> None:
    root, info = layout
    patches = [0]

    def second_patch(request: RequestInfo) -> bool:
        patches[0] += 1
        return patches[0] == 2

    with FaultProxy(copier.token.url) as proxy:
        proxy.drop_next(1, after_bytes=100_000, method="PATCH", predicate=second_patch)
        host = proxy.url.removeprefix("http://")
        result = copier.copy(
            f"oci:{root}:v1", f"docker://{host}/team/chunked:1",
            "--dest-creds", f"{ALICE}:{ALICE_PW}", "--chunk-size", "256K",
        )  # fmt: skip
        history = list(proxy.history)
    assert result.returncode == 0, result.stderr
    assert "resuming at byte 262144" in result.stderr
    size = max(len(layer) for layer in info.layers)  # a tar of 1 MiB of data: 5 chunks
    chunks = [f"{start}-{min(start + 262144, size) - 1}" for start in range(0, size, 262144)]
    ranges = [r.headers.get("content-range") for r in history if r.method == "PATCH"]
    # the second chunk was cut after 100 000 bytes (the registry never saw it), then sent again
    assert ranges == [chunks[0], chunks[1], *chunks[1:]]
    status = [r for r in history if r.method == "GET" and "/blobs/uploads/" in r.path]
    assert len(status) == 1
    assert copier.digest_at(copier.token.host, "team/chunked:1") == info.manifest_digest
    assert json.loads(copier.skopeo(copier.token.host, "team/chunked:1"))["Layers"] == list(
        info.layer_digests
    )


def test_push_takes_a_docker_source_with_credentials_from_the_environment(
    copier: Copier, job: Job, layout: tuple[Path, LayoutInfo]
) -> None:
    root, info = layout
    token = copier.token.host
    seeded = copier.copy(
        f"oci:{root}:v1", f"docker://{token}/team/push-src:1", "--dest-creds", f"{ALICE}:{ALICE_PW}"
    )
    assert seeded.returncode == 0, seeded.stderr

    result = job.push(
        XACCT_SOURCE=f"docker://{token}/team/push-src:1",
        XACCT_SRC_CREDS="PULL_LOGIN",
        PULL_LOGIN=f"{ALICE}:{ALICE_PW}",
        XACCT_TAGS="from-registry",
    )
    copier.outputs += job.outputs  # scanned for the token registry's secrets too
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"/team/app:from-registry@{info.manifest_digest}")
    assert job.inspect("team/app:from-registry")["Digest"] == info.manifest_digest


def test_copy_within_one_registry_mounts_every_blob_from_the_source_repository(
    copier: Copier, layout: tuple[Path, LayoutInfo]
) -> None:
    """Promoting an image between repositories of one registry moves no blob bytes: each blob is
    mounted from the source repository (a token with pull on it), then the manifest is PUT."""
    root, info = layout
    creds = f"{ALICE}:{ALICE_PW}"
    host = copier.token.host
    seeded = copier.copy(f"oci:{root}:v1", f"docker://{host}/team/build:v1", "--dest-creds", creds)
    assert seeded.returncode == 0, seeded.stderr

    with FaultProxy(copier.token.url) as proxy:
        via = proxy.url.removeprefix("http://")
        result = copier.copy(
            f"docker://{via}/team/build:v1", f"docker://{via}/team/release:v1",
            "--src-creds", creds, "--dest-creds", creds,
        )  # fmt: skip
        history = list(proxy.history)
    assert result.returncode == 0, result.stderr
    blobs = len(info.layers) + 1  # the layers and the config
    mounts = [r for r in history if r.method == "POST" and "mount=" in r.query]
    assert len(mounts) == blobs
    assert all("from=team%2Fbuild" in r.query for r in mounts)
    assert not [r for r in history if r.method in ("PUT", "PATCH") and "/blobs/" in r.path]
    assert not [r for r in history if r.method == "GET" and "/blobs/sha256:" in r.path]
    assert f"(0 blobs uploaded, {blobs} mounted, 0 already present)" in result.stderr
    assert copier.digest_at(host, "team/release:v1") == info.manifest_digest


def test_a_rerun_whose_tags_are_in_place_asks_about_no_blob(
    copier: Copier, layout: tuple[Path, LayoutInfo]
) -> None:
    """A retried job: every tag already points at this digest, so the registry checked the blobs
    when that manifest was PUT; the rerun asks about the tags only and uploads nothing."""
    root, info = layout
    creds = f"{ALICE}:{ALICE_PW}"
    host = copier.token.host
    first = copier.copy(f"oci:{root}:v1", f"docker://{host}/team/rerun:v1", "--dest-creds", creds)
    assert first.returncode == 0, first.stderr

    with FaultProxy(copier.token.url) as proxy:
        via = proxy.url.removeprefix("http://")
        again = copier.copy(
            f"oci:{root}:v1", f"docker://{via}/team/rerun:v1", "--dest-creds", creds
        )
        history = list(proxy.history)
    assert again.returncode == 0, again.stderr
    assert not [r for r in history if "/blobs/" in r.path]
    assert not [r for r in history if r.method in ("PUT", "POST", "PATCH")]
    assert f"(0 blobs uploaded, 0 mounted, {len(info.layers) + 1} already present)" in again.stderr
    assert copier.digest_at(host, "team/rerun:v1") == info.manifest_digest


def test_tags_kept_as_asked_mean_nothing_is_uploaded(
    copier: Copier, layout: tuple[Path, LayoutInfo], index_layout: tuple[Path, IndexLayoutInfo]
) -> None:
    """--skip-existing-tags with every tag taken by another image: no tag would be set, so no
    blob is worth sending."""
    root, info = layout
    other_root, other = index_layout
    creds = f"{ALICE}:{ALICE_PW}"
    host = copier.token.host
    taken = copier.copy(
        f"oci:{other_root}:latest", f"docker://{host}/team/kept:v1", "--dest-creds", creds
    )
    assert taken.returncode == 0, taken.stderr

    with FaultProxy(copier.token.url) as proxy:
        via = proxy.url.removeprefix("http://")
        kept = copier.copy(
            f"oci:{root}:v1", f"docker://{via}/team/kept:v1", "--dest-creds", creds,
            "--skip-existing-tags",
        )  # fmt: skip
        history = list(proxy.history)
    assert kept.returncode == 0, kept.stderr
    assert "skipped as asked" in kept.stderr
    assert not [r for r in history if "/blobs/" in r.path]
    assert copier.digest_at(host, "team/kept:v1") == other.index_digest
    assert info.manifest_digest != other.index_digest
