"""What a source hands the push engine: one manifest and the blobs it names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

# Media types we read and write.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})


@dataclass(frozen=True, slots=True, kw_only=True)
class Blob:
    """A content-addressed blob: the push engine verifies `digest` and `size` as it streams.

    `open` returns a fresh binary stream positioned at the blob's first byte that yields exactly
    the blob's bytes; each call opens its own handle, so blobs can be read in parallel.
    """

    digest: str  # "sha256:<64 hex>"
    size: int
    media_type: str
    open: Callable[[], BinaryIO]
    # (registry host, repository) that already holds the blob, for a docker:// source: a
    # destination on the same registry mounts it from there instead of reading and uploading it.
    mount_from: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageManifest:
    """A single-platform image: the manifest bytes exactly as they will be pushed."""

    manifest: bytes
    media_type: str  # one of MANIFEST_TYPES
    digest: str  # sha256 of `manifest`
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """Layers first, config last, so a tag's config never lands before its layers."""
        return (*self.layers, self.config)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageIndex:
    """A multi-platform index (OCI index or Docker manifest list) and its child images."""

    manifest: bytes
    media_type: str  # one of INDEX_TYPES
    digest: str
    children: tuple[ImageManifest, ...]


SourceImage = ImageManifest | ImageIndex
