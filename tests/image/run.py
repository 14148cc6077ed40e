"""`make image-test`: build the Dockerfile offline with buildah and try the image for real.

1. a Debian base rootfs from debootstrap (cached as a tarball under .cache/image-base/);
2. imports it as a local image and builds the Dockerfile on it (`--build-arg BASE_IMAGE`);
3. runs `gitlab-xacct --version` and a `push` against the stand-ins inside the built image
   (chroot isolation shares the host's network, so moto and docker-registry on 127.0.0.1 answer);
4. exports the image as an OCI layout, copies it with `gitlab-xacct copy` to the registry and
   reads it back with skopeo (same digest); prints the layer sizes (docs/benchmarks.md).
Every server is stopped by pid, every command has a timeout, the buildah store is removed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from tests.standins.aws_world import build_world
from tests.standins.gitlab_job import job_env
from tests.standins.servers import start_moto, start_registry

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "image-base"
SUITE = "bookworm"
BASE_TARBALL = CACHE / f"debian-{SUITE}-python3.tar.gz"
BASE_IMAGE = f"localhost/xacct-base:{SUITE}"
IMAGE = "localhost/gitlab-xacct:image-test"
IN_IMAGE_PATH = "/opt/xacct/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
STARTED = time.monotonic()


def step(title: str) -> None:
    print(f"image-test [{time.monotonic() - STARTED:5.1f}s] {title}", flush=True)


def run(*argv: str, timeout: float = 300, cwd: Path | None = None) -> str:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )
    if result.returncode != 0:
        sys.exit(
            f"image-test: {' '.join(argv[:6])} ... failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def debian_mirror() -> str:
    """The machine's own Debian mirror, as apt is configured."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        if not source.is_file():
            continue
        for line in source.read_text(errors="replace").splitlines():
            words = line.split()
            if (
                line.startswith("URIs:")
                and len(words) > 1
                and words[1].rstrip("/").endswith("/debian")
            ):
                return words[1]
            if words[:1] == ["deb"] and SUITE in words:
                uri = next(w for w in words[1:] if "://" in w)
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    sys.exit("image-test: no Debian mirror for debootstrap in the apt sources; configure apt first")


def base_tarball() -> Path:
    if BASE_TARBALL.is_file():
        step(f"base rootfs: cached {BASE_TARBALL.relative_to(ROOT)}")
        return BASE_TARBALL
    CACHE.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    step(f"base rootfs: debootstrap {SUITE} from {mirror} (about a minute)")
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            "debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
            SUITE, str(rootfs), mirror, timeout=600,
        )  # fmt: skip
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = Path(tmp) / "rootfs.tar.gz"
        run("tar", "--numeric-owner", "-C", str(rootfs), "-czf", str(partial), ".", timeout=300)
        partial.replace(BASE_TARBALL)
    return BASE_TARBALL


class Buildah:
    def __init__(self, store: Path) -> None:
        self.flags = [
            "--storage-driver", "vfs",
            "--root", str(store / "root"),
            "--runroot", str(store / "runroot"),
        ]  # fmt: skip

    def __call__(self, *argv: str, timeout: float = 300) -> str:
        return run("buildah", *self.flags, *argv, timeout=timeout)


def layer_sizes(layout: Path) -> list[dict[str, object]]:
    """Each layer's media type, stored size and (for gzip) uncompressed size."""
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_bytes())
    sizes: list[dict[str, object]] = []
    for layer in manifest["layers"]:
        blob = layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]
        uncompressed = layer["size"]
        if "gzip" in layer["mediaType"]:
            with gzip.open(blob, "rb") as stream:
                uncompressed = 0
                while chunk := stream.read(1 << 20):
                    uncompressed += len(chunk)
        sizes.append({"mediaType": layer["mediaType"], "size": layer["size"],
                      "uncompressed": uncompressed})  # fmt: skip
    return sizes


