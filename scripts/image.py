"""`make image`: build the gitlab-xacct image offline and write it as an OCI layout.

    .venv/bin/python scripts/image.py [--output build/image-oci]

1. a Debian bookworm base rootfs from debootstrap (minbase with python3, python3-venv and
   ca-certificates), cached as a tarball under .cache/image-base/;
2. buildah (vfs storage, chroot isolation, a store of its own) imports it and builds the
   Dockerfile on it (`--build-arg BASE_IMAGE`), with the version and the git revision as labels;
3. writes the image to OUTPUT as an OCI layout, tagged with the version (`oci:OUTPUT:VERSION`),
   and prints its layers' sizes. Run it, or push it: `gitlab-xacct copy oci:OUTPUT:VERSION
   docker://HOST/REPO:TAG`, `skopeo copy`, `podman pull oci:OUTPUT:VERSION`.

Needs root (buildah's chroot isolation, debootstrap) and the Debian mirror apt uses.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "image-base"
SUITE = "bookworm"
OUTPUT = ROOT / "build" / "image-oci"
BASE_IMAGE = f"localhost/xacct-base:{SUITE}"
IMAGE = "localhost/gitlab-xacct:build"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
STARTED = time.monotonic()


def step(title: str) -> None:
    print(f"image [{time.monotonic() - STARTED:5.1f}s] {title}", flush=True)


def run(*argv: str, timeout: float = 300, cwd: Path | None = None, who: str = "image") -> str:
    """A command's stdout; its failure ends the script with its output, named by `who`."""
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )
    if result.returncode != 0:
        sys.exit(
            f"{who}: {' '.join(argv[:6])} ... failed ({result.returncode}):\n"
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
    sys.exit("image: no Debian mirror for debootstrap in the apt sources; configure apt first")


def rootfs_tarball(name: str, packages: tuple[str, ...]) -> Path:
    """A Debian minbase root with `packages`, as a tarball cached under .cache/image-base/."""
    tarball = CACHE / f"debian-{SUITE}-{name}.tar.gz"
    if tarball.is_file():
        step(f"{name} rootfs: cached {tarball.relative_to(ROOT)}")
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    step(f"{name} rootfs: debootstrap {SUITE} from {mirror} (about a minute)")
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            "debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
            SUITE, str(rootfs), mirror, timeout=600,
        )  # fmt: skip
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = Path(tmp) / "rootfs.tar.gz"
        run("tar", "--numeric-owner", "-C", str(rootfs), "-czf", str(partial), ".", timeout=300)
        partial.replace(tarball)
    return tarball


class Buildah:
    """buildah with a store of its own (vfs), so nothing lands in the machine's store."""

    def __init__(self, store: Path) -> None:
        self.flags = [
            "--storage-driver", "vfs",
            "--root", str(store / "root"),
            "--runroot", str(store / "runroot"),
        ]  # fmt: skip

    def __call__(self, *argv: str, timeout: float = 300) -> str:
        return run("buildah", *self.flags, *argv, timeout=timeout)

    def import_rootfs(self, tarball: Path, image: str, work: Path) -> None:
        context = work / f"context-{image.rpartition('/')[2].replace(':', '-')}"
        context.mkdir()
        os.link(tarball, context / "rootfs.tar.gz")
        (context / "Containerfile").write_text(
            'FROM scratch\nADD rootfs.tar.gz /\nCMD ["/bin/sh"]\n'
        )
        self("bud", "--isolation", "chroot", "--layers=false", "-t", image, str(context))

    def clean(self) -> None:
        for argv in (("rm", "--all"), ("rmi", "--all", "--force")):
            subprocess.run(
                ["buildah", *self.flags, *argv], capture_output=True, timeout=120, check=False
            )


@contextmanager
def buildah_store(prefix: str) -> Iterator[tuple[Buildah, Path]]:
    """A temporary work folder and a buildah store in it, emptied afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        buildah = Buildah(work / "store")
        try:
            yield buildah, work
        finally:
            step("cleaning the buildah store")
            buildah.clean()


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def build(buildah: Buildah, work: Path) -> tuple[str, str]:
    """Build the Dockerfile on the debootstrap base: (image name, git revision)."""
    version = project_version()
    revision = run("git", "rev-parse", "HEAD", cwd=ROOT, timeout=30).strip()
    buildah.import_rootfs(rootfs_tarball("python3", BASE_PACKAGES), BASE_IMAGE, work)
    step(f"building the Dockerfile on {BASE_IMAGE}")
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
    return IMAGE, revision


def export(buildah: Buildah, image: str, layout: Path, tag: str) -> str:
    """The image as an OCI layout at `layout`, tagged `tag` (replacing an older tag of that
    name); its manifest digest."""
    if layout.exists():
        shutil.rmtree(layout)
    layout.parent.mkdir(parents=True, exist_ok=True)
    buildah("push", image, f"oci:{layout}:{tag}")
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def layer_sizes(layout: Path) -> list[tuple[str, int, int]]:
    """Each layer's media type, stored size and (for gzip) uncompressed size."""
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_bytes())
    sizes = []
    for layer in manifest["layers"]:
        blob = layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]
        uncompressed = int(layer["size"])
        if "gzip" in layer["mediaType"]:
            with gzip.open(blob, "rb") as stream:
                uncompressed = 0
                while chunk := stream.read(1 << 20):
                    uncompressed += len(chunk)
        sizes.append((str(layer["mediaType"]), int(layer["size"]), uncompressed))
    return sizes


def print_sizes(layout: Path) -> None:
    sizes = layer_sizes(layout)
    print("image: layers (bytes):", flush=True)
    for media_type, stored, uncompressed in sizes:
        print(f"  {media_type}: stored {stored}, uncompressed {uncompressed}")
    total = sum(uncompressed for _, _, uncompressed in sizes)
    stored = sum(stored for _, stored, _ in sizes)
    print(f"image: total uncompressed {total / 1e6:.1f} MB, stored {stored / 1e6:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="OCI layout folder")
    args = parser.parse_args(argv)
    for tool in ("buildah", "debootstrap", "git"):
        if shutil.which(tool) is None:
            sys.exit(f"image: {tool} is not on PATH; run `make image`, which installs it")
    with buildah_store("xacct-image-") as (buildah, work):
        image, _ = build(buildah, work)
        version = project_version()
        digest = export(buildah, image, args.output, version)
    step(f"wrote oci:{args.output}:{version} ({digest})")
    print_sizes(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
