"""`gitlab-xacct push` end to end: moto (with cross-account trust), docker-registry, skopeo."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.imagefactory import (
    random_layer,
    write_docker_archive_classic,
    write_docker_archive_oci,
    write_oci_index_layout,
    write_oci_layout,
)
from tests.integration.conftest import EXTERNAL_ID, Job
from tests.standins.faultproxy import FaultProxy
from tests.standins.servers import start_registry

DIGEST_LINE = r"sha256:[0-9a-f]{64}"


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{argv[0]} failed: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def umoci_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout made by umoci (an independent tool): two layers, tag 'demo'."""
    root = tmp_path_factory.mktemp("umoci")
    layout = root / "layout"
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:demo")
    for name, content in (
        ("hello.txt", b"hello from BUILD\n"),
        ("data.bin", bytes(range(256)) * 4096),
    ):
        source = root / name
        source.write_bytes(content)
        run("umoci", "insert", "--image", f"{layout}:demo", str(source), f"/srv/{name}")
    run("umoci", "config", "--image", f"{layout}:demo", "--config.cmd", "cat /srv/hello.txt")
    return layout


def layout_manifest(layout: Path, ref: str) -> tuple[bytes, dict[str, object]]:
    index = json.loads((layout / "index.json").read_text())
    for descriptor in index["manifests"]:
        if descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
            raw = (layout / "blobs" / "sha256" / descriptor["digest"][7:]).read_bytes()
            return raw, json.loads(raw)
    raise AssertionError(f"no ref {ref} in {layout}")


def test_pushes_an_oci_layout_with_every_tag_at_one_digest(
    job: Job, umoci_layout: Path, tmp_path: Path
) -> None:
    raw, manifest = layout_manifest(umoci_layout, "demo")
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    report = tmp_path / "xacct.env"
    annotations = tmp_path / "annotations.json"

    result = job.push(
        XACCT_SOURCE=f"oci:{umoci_layout}:demo",
        XACCT_TAGS="oci-1, oci-latest",
        XACCT_DOTENV=str(report),
        XACCT_ANNOTATIONS=str(annotations),
    )

    assert result.returncode == 0, result.stderr
    host = job.registry.host
    assert result.stdout.splitlines() == [
        f"{host}/team/app:oci-1@{digest}",
        f"{host}/team/app:oci-latest@{digest}",
    ]
    assert report.read_text().splitlines() == [
        f"XACCT_IMAGE_URI={host}/team/app@{digest}",
        f"XACCT_IMAGE_DIGEST={digest}",
        "XACCT_IMAGE_TAGS=oci-1,oci-latest",
        f"XACCT_IMAGE_URIS={host}/team/app@{digest}",
    ]
    # The job page's link: the image in the ECR console of the role's account and region, even
    # when a registry endpoint stood in for ECR.
    assert json.loads(annotations.read_text()) == {
        "gitlab-xacct": [
            {
                "external_link": {
                    "label": f"ECR: team/app@{digest[:19]} in 222222222222 us-east-1",
                    "url": "https://us-east-1.console.aws.amazon.com/ecr/repositories/private/"
                    f"222222222222/team/app/_/image/{digest}/details?region=us-east-1",
                }
            }
        ]
    }
    layers = [d["digest"] for d in manifest["layers"]]  # type: ignore[attr-defined]
    for tag in ("oci-1", "oci-latest"):
        seen = job.inspect(f"team/app:{tag}")
        assert seen["Digest"] == digest
        assert seen["Layers"] == layers
        # Byte for byte: what the registry serves is exactly what umoci wrote.
        assert job.skopeo_inspect(f"team/app:{tag}", raw=True).stdout.encode() == raw
    assert "assumed arn:aws:sts::222222222222:assumed-role/OurThingBuildRole/" in result.stderr
    assert "gitlab-xacct-4242-1001-90001" in result.stderr  # the derived session name


