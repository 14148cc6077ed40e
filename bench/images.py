"""The images every tool pushes: built once per benchmark, read by all of them.

The 200 MiB image comes from the tests' image factory (4 incompressible layers of 50 MiB). The
1 GiB layer is written here, streaming to disk with its digest computed on the way, because the
factory builds layers in memory.
"""

from __future__ import annotations

import hashlib
import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

from gitlab_xacct.registry.image import OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST
from tests.imagefactory import REF_NAME, add_to_index, random_layer, write_blob, write_oci_layout

MIB = 1024 * 1024
TAG = "bench"
_CHUNK = 4 * MIB
_TAR_BLOCK = 512


@dataclass(frozen=True)
class Image:
    layout: Path
    tag: str
    manifest_digest: str
    size: int  # bytes of all blobs: what a first push uploads

    @property
    def oci(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


def build_layered_image(layout: Path, *, layers: int = 4, layer_mib: int = 50) -> Image:
    """`layers` random layers of `layer_mib` MiB each, as the issue's 200 MiB image."""
    data = [random_layer(layer_mib * MIB, seed=seed) for seed in range(1, layers + 1)]
    info = write_oci_layout(layout, data, ref=TAG)
    size = sum(len(layer) for layer in data) + len(info.config)
    return Image(layout, TAG, info.manifest_digest, size)


def write_streaming_layer(blobs: Path, size: int, *, seed: int) -> tuple[str, int]:
    """An uncompressed tar holding one file of `size` random bytes, never all in memory.

    Returns the blob's digest and length; the blob lands under `blobs/<hex>`.
    """
    blobs.mkdir(parents=True, exist_ok=True)
    partial = blobs / "layer.partial"
    digest = hashlib.sha256()
    rng = random.Random(seed)  # noqa: S311 - benchmark data, not secrets
    member = tarfile.TarInfo("data.bin")
    member.size, member.mode, member.mtime = size, 0o644, 0
    with partial.open("wb") as out:

        def put(data: bytes) -> None:
            out.write(data)
            digest.update(data)

        put(member.tobuf(format=tarfile.USTAR_FORMAT))
        remaining = size
        while remaining > 0:
            step = min(_CHUNK, remaining)
            put(rng.randbytes(step))
            remaining -= step
        put(b"\0" * ((-size) % _TAR_BLOCK))
        put(b"\0" * (2 * _TAR_BLOCK))  # end-of-archive marker
        length = out.tell()
    hex_digest = digest.hexdigest()
    partial.rename(blobs / hex_digest)
    return f"sha256:{hex_digest}", length


def build_big_layer_image(layout: Path, *, size: int) -> Image:
    """One layer of `size` random bytes (plus tar framing), streamed to disk."""
    layer_digest, layer_size = write_streaming_layer(layout / "blobs" / "sha256", size, seed=6)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},  # uncompressed layer
        }
    ).encode()
    config_digest = write_blob(layout, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_TAR, "digest": layer_digest, "size": layer_size}],
        }
    ).encode()
    manifest_digest = write_blob(layout, manifest)
    add_to_index(
        layout,
        {
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest),
            "annotations": {REF_NAME: TAG},
        },
    )
    return Image(layout, TAG, manifest_digest, layer_size + len(config))
