"""The push engine: blobs the registry lacks (in parallel, streamed, verified), then manifests.

Order is the safety property: every blob before any manifest, child manifests before their
index, and tags last, so an interrupted push never leaves a tag that points at missing content.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gitlab_xacct.registry.client import Registry
from gitlab_xacct.registry.image import Blob, ImageIndex, ImageManifest, SourceImage

log = logging.getLogger(__name__)

PARALLEL_UPLOADS = 4


@dataclass(frozen=True, kw_only=True)
class PushResult:
    host: str
    repository: str
    digest: str
    tags: tuple[str, ...]
    media_type: str
    blobs_uploaded: int
    bytes_uploaded: int
    blobs_present: int

    @property
    def uri(self) -> str:
        """HOST/REPO@sha256:..., the immutable reference later jobs should deploy."""
        return f"{self.host}/{self.repository}@{self.digest}"

    def tagged(self, tag: str) -> str:
        return f"{self.host}/{self.repository}:{tag}@{self.digest}"


def push_image(
    registry: Registry, repository: str, image: SourceImage, tags: tuple[str, ...]
) -> PushResult:
    if not tags:
        raise ValueError("push_image needs at least one tag")
    children = image.children if isinstance(image, ImageIndex) else (image,)
    blobs = _unique_blobs(children)
    uploaded, present = _push_blobs(registry, repository, blobs)

    if isinstance(image, ImageIndex):
        for child in children:
            registry.put_manifest(repository, child.digest, child.manifest, child.media_type)
    digest = ""
    for tag in tags:
        digest = registry.put_manifest(repository, tag, image.manifest, image.media_type)
        log.info("tagged %s:%s -> %s", repository, tag, digest)
    return PushResult(
        host=registry.host,
        repository=repository,
        digest=digest,
        tags=tags,
        media_type=image.media_type,
        blobs_uploaded=len(uploaded),
        bytes_uploaded=sum(b.size for b in uploaded),
        blobs_present=len(present),
    )


def _unique_blobs(images: tuple[ImageManifest, ...]) -> list[Blob]:
    """Each digest once, even when layers repeat within or across platforms."""
    seen: dict[str, Blob] = {}
    for image in images:
        for blob in image.blobs:
            seen.setdefault(blob.digest, blob)
    return list(seen.values())


def _push_blobs(
    registry: Registry, repository: str, blobs: list[Blob]
) -> tuple[list[Blob], list[Blob]]:
    def push_one(blob: Blob) -> bool:
        if registry.blob_exists(repository, blob.digest):
            log.info("exists   %s (%s)", blob.digest, _size(blob.size))
            return False
        started = time.monotonic()
        registry.upload_blob(repository, blob)
        elapsed = max(time.monotonic() - started, 1e-6)
        log.info(
            "uploaded %s (%s in %.1f s, %s/s)",
            blob.digest,
            _size(blob.size),
            elapsed,
            _size(int(blob.size / elapsed)),
        )
        return True

    with ThreadPoolExecutor(max_workers=PARALLEL_UPLOADS, thread_name_prefix="upload") as pool:
        futures = [pool.submit(push_one, blob) for blob in blobs]
        try:
            outcomes = [future.result() for future in futures]
        except BaseException:
            # Stop queued uploads at the first failure; those under way finish or fail on their own.
            for future in futures:
                future.cancel()
            raise
    uploaded = [b for b, sent in zip(blobs, outcomes, strict=True) if sent]
    present = [b for b, sent in zip(blobs, outcomes, strict=True) if not sent]
    return uploaded, present


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
