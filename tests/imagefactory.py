"""Small, deterministic images on disk in every format the image sources read.

Manifests and configs are written indented, as no registry client would re-serialise them, so a
test that compares bytes notices any re-serialisation. Docker archives follow what `docker save`
writes: classic (before 25) and OCI-in-tar (25 and later).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gitlab_xacct.registry.image import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
)

REF_NAME = "org.opencontainers.image.ref.name"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    return digest.removeprefix("sha256:")


# ---- tar writing -------------------------------------------------------------------------


@dataclass(frozen=True)
class TarEntry:
    """One member of a hand-made tar: a file (`data`), a directory, or a link (`link`)."""

    name: str
    data: bytes = b""
    kind: Literal["file", "dir", "symlink", "hardlink"] = "file"
    link: str = ""


def tar_bytes(entries: Sequence[TarEntry]) -> bytes:
    """A deterministic uncompressed tar: fixed owner, mode and mtime."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            elif entry.kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if entry.kind == "symlink" else tarfile.LNKTYPE
                info.linkname, info.mode = entry.link, 0o777
                archive.addfile(info)
            else:
                info.size, info.mode = len(entry.data), 0o644
                archive.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()


def write_tar(file: Path, entries: Sequence[TarEntry], *, compress: bool = False) -> Path:
    data = tar_bytes(entries)
    file.write_bytes(gzip_bytes(data) if compress else data)
    return file


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def make_layer(files: dict[str, bytes]) -> bytes:
    """A deterministic layer tar holding `files` (sorted, parents first)."""
    return tar_bytes([TarEntry(name, data) for name, data in sorted(files.items())])


def random_layer(size: int, seed: int) -> bytes:
    """A layer of about `size` bytes of incompressible data, the same for the same seed."""
    data = random.Random(seed).randbytes(size)  # noqa: S311 - test data, not secrets
    return make_layer({"data.bin": data})


def diff_id(layer: bytes) -> str:
    """The digest of the uncompressed tar, as a config's rootfs.diff_ids lists it."""
    return digest_of(gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer)


def layer_media_type(layer: bytes) -> str:
    return OCI_LAYER_GZIP if layer[:2] == b"\x1f\x8b" else OCI_LAYER_TAR


def image_config(
    layers: Sequence[bytes], *, architecture: str = "amd64", os: str = "linux"
) -> dict[str, object]:
    return {
        "architecture": architecture,
        "os": os,
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id(layer) for layer in layers]},
        "history": [{"created_by": f"imagefactory layer {n}"} for n in range(len(layers))],
    }


def _pretty(doc: object) -> bytes:
    return (json.dumps(doc, indent=3) + "\n").encode()


def _compact(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# ---- OCI layouts -------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutInfo:
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True)
class IndexLayoutInfo:
    index_digest: str
    index: bytes
    children: tuple[LayoutInfo, ...]


