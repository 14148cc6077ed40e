"""The image sources against images made by real tools: umoci builds, skopeo converts and reads.

Each digest the sources report is checked against what skopeo says about the same image, and
every blob is hashed as the push engine will hash it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gitlab_xacct.config.source import parse_source
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.image import OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_MANIFEST, ImageManifest
from gitlab_xacct.registry.sources import open_source
from tests.imagefactory import digest_of, write_blob

_MISSING = [tool for tool in ("umoci", "skopeo") if shutil.which(tool) is None]
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(_MISSING), reason=f"needs {', '.join(_MISSING)} on PATH"),
]


def run(*args: str | Path) -> bytes:
    done = subprocess.run([str(a) for a in args], capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, f"{args}: {done.stderr.decode(errors='replace')}"
    return done.stdout


def streamed(image: ImageManifest) -> list[tuple[str, int]]:
    """Each blob's sha256 and length, read through Blob.open as the push engine reads it."""
    found = []
    for blob in image.blobs:
        hasher, size = hashlib.sha256(), 0
        with blob.open() as stream:
            while chunk := stream.read(65536):
                hasher.update(chunk)
                size += len(chunk)
        found.append(("sha256:" + hasher.hexdigest(), size))
    return found


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout made by umoci: two inserted layers under `t`, and the same image as `u`."""
    root = tmp_path_factory.mktemp("umoci")
    layout = root / "L"
    (root / "hello").write_text("hello from umoci\n")
    (root / "tool").mkdir()
    (root / "tool" / "run.sh").write_text("#!/bin/sh\necho run\n")
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", f"{layout}:t")
    run("umoci", "insert", "--image", f"{layout}:t", root / "hello", "/etc/hello")
    run("umoci", "insert", "--image", f"{layout}:t", root / "tool", "/opt/tool")
    run("umoci", "config", "--image", f"{layout}:t", "--config.env", "MODE=test")
    run("umoci", "tag", "--image", f"{layout}:t", "u")
    return layout


def test_umoci_layout_matches_skopeo(layout: Path) -> None:
    raw = run("skopeo", "inspect", "--raw", f"oci:{layout}:t")
    with open_source(parse_source(f"oci:{layout}:t")) as image:
        assert isinstance(image, ImageManifest)
        assert image.manifest == raw
        assert image.digest == digest_of(raw)
        assert "mediaType" not in json.loads(raw)  # umoci omits it: it comes from index.json
        assert image.media_type == OCI_MANIFEST
        doc = json.loads(raw)
        assert image.config.digest == doc["config"]["digest"]
        assert [layer.digest for layer in image.layers] == [x["digest"] for x in doc["layers"]]
        assert {layer.media_type for layer in image.layers} == {OCI_LAYER_GZIP}
        assert len(image.layers) == 2
        assert streamed(image) == [(blob.digest, blob.size) for blob in image.blobs]
    with pytest.raises(ConfigError, match="holds 2 images; choose one with :REF, one of t, u"):
        open_source(parse_source(f"oci:{layout}")).__enter__()


def test_skopeo_oci_archive(layout: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    run("skopeo", "copy", "--quiet", f"oci:{layout}:t", f"oci-archive:{archive}:t")
    raw = run("skopeo", "inspect", "--raw", f"oci-archive:{archive}:t")
    for spec in (f"oci-archive:{archive}", f"oci-archive:{archive}:t"):
        with open_source(parse_source(spec)) as image:
            assert isinstance(image, ImageManifest)
            assert (image.manifest, image.digest) == (raw, digest_of(raw))
            assert streamed(image) == [(blob.digest, blob.size) for blob in image.blobs]


def test_skopeo_docker_archive(layout: Path, tmp_path: Path) -> None:
    archive = tmp_path / "app.tar"
    run("skopeo", "copy", "--quiet", f"oci:{layout}:t", f"docker-archive:{archive}:team/app:t")
    oci = json.loads(run("skopeo", "inspect", "--raw", f"oci:{layout}:t"))
    config = json.loads(run("skopeo", "inspect", "--config", "--raw", f"oci:{layout}:t"))
    # skopeo's own view of the archive: a Docker v2 manifest it synthesises the same way.
    seen = json.loads(run("skopeo", "inspect", "--raw", f"docker-archive:{archive}"))
    gzipped = tmp_path / "app.tar.gz"
    with archive.open("rb") as source, gzip.open(gzipped, "wb") as target:
        shutil.copyfileobj(source, target)
    digests = set()
    for spec in (f"{archive}", f"{archive}:team/app:t", f"{archive}:@0", f"{gzipped}"):
        with open_source(parse_source(f"docker-archive:{spec}")) as image:
            assert isinstance(image, ImageManifest)
            # The config is pushed byte for byte, so the image ID is the one umoci built.
            assert image.config.digest == oci["config"]["digest"] == seen["config"]["digest"]
            assert [x.digest for x in image.layers] == config["rootfs"]["diff_ids"]
            assert [x.digest for x in image.layers] == [x["digest"] for x in seen["layers"]]
            assert {x.media_type for x in image.layers} == {OCI_LAYER_TAR}  # skopeo decompresses
            assert streamed(image) == [(blob.digest, blob.size) for blob in image.blobs]
            digests.add(image.digest)
    assert len(digests) == 1


def test_synthesised_manifest_is_a_valid_image_for_skopeo(layout: Path, tmp_path: Path) -> None:
    """Write what docker-archive hands the push engine into a layout; skopeo copies it, which
    recomputes every blob digest, and reads back the exact manifest bytes.
    """
    archive = tmp_path / "app.tar"
    run("skopeo", "copy", "--quiet", f"oci:{layout}:t", f"docker-archive:{archive}:team/app:t")
    out = tmp_path / "X"
    with open_source(parse_source(f"docker-archive:{archive}")) as image:
        assert isinstance(image, ImageManifest)
        for blob in image.blobs:
            with blob.open() as stream:
                write_blob(out, stream.read())
        write_blob(out, image.manifest)
        descriptor = {
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": len(image.manifest),
            "annotations": {"org.opencontainers.image.ref.name": "t"},
        }
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    assert run("skopeo", "inspect", "--raw", f"oci:{out}:t") == image.manifest
    run(
        "skopeo", "copy", "--quiet", "--preserve-digests", f"oci:{out}:t", f"oci:{tmp_path / 'Y'}:t"
    )
    assert run("skopeo", "inspect", "--raw", f"oci:{tmp_path / 'Y'}:t") == image.manifest