def main() -> int:
    for tool in ("buildah", "debootstrap", "skopeo", "umoci", "docker-registry", "gitlab-xacct"):
        if shutil.which(tool) is None:
            sys.exit(f"image-test: {tool} is not on PATH; run `make image-test`, which installs it")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    revision = run("git", "rev-parse", "HEAD", cwd=ROOT, timeout=30).strip()
    tarball = base_tarball()

    with tempfile.TemporaryDirectory(prefix="xacct-image-test-") as tmp:
        work = Path(tmp)
        buildah = Buildah(work / "store")
        try:
            return exercise(buildah, work, tarball, version, revision)
        finally:
            step("cleaning the buildah store")
            subprocess.run(["buildah", *buildah.flags, "rm", "--all"],
                           capture_output=True, timeout=120, check=False)  # fmt: skip
            subprocess.run(["buildah", *buildah.flags, "rmi", "--all", "--force"],
                           capture_output=True, timeout=120, check=False)  # fmt: skip


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


def exercise(buildah: Buildah, work: Path, tarball: Path, version: str, revision: str) -> int:
    step(f"importing the base as {BASE_IMAGE}")
    context = work / "base"
    context.mkdir()
    os.link(tarball, context / "rootfs.tar.gz")
    (context / "Containerfile").write_text('FROM scratch\nADD rootfs.tar.gz /\nCMD ["/bin/sh"]\n')
    buildah("bud", "--isolation", "chroot", "--layers=false", "-t", BASE_IMAGE, str(context))

    step("building the Dockerfile on it")
    # The build's pip reaches the package index through this machine's TLS setup: its CA bundle
    # is mounted for the RUN steps only and never ends up in the image.
    build_env = work / "pip.conf"
    build_env.write_text("[global]\ncert = /etc/ssl/host-ca.crt\ndisable-pip-version-check = 1\n")
    buildah(
        "bud", "--isolation", "chroot", "--layers=false", "--pull=never",
        "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg", f"VERSION={version}",
        "--build-arg", f"REVISION={revision}",
        "-v", f"{HOST_CA}:/etc/ssl/host-ca.crt:ro",
        "-v", f"{build_env}:/etc/pip.conf:ro",
        "-t", IMAGE, "-f", str(ROOT / "Dockerfile"), str(ROOT),
        timeout=600,
    )  # fmt: skip
    config = json.loads(buildah("inspect", "--type", "image", IMAGE))["OCIv1"]["config"]
    labels = config.get("Labels", {})
    if config.get("User") != "10001" or labels.get("org.opencontainers.image.revision") != revision:
        sys.exit(f"image-test: unexpected image config: {config}")
    step(f"built {IMAGE}: user {config['User']}, labels {labels}")

    ctr = buildah("from", "--pull=never", IMAGE).strip()
    shown = buildah("run", "--isolation", "chroot", ctr, "--", "gitlab-xacct", "--version").strip()
    if version not in shown:
        sys.exit(f"image-test: `gitlab-xacct --version` printed {shown!r}, not {version}")
    probe = "id -u; command -v docker dockerd || true"
    who = buildah("run", "--isolation", "chroot", ctr, "--", "/bin/sh", "-c", probe).split()
    if who != ["10001"]:
        sys.exit(f"image-test: expected uid 10001 and no docker client, got {who}")
    step(f"in the image: {shown}; uid 10001; /bin/sh; no docker")

    with start_moto(work / "moto") as moto, start_registry(work / "registry") as registry:
        step(f"stand-ins: moto {moto.url} (pid {moto.pid}), registry {registry.url} "
             f"(pid {registry.pid})")  # fmt: skip
        world = build_world(moto.url, external_id="image-test-ExternalId")
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
        buildah("push", IMAGE, f"oci:{oci}:{version}")
        index = json.loads((oci / "index.json").read_text())
        digest = index["manifests"][0]["digest"]
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
        buildah("rm", ctr)

    sizes = layer_sizes(oci)
    print("image-test: layers of the built image (bytes):", flush=True)
    for layer in sizes:
        print(f"  {layer['mediaType']}: stored {layer['size']}, "
              f"uncompressed {layer['uncompressed']}")  # fmt: skip
    total = sum(int(str(layer["uncompressed"])) for layer in sizes)
    stored = sum(int(str(layer["size"])) for layer in sizes)
    print(f"image-test: total uncompressed {total / 1e6:.1f} MB, stored {stored / 1e6:.1f} MB")
    step("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