def test_second_push_uploads_nothing(job: Job, umoci_layout: Path) -> None:
    first = job.push(XACCT_SOURCE=f"oci:{umoci_layout}:demo", XACCT_TAGS="again-1")
    assert first.returncode == 0, first.stderr
    second = job.push(XACCT_SOURCE=f"oci:{umoci_layout}:demo", XACCT_TAGS="again-2")
    assert second.returncode == 0, second.stderr
    _, manifest = layout_manifest(umoci_layout, "demo")
    blobs = len(manifest["layers"]) + 1  # type: ignore[arg-type]
    assert f"(0 blobs uploaded, 0 mounted, {blobs} already present)" in second.stderr
    assert "uploaded sha256" not in second.stderr


def test_docker_archive_keeps_the_image_id(job: Job, umoci_layout: Path, tmp_path: Path) -> None:
    archive = tmp_path / "saved.tar"
    run(
        "skopeo", "copy", "--quiet", f"oci:{umoci_layout}:demo",
        f"docker-archive:{archive}:team/app:saved",
    )  # fmt: skip
    config_name = json.loads(run("tar", "-xOf", str(archive), "manifest.json"))[0]["Config"]
    image_id = "sha256:" + Path(config_name).name.removesuffix(".json")

    result = job.push(XACCT_SOURCE=f"docker-archive:{archive}", XACCT_TAGS="from-docker")

    assert result.returncode == 0, result.stderr
    pushed = json.loads(job.skopeo_inspect("team/app:from-docker", raw=True).stdout)
    assert pushed["config"]["digest"] == image_id
    source_layers = json.loads(run("skopeo", "inspect", f"docker-archive:{archive}"))["Layers"]
    assert job.inspect("team/app:from-docker")["Layers"] == source_layers


def test_oci_archive(job: Job, umoci_layout: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    run("tar", "-cf", str(archive), "-C", str(umoci_layout), ".")
    raw, _ = layout_manifest(umoci_layout, "demo")

    result = job.push(XACCT_SOURCE=f"oci-archive:{archive}:demo", XACCT_TAGS="from-archive")

    assert result.returncode == 0, result.stderr
    assert (
        job.inspect("team/app:from-archive")["Digest"]
        == "sha256:" + hashlib.sha256(raw).hexdigest()
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"XACCT_EXTERNAL_ID": "sentinel-wrong-external-id"}, "External ID sent (26 characters)"),
        ({"XACCT_EXTERNAL_ID": ""}, "External ID not sent"),
        (
            {"XACCT_ROLE_ARN": "arn:aws:iam::222222222222:role/NoSuchRole"},
            "role NoSuchRole must exist",
        ),
    ],
)
def test_refused_assume_role_names_both_sides(
    job: Job, umoci_layout: Path, change: dict[str, str], expected: str
) -> None:
    env = job.env(XACCT_SOURCE=f"oci:{umoci_layout}:demo", XACCT_TAGS="never")
    result = job.push(env={**env, **change})

    assert result.returncode == 3, result.stderr
    err = result.stderr
    role = change.get("XACCT_ROLE_ARN", job.world.role_arn)
    assert f"arn:aws:iam::111111111111:user/gitlab-runner may not assume {role}" in err
    assert expected in err
    assert "In the target account 222222222222: role" in err
    assert "trust policy must allow sts:AssumeRole" in err
    assert "In the caller's account 111111111111: the identity policy" in err
    assert "XACCT_EXTERNAL_ID must equal the trust policy's sts:ExternalId" in err
    assert "Traceback" not in err
    assert "sentinel-wrong-external-id" not in err
    assert job.skopeo_inspect("team/app:never").returncode != 0  # nothing was tagged


def test_caller_without_assume_role_permission_is_exit_3(job: Job, umoci_layout: Path) -> None:
    env = job.env(XACCT_SOURCE=f"oci:{umoci_layout}:demo", XACCT_TAGS="never")
    env["AWS_ACCESS_KEY_ID"] = job.world.no_assume_access_key_id
    env["AWS_SECRET_ACCESS_KEY"] = job.world.no_assume_secret_access_key

    result = job.push(env=env)

    assert result.returncode == 3, result.stderr
    assert "user/no-assume may not assume" in result.stderr
    assert "identity policy of arn:aws:iam::111111111111:user/no-assume" in result.stderr
    assert job.world.no_assume_secret_access_key not in result.stderr