def write_blob(layout: Path, data: bytes) -> str:
    digest = digest_of(data)
    path = layout / "blobs" / "sha256" / hex_of(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def add_to_index(layout: Path, descriptor: Mapping[str, object]) -> None:
    """Append `descriptor` to index.json, creating the layout when it does not exist yet."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index_path = layout / "index.json"
    index: dict[str, object] = {"schemaVersion": 2, "manifests": []}
    if index_path.exists():
        index = json.loads(index_path.read_bytes())
    manifests = index["manifests"]
    assert isinstance(manifests, list)
    manifests.append(dict(descriptor))
    index_path.write_bytes(_pretty(index))


def write_image_blobs(
    layout: Path,
    layers: Sequence[bytes],
    *,
    config: Mapping[str, object] | None = None,
    manifest_media_type_field: bool = True,
) -> LayoutInfo:
    """Write one image's layers, config and manifest as blobs (index.json untouched)."""
    config_bytes = _pretty(dict(config) if config is not None else image_config(layers))
    config_digest = write_blob(layout, config_bytes)
    layer_digests = tuple(write_blob(layout, layer) for layer in layers)
    manifest: dict[str, object] = {"schemaVersion": 2}
    if manifest_media_type_field:
        manifest["mediaType"] = OCI_MANIFEST
    manifest["config"] = {
        "mediaType": OCI_CONFIG,
        "digest": config_digest,
        "size": len(config_bytes),
    }
    manifest["layers"] = [
        {"mediaType": layer_media_type(layer), "digest": digest, "size": len(layer)}
        for layer, digest in zip(layers, layer_digests, strict=True)
    ]
    manifest_bytes = _pretty(manifest)
    return LayoutInfo(
        manifest_digest=write_blob(layout, manifest_bytes),
        config_digest=config_digest,
        layer_digests=layer_digests,
        manifest=manifest_bytes,
        config=config_bytes,
        layers=tuple(layers),
    )


def write_oci_layout(
    layout: Path,
    layers: Sequence[bytes],
    *,
    ref: str | None = "latest",
    config: Mapping[str, object] | None = None,
    manifest_media_type_field: bool = True,
) -> LayoutInfo:
    """Write an image into the OCI layout at `layout` (created, or added to) under `ref`."""
    info = write_image_blobs(
        layout, layers, config=config, manifest_media_type_field=manifest_media_type_field
    )
    descriptor: dict[str, object] = {
        "mediaType": OCI_MANIFEST,
        "digest": info.manifest_digest,
        "size": len(info.manifest),
    }
    if ref is not None:
        descriptor["annotations"] = {REF_NAME: ref}
    add_to_index(layout, descriptor)
    return info


def write_oci_index_layout(
    layout: Path,
    platforms: Mapping[str, Sequence[bytes]] | None = None,
    *,
    ref: str | None = "latest",
    index_media_type_field: bool = True,
) -> IndexLayoutInfo:
    """A multi-platform image: one child per `os/arch`, an OCI index over them, under `ref`."""
    if platforms is None:
        platforms = {
            "linux/amd64": [make_layer({"arch": b"amd64\n"})],
            "linux/arm64": [make_layer({"arch": b"arm64\n"})],
        }
    children: list[LayoutInfo] = []
    entries: list[dict[str, object]] = []
    for platform, layers in platforms.items():
        os, _, architecture = platform.partition("/")
        config = image_config(layers, architecture=architecture, os=os)
        child = write_image_blobs(layout, layers, config=config, manifest_media_type_field=False)
        children.append(child)
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": child.manifest_digest,
                "size": len(child.manifest),
                "platform": {"architecture": architecture, "os": os},
            }
        )
    index: dict[str, object] = {"schemaVersion": 2}
    if index_media_type_field:
        index["mediaType"] = OCI_INDEX
    index["manifests"] = entries
    index_bytes = _pretty(index)
    index_digest = write_blob(layout, index_bytes)
    descriptor: dict[str, object] = {
        "mediaType": OCI_INDEX,
        "digest": index_digest,
        "size": len(index_bytes),
    }
    if ref is not None:
        descriptor["annotations"] = {REF_NAME: ref}
    add_to_index(layout, descriptor)
    return IndexLayoutInfo(index_digest=index_digest, index=index_bytes, children=tuple(children))


def write_oci_archive(file: Path, layout: Path, *, compress: bool = False) -> Path:
    """Tar the layout directory (as `skopeo copy ... oci-archive:` does)."""
    entries = [
        TarEntry(path.relative_to(layout).as_posix(), kind="dir")
        if path.is_dir()
        else TarEntry(path.relative_to(layout).as_posix(), path.read_bytes())
        for path in sorted(layout.rglob("*"))
    ]
    return write_tar(file, entries, compress=compress)


# ---- docker save archives ----------------------------------------------------------------


@dataclass(frozen=True)
class DockerImage:
    """One more image for a multi-image archive."""

    layers: Sequence[bytes]
    repo_tags: Sequence[str]
    config: Mapping[str, object] | None = None


@dataclass(frozen=True)
class DockerImageInfo:
    config_digest: str
    config: bytes
    diff_ids: tuple[str, ...]
    repo_tags: tuple[str, ...]
    oci_manifest_digest: str | None = None  # Docker 25+ archives only
    oci_manifest: bytes | None = None


def _images(
    layers: Sequence[bytes], repo_tag: str | None, extra: Sequence[DockerImage]
) -> list[DockerImage]:
    return [DockerImage(layers, [repo_tag] if repo_tag else []), *extra]


def _config_bytes(image: DockerImage, uncompressed: Sequence[bytes]) -> bytes:
    return _compact(dict(image.config) if image.config is not None else image_config(uncompressed))


