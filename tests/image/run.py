"""`make image-test`: build the image as `make image` does and try it for real.

1. builds the Dockerfile on the debootstrap base (scripts/image.py);
2. runs `gitlab-xacct --version`, `push`, `doctor`, `login` and `credentials` against the
   stand-ins inside the built image (chroot isolation shares the host's network, so moto and
   docker-registry on 127.0.0.1 answer), and loads the AWS models the image keeps;
3. exports the image as an OCI layout, copies it with `gitlab-xacct copy` to the registry and
   reads it back with skopeo (same digest);
4. runs the CI templates inside the image as GitLab does, with gitlab-ci-local and podman
   (tests/image/pipelines.py); prints the layer sizes (docs/benchmarks.md).
Every server is stopped by pid, every command has a timeout, the buildah store is removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scripts.image import (
    STARTED,
    Buildah,
    build,
    buildah_store,
    export,
    print_sizes,
    project_version,
)
from scripts.image import run as image_run
from tests.image.pipelines import run_pipelines
from tests.standins.aws_world import build_world
from tests.standins.gitlab_job import job_env
from tests.standins.servers import start_moto, start_registry

IN_IMAGE_PATH = "/opt/xacct/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def step(title: str) -> None:
    print(f"image-test [{time.monotonic() - STARTED:5.1f}s] {title}", flush=True)


def run(*argv: str, timeout: float = 300) -> str:
    return image_run(*argv, timeout=timeout, who="image-test")


def main() -> int:
    tools = ("buildah", "debootstrap", "skopeo", "umoci", "docker-registry", "gitlab-xacct",
             "podman", "gitlab-ci-local")  # fmt: skip
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"image-test: {tool} is not on PATH; run `make image-test`, which installs it")
    with buildah_store("xacct-image-test-") as (buildah, work):
        return exercise(buildah, work, project_version())


def in_image_aws_calls(buildah: Buildah, ctr: str, env: dict[str, str]) -> None:
    """The image keeps botocore's models of the services the code calls, and nothing else:
    each model loads, and the commands that call them work inside the image."""
    from tests.unit.test_image_contents import services_called

    services = sorted(services_called())
    probe = (
        "import botocore.session; s = botocore.session.get_session(); "
        f"[s.get_service_model(name) for name in {services!r}]; "
        "print(len(s.get_available_services()))"
    )
    kept = buildah("run", "--isolation", "chroot", ctr, "--", "python3", "-c", probe).strip()
    if kept != str(len(services)):
        sys.exit(f"image-test: the image has {kept} AWS service models, expected {services}")
    as_job = ["env", *(f"{k}={v}" for k, v in env.items())]
    commands = (
        ["doctor"],
        ["login", "--docker-config", "/home/xacct/docker.json"],
        ["credentials", "--format", "json", "--output", "/home/xacct/credentials.json"],
    )
    for command in commands:
        buildah("run", "--isolation", "chroot", ctr, "--", *as_job, "gitlab-xacct", *command,
                timeout=180)  # fmt: skip
    step(f"in the image: the models of {', '.join(services)} only; doctor, login, credentials ok")


def exercise(buildah: Buildah, work: Path, version: str) -> int:
    image, revision = build(buildah, work)
    config = json.loads(buildah("inspect", "--type", "image", image))["OCIv1"]["config"]
    labels = config.get("Labels", {})
    if config.get("User") != "10001" or labels.get("org.opencontainers.image.revision") != revision:
        sys.exit(f"image-test: unexpected image config: {config}")
    step(f"built {image}: user {config['User']}, labels {labels}")

    ctr = buildah("from", "--pull=never", image).strip()
    shown = buildah("run", "--isolation", "chroot", ctr, "--", "gitlab-xacct", "--version").strip()
    if version not in shown:
        sys.exit(f"image-test: `gitlab-xacct --version` printed {shown!r}, not {version}")
    probe = (
        "id -u; command -v gitlab-xacct; command -v docker-credential-xacct; "
        "command -v docker; command -v dockerd; command -v pip; "
        "test -s /etc/ssl/certs/ca-certificates.crt && echo ca-certificates"
    )
    who = buildah("run", "--isolation", "chroot", ctr, "--", "/bin/sh", "-c", probe).split()
    expected = ["10001", "/opt/xacct/bin/gitlab-xacct", "/opt/xacct/bin/docker-credential-xacct",
                "ca-certificates"]  # fmt: skip
    if who != expected:
        sys.exit(f"image-test: expected {expected} (no docker, no pip), got {who}")
    step(f"in the image: {shown}; uid 10001; /bin/sh; both commands on PATH; CA certificates; "
         "no docker, no pip")  # fmt: skip

    with start_moto(work / "moto") as moto, start_registry(work / "registry") as registry:
        step(f"stand-ins: moto {moto.url} (pid {moto.pid}), registry {registry.url} "
             f"(pid {registry.pid})")  # fmt: skip
        world = build_world(moto.url, external_id="sentinel-ImageTest-ExtId-7c41")
        layout = work / "small"
        run("umoci", "init", "--layout", str(layout))
        run("umoci", "new", "--image", f"{layout}:latest")
        layout.chmod(0o755)
        for path in layout.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        env = job_env(
            world, registry.url, Path("/home/xacct"),
            XACCT_SOURCE="oci:/src/small:latest", XACCT_TAGS="from-image",
        )  # fmt: skip
        env["PATH"] = IN_IMAGE_PATH
        pushed = buildah(
            "run", "--isolation", "chroot", "-v", f"{layout}:/src/small:ro", ctr, "--",
            "env", *(f"{k}={v}" for k, v in env.items()), "gitlab-xacct", "push",
            timeout=180,
        )  # fmt: skip
        creds = f"{registry.username}:{registry.password}"
        seen = json.loads(run("skopeo", "inspect", "--tls-verify=false", "--creds", creds,
                              f"docker://{registry.host}/team/app:from-image"))  # fmt: skip
        step(f"push inside the image: ok, skopeo sees team/app:from-image at {seen['Digest']}")
        if seen["Digest"] not in pushed:
            sys.exit(f"image-test: push printed {pushed!r}, not the digest {seen['Digest']}")
        in_image_aws_calls(buildah, ctr, env)

        step("exporting the image as an OCI layout and copying it with gitlab-xacct")
        oci = work / "oci"
        digest = export(buildah, image, oci, version)
        run("gitlab-xacct", "copy", f"oci:{oci}:{version}",
            f"docker://{registry.host}/gitlab-xacct:{version}", "--dest-creds", creds,
            timeout=300)  # fmt: skip
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", creds,
             f"docker://{registry.host}/gitlab-xacct:{version}"],
            capture_output=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        read_back = "sha256:" + hashlib.sha256(raw).hexdigest()
        if read_back != digest:
            sys.exit(f"image-test: registry has {read_back}, the layout {digest}")
        step(f"skopeo reads gitlab-xacct:{version} back at {digest} (same as the layout)")
        run_pipelines(oci, version, world=world, registry=registry, work=work, step=step)
        buildah("rm", ctr)

    print_sizes(oci)
    step("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