def test_missing_repository_is_exit_4_unless_created(job: Job, umoci_layout: Path) -> None:
    source = f"oci:{umoci_layout}:demo"
    missing = job.push(XACCT_SOURCE=source, XACCT_REPOSITORY="team/brand-new", XACCT_TAGS="t1")
    assert missing.returncode == 4, missing.stderr
    assert (
        "ECR repository 'team/brand-new' does not exist in account 222222222222" in missing.stderr
    )
    assert "XACCT_CREATE_REPOSITORY=true" in missing.stderr

    created = job.push(
        "--create-repository",
        XACCT_SOURCE=source,
        XACCT_REPOSITORY="team/brand-new",
        XACCT_TAGS="t1",
    )
    assert created.returncode == 0, created.stderr
    assert "created ECR repository team/brand-new in 222222222222" in created.stderr
    assert job.inspect("team/brand-new:t1")["Digest"]
    # Created as asked: scan on push on; tag mutability left to the account's default.
    ourthing = job.world.session(
        job.world.runner_access_key_id, job.world.runner_secret_access_key
    ).client("sts", endpoint_url=job.world.endpoint_url)
    creds = ourthing.assume_role(
        RoleArn=job.world.role_arn, RoleSessionName="check", ExternalId=EXTERNAL_ID
    )["Credentials"]
    ecr = job.world.session(
        creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    ).client("ecr", endpoint_url=job.world.endpoint_url)
    (repo,) = ecr.describe_repositories(repositoryNames=["team/brand-new"])["repositories"]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert repo["registryId"] == "222222222222"


def test_registry_refusing_the_ecr_login_is_exit_4(
    job: Job, umoci_layout: Path, tmp_path: Path
) -> None:
    with start_registry(tmp_path / "other", password="not-the-ecr-token") as other:
        result = job.push(
            XACCT_SOURCE=f"oci:{umoci_layout}:demo",
            XACCT_TAGS="t",
            XACCT_REGISTRY_ENDPOINT=other.url,
        )
    assert result.returncode == 4, result.stderr
    assert f"registry {other.host} refused the login (GET /v2/) (HTTP 401" in result.stderr


def test_corrupt_layer_is_exit_5_and_nothing_is_tagged(
    job: Job, umoci_layout: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    run("cp", "-r", str(umoci_layout), str(broken))
    _, manifest = layout_manifest(broken, "demo")
    biggest = max(manifest["layers"], key=lambda d: d["size"])  # type: ignore[call-overload]
    blob = broken / "blobs" / "sha256" / biggest["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    blob.write_bytes(bytes(data))

    # A repository of its own: where the registry already has the blob, nothing is read at all.
    result = job.push(
        "--create-repository",
        XACCT_SOURCE=f"oci:{broken}:demo",
        XACCT_REPOSITORY="team/corrupt",
        XACCT_TAGS="corrupt",
    )

    assert result.returncode == 5, result.stderr
    assert f"blob {biggest['digest']} in the source hashes to sha256:" in result.stderr
    assert job.skopeo_inspect("team/corrupt:corrupt").returncode != 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"XACCT_ROLE_ARN": "arn:aws:iam::222222222222:user/x"}, "XACCT_ROLE_ARN: "),
        ({"XACCT_EXTERNAL_ID": "x"}, "XACCT_EXTERNAL_ID: "),
        ({"XACCT_REGION": "mars-1"}, "XACCT_REGION: "),
        ({"XACCT_REPOSITORY": "Team/App"}, "XACCT_REPOSITORY: "),
        ({"XACCT_TAGS": "bad tag!"}, "XACCT_TAGS: "),
        ({"XACCT_SOURCE": "docker://elsewhere/app:1"}, "XACCT_SOURCE: "),
        ({"XACCT_SOURCE": "oci-archive:/nonexistent.tar"}, "XACCT_SOURCE: "),
        ({"XACCT_CREATE_REPOSITRY": "true"}, "XACCT_CREATE_REPOSITRY: unknown"),
    ],
)
def test_bad_input_is_exit_2_in_one_line(job: Job, change: dict[str, str], message: str) -> None:
    env = job.env(XACCT_SOURCE="oci:/nonexistent", XACCT_TAGS="t")
    env.update(change)
    result = job.push(env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"gitlab-xacct: error: {message}")
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_debug_mode_shows_more_and_still_no_secret(job: Job, umoci_layout: Path) -> None:
    result = job.push("--debug", XACCT_SOURCE=f"oci:{umoci_layout}:demo", XACCT_TAGS="debug")
    assert result.returncode == 0, result.stderr
    assert "sts:AssumeRole" in result.stderr
    # The job fixture then scans stdout and stderr for every sentinel secret.