def write_docker_archive_classic(
    file: Path,
    layers: Sequence[bytes],
    repo_tag: str | None = "team/app:1",
    *,
    extra_images: Sequence[DockerImage] = (),
    gzip_layers: bool = False,
    compress: bool = False,
) -> tuple[DockerImageInfo, ...]:
    """What `docker save` wrote before Docker 25: `<id>/layer.tar`, `<config>.json`, and a
    symlink for a layer already saved (as Docker does for a repeated diff_id).
    """
    entries: list[TarEntry] = []
    saved: dict[str, str] = {}  # diff_id -> layer.tar member already written
    manifest: list[dict[str, object]] = []
    infos: list[DockerImageInfo] = []
    for number, image in enumerate(_images(layers, repo_tag, extra_images)):
        config = _config_bytes(image, image.layers)
        config_digest = digest_of(config)
        entries.append(TarEntry(f"{hex_of(config_digest)}.json", config))
        paths: list[str] = []
        for position, layer in enumerate(image.layers):
            layer_id = hashlib.sha256(f"{number}/{position}/{config_digest}".encode()).hexdigest()
            member = f"{layer_id}/layer.tar"
            entries.append(TarEntry(layer_id, kind="dir"))
            entries.append(TarEntry(f"{layer_id}/VERSION", b"1.0"))
            entries.append(TarEntry(f"{layer_id}/json", _compact({"id": layer_id})))
            key = diff_id(layer)
            if key in saved:
                entries.append(TarEntry(member, kind="symlink", link=f"../{saved[key]}"))
            else:
                entries.append(TarEntry(member, gzip_bytes(layer) if gzip_layers else layer))
                saved[key] = member
            paths.append(member)
        entry: dict[str, object] = {
            "Config": f"{hex_of(config_digest)}.json",
            "RepoTags": list(image.repo_tags) or None,
            "Layers": paths,
        }
        manifest.append(entry)
        infos.append(
            DockerImageInfo(
                config_digest=config_digest,
                config=config,
                diff_ids=tuple(diff_id(layer) for layer in image.layers),
                repo_tags=tuple(image.repo_tags),
            )
        )
    entries.append(TarEntry("manifest.json", _compact(manifest) + b"\n"))
    write_tar(file, entries, compress=compress)
    return tuple(infos)


def write_docker_archive_oci(
    file: Path,
    layers: Sequence[bytes],
    repo_tag: str | None = "team/app:1",
    *,
    extra_images: Sequence[DockerImage] = (),
    oci_layers: Literal["ok", "empty", "reversed"] = "ok",
    compress: bool = False,
) -> tuple[DockerImageInfo, ...]:
    """What `docker save` writes from Docker 25: an OCI layout plus manifest.json pointing into
    blobs/. `oci_layers` reproduces 25.0.0's OCI manifests with no layers (moby#47065) or
    layers out of order (moby#47150).
    """
    blobs: dict[str, bytes] = {}
    manifest: list[dict[str, object]] = []
    descriptors: list[dict[str, object]] = []
    infos: list[DockerImageInfo] = []
    for image in _images(layers, repo_tag, extra_images):
        config = _config_bytes(image, image.layers)
        config_digest = digest_of(config)
        blobs[config_digest] = config
        layer_descriptors: list[dict[str, object]] = []
        for layer in image.layers:
            blobs[digest_of(layer)] = layer
            layer_descriptors.append(
                {
                    "mediaType": layer_media_type(layer),
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
            )
        if oci_layers == "empty":
            layer_descriptors = []
        elif oci_layers == "reversed":
            layer_descriptors.reverse()
        oci_manifest = _compact(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": config_digest,
                    "size": len(config),
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
                "layers": layer_descriptors,
            }
        )
        manifest_digest = digest_of(oci_manifest)
        blobs[manifest_digest] = oci_manifest
        for tag in image.repo_tags:
            # Docker names the image in full and the tag alone (moby image/tarexport/save.go).
            annotations = {"io.containerd.image.name": tag, REF_NAME: tag.rpartition(":")[2]}
            descriptors.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(oci_manifest),
                    "annotations": annotations,
                }
            )
        manifest.append(
            {
                "Config": f"blobs/sha256/{hex_of(config_digest)}",
                "RepoTags": list(image.repo_tags) or None,
                "Layers": [f"blobs/sha256/{hex_of(digest_of(layer))}" for layer in image.layers],
            }
        )
        infos.append(
            DockerImageInfo(
                config_digest=config_digest,
                config=config,
                diff_ids=tuple(diff_id(layer) for layer in image.layers),
                repo_tags=tuple(image.repo_tags),
                oci_manifest_digest=manifest_digest,
                oci_manifest=oci_manifest,
            )
        )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    entries = [TarEntry("blobs", kind="dir"), TarEntry("blobs/sha256", kind="dir")]
    entries += [TarEntry(f"blobs/sha256/{hex_of(d)}", data) for d, data in sorted(blobs.items())]
    entries += [
        TarEntry("index.json", _compact(index)),
        TarEntry("manifest.json", _compact(manifest) + b"\n"),
        TarEntry("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
    ]
    write_tar(file, entries, compress=compress)
    return tuple(infos)