def test_docker_25_archive_pushes_its_own_oci_manifest(job: Job, tmp_path: Path) -> None:
    layers = [random_layer(300_000, seed=25), random_layer(1000, seed=26)]
    (info,) = write_docker_archive_oci(tmp_path / "save.tar", layers, "team/app:25")

    result = job.push(XACCT_SOURCE=f"docker-archive:{tmp_path / 'save.tar'}", XACCT_TAGS="d25")

    assert result.returncode == 0, result.stderr
    assert info.oci_manifest is not None
    assert job.skopeo_inspect("team/app:d25", raw=True).stdout.encode() == info.oci_manifest
    assert job.inspect("team/app:d25")["Layers"] == list(info.diff_ids)


def test_multi_platform_index_is_pushed_whole_with_its_digest(job: Job, tmp_path: Path) -> None:
    layout = write_oci_index_layout(tmp_path / "multi")

    result = job.push(XACCT_SOURCE=f"oci:{tmp_path / 'multi'}:latest", XACCT_TAGS="multi")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"@{layout.index_digest}")
    assert job.skopeo_inspect("team/app:multi", raw=True).stdout.encode() == layout.index
    for child in layout.children:  # every platform is pullable by digest
        assert job.inspect(f"team/app@{child.manifest_digest}")["Layers"] == list(
            child.layer_digests
        )


def test_gzipped_classic_archive_with_gzip_layers(job: Job, tmp_path: Path) -> None:
    archive = tmp_path / "save.tar.gz"
    (info,) = write_docker_archive_classic(
        archive, [random_layer(50_000, seed=7)], gzip_layers=True, compress=True
    )

    result = job.push(XACCT_SOURCE=f"docker-archive:{archive}", XACCT_TAGS="gz")

    assert result.returncode == 0, result.stderr
    pushed = json.loads(job.skopeo_inspect("team/app:gz", raw=True).stdout)
    assert pushed["config"]["digest"] == info.config_digest
    assert pushed["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"


def test_token_refused_mid_push_is_renewed_once(job: Job, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    write_oci_layout(layout, [random_layer(2000, seed=41)])
    with FaultProxy(job.registry.url) as proxy:
        # After the login worked, the registry refuses the token once, as an expired ECR token.
        proxy.fail_next(1, status=401, method="HEAD", path=re.compile(r"/blobs/"),
                        headers={"WWW-Authenticate": 'Basic realm="standin"'})  # fmt: skip
        result = job.push(
            XACCT_SOURCE=f"oci:{layout}:latest",
            XACCT_TAGS="renewed",
            XACCT_REPOSITORY="team/other",
            XACCT_REGISTRY_ENDPOINT=proxy.url,
        )
        assert proxy.injected == 1
    assert result.returncode == 0, result.stderr
    assert "refused the ECR token; asking ECR for a new one" in result.stderr
    assert job.inspect("team/other:renewed")["Digest"]
