"""The push engine: one image to one or more registries, each blob read from the source once.

Order is the safety property: every blob before any manifest, child manifests before their
index, and tags last, so an interrupted push never leaves a tag that points at missing content.
A manifest refused for a blob the registry lost is healed in `lost_blobs` (the blob sent again).
Tag conflicts are found before the first upload, so a refused push changes nothing.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO, cast

from gitlab_xacct import cancel
from gitlab_xacct.config.engine import EngineOptions
from gitlab_xacct.errors import PushError, RegistryAuthError
from gitlab_xacct.registry import lost_blobs
from gitlab_xacct.registry.client import Registry
from gitlab_xacct.registry.image import Blob, ImageIndex, ImageManifest, SourceImage
from gitlab_xacct.registry.progress import Progress
from gitlab_xacct.registry.tee import Tee

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PushResult:
    host: str
    repository: str
    digest: str
    tags: tuple[str, ...]
    media_type: str
    blobs_uploaded: int
    bytes_uploaded: int
    blobs_present: int
    blobs_mounted: int = 0
    tags_kept: tuple[str, ...] = ()  # already there (same digest) or skipped on request

    @property
    def uri(self) -> str:
        """HOST/REPO@sha256:..., the immutable reference later jobs should deploy."""
        return f"{self.host}/{self.repository}@{self.digest}"

    def tagged(self, tag: str) -> str:
        return f"{self.host}/{self.repository}:{tag}@{self.digest}"


@dataclass(frozen=True, slots=True)
class Target:
    registry: Registry
    repository: str
    immutable_tags: bool = False  # ECR's imageTagMutability, when known

    @property
    def where(self) -> str:
        return f"{self.registry.host}/{self.repository}"


@dataclass(slots=True)
class _Tally:
    uploaded: list[Blob] = field(default_factory=list)
    present: int = 0
    mounted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, blob: Blob, how: str) -> None:
        with self.lock:
            if how == "uploaded":
                self.uploaded.append(blob)
            elif how == "mounted":
                self.mounted += 1
            else:
                self.present += 1


def push_image(
    registry: Registry,
    repository: str,
    image: SourceImage,
    tags: tuple[str, ...],
    *,
    options: EngineOptions | None = None,
) -> PushResult:
    return push_many([Target(registry, repository)], image, tags, options=options)[0]


def push_many(
    targets: Sequence[Target],
    image: SourceImage,
    tags: tuple[str, ...],
    *,
    options: EngineOptions | None = None,
) -> list[PushResult]:
    if not tags or not targets:
        raise ValueError("push_many needs at least one target and one tag")
    options = options or EngineOptions()
    plans = [_plan_tags(t, image.digest, tags, options) for t in targets]  # before any upload
    to_tag = [wanted for wanted, _ in plans]
    children = image.children if isinstance(image, ImageIndex) else (image,)
    blobs = _unique_blobs(children)
    tallies = [_Tally() for _ in targets]
    # A destination that gets no tag needs no blob and no manifest: its tags are all at this
    # digest already (the registry checked every blob when that manifest was PUT; a rerun of a
    # job costs no HEAD per blob) or are kept as asked.
    active = [n for n, wanted in enumerate(to_tag) if wanted]
    for n, (target, (wanted, all_at_digest)) in enumerate(zip(targets, plans, strict=True)):
        if not wanted:
            log.info("nothing to push to %s: no tag to set", target.where)
            if all_at_digest:
                tallies[n].present = len(blobs)
    if active:
        pushing = [targets[n] for n in active]
        counts = [tallies[n] for n in active]
        with Progress(sum(b.size for b in blobs), len(blobs)) as progress:
            _run_all(
                [partial(_blob_everywhere, blob, pushing, counts, progress) for blob in blobs],
                options.parallelism,
            )
    results = []
    for target, tally, wanted in zip(targets, tallies, to_tag, strict=True):
        if isinstance(image, ImageIndex) and wanted:
            for child in children:
                cancel.check()  # never a manifest after the signal
                lost_blobs.put_manifest(target.registry, target.repository, child.digest, child)
        for tag in wanted:
            with cancel.tagging(f"{target.where}:{tag}"):  # never a tag after the signal
                # A blob the registry lost (a race with another push) is sent again first.
                digest = lost_blobs.put_manifest(target.registry, target.repository, tag, image)
            log.info("tagged %s:%s -> %s", target.where, tag, digest)
        results.append(
            PushResult(
                host=target.registry.host,
                repository=target.repository,
                digest=image.digest,
                tags=tags,
                media_type=image.media_type,
                blobs_uploaded=len(tally.uploaded),
                bytes_uploaded=sum(b.size for b in tally.uploaded),
                blobs_present=tally.present,
                blobs_mounted=tally.mounted,
                tags_kept=tuple(t for t in tags if t not in wanted),
            )
        )
    return results


def _plan_tags(
    target: Target, digest: str, tags: tuple[str, ...], options: EngineOptions
) -> tuple[tuple[str, ...], bool]:
    """The tags to PUT, and whether every other tag is already at this digest. A tag already at
    this digest is left alone; a tag at another digest is skipped on request, refused in an
    immutable repository, overwritten otherwise."""
    wanted = []
    all_at_digest = True
    for tag in tags:
        current = target.registry.manifest_digest(target.repository, tag)
        if current == digest:
            log.info("tag %s:%s is already at %s", target.where, tag, digest)
        elif current is not None and options.skip_existing_tags:
            log.info("tag %s:%s exists (at %s); skipped as asked", target.where, tag, current)
            all_at_digest = False
        elif current is not None and target.immutable_tags:
            raise PushError(
                f"tag {tag} of {target.where} already points at {current}, and the repository's "
                f"tags are immutable; this image is {digest}: push a new tag, or set "
                "XACCT_SKIP_EXISTING_TAGS=true to leave existing tags alone"
            )
        else:
            wanted.append(tag)
    return tuple(wanted), all_at_digest


def _unique_blobs(images: tuple[ImageManifest, ...]) -> list[Blob]:
    """Each digest once, even when layers repeat within or across platforms."""
    seen: dict[str, Blob] = {}
    for image in images:
        for blob in image.blobs:
            seen.setdefault(blob.digest, blob)
    return list(seen.values())


def _blob_everywhere(
    blob: Blob, targets: Sequence[Target], tallies: list[_Tally], progress: Progress
) -> None:
    """Upload where missing, reading the source once: one upload per registry (a tee when
    there are several), then cross-repository mounts inside each registry."""
    cancel.check()
    missing, all_present = _missing(blob, targets, tallies)
    if not missing:
        progress.advance(blob.size)
        if all_present:
            progress.blob_done(blob.digest, blob.size, 0.0, "exists")
        else:  # mounted: said above, per destination
            progress.blob_counted()
        return
    groups: dict[str, list[tuple[Target, _Tally]]] = {}
    for pair in missing:
        groups.setdefault(pair[0].registry.base_url, []).append(pair)
    firsts = [group[0] for group in groups.values()]
    started = time.monotonic()
    _upload(blob, firsts, progress)
    progress.blob_done(blob.digest, blob.size, time.monotonic() - started)
    for _, tally in firsts:
        tally.add(blob, "uploaded")
    for (source, _), *others in groups.values():
        for target, tally in others:
            if target.registry.mount_blob(target.repository, blob.digest, source.repository):
                tally.add(blob, "mounted")
                log.info("mounted  %s into %s from %s", blob.digest, target.where,
                         source.repository)  # fmt: skip
            else:  # the registry answered 202: no mount here, upload after all
                target.registry.upload_blob(target.repository, blob)
                tally.add(blob, "uploaded")


def _missing(
    blob: Blob, targets: Sequence[Target], tallies: list[_Tally]
) -> tuple[list[tuple[Target, _Tally]], bool]:
    """The destinations still lacking the blob once existing copies are counted and mounts from
    the source tried; and whether every destination had it already."""
    missing = []
    all_present = True
    for target, tally in zip(targets, tallies, strict=True):
        if target.registry.blob_exists(target.repository, blob.digest):
            tally.add(blob, "present")
            continue
        all_present = False
        if _mounted_from_source(blob, target):
            tally.add(blob, "mounted")
        else:
            missing.append((target, tally))
    return missing, all_present


def _mounted_from_source(blob: Blob, target: Target) -> bool:
    """A registry-to-registry copy within one registry moves no bytes: the destination mounts
    the blob from the source repository. Any refusal (202, or a token without pull on the
    source) falls back to reading and uploading, which works whatever the mount's answer."""
    if blob.mount_from is None:
        return False
    host, repository = blob.mount_from
    if host != target.registry.host or repository == target.repository:
        return False
    try:
        mounted = target.registry.mount_blob(target.repository, blob.digest, repository)
    except RegistryAuthError as exc:
        log.debug("no mount of %s from %s: %s", blob.digest, repository, exc)
        return False
    if mounted:
        log.info("mounted  %s into %s from %s", blob.digest, target.where, repository)
    return mounted


def _upload(blob: Blob, uploaders: list[tuple[Target, _Tally]], progress: Progress) -> None:
    for target, _ in uploaders:
        progress.blob_started(blob.digest, blob.size, target.where)
    if len(uploaders) == 1:
        target = uploaders[0][0]
        target.registry.upload_blob(target.repository, _counted(blob, progress))
        return
    tee = Tee(blob, len(uploaders), progress.advance)

    def upload(number: int) -> None:
        target = uploaders[number][0]
        try:
            target.registry.upload_blob(target.repository, tee.blobs[number])
        finally:
            tee.done(number)

    _run_all([tee.feed, *[partial(upload, n) for n in range(len(uploaders))]], len(uploaders) + 1)


def _counted(blob: Blob, progress: Progress) -> Blob:
    def open_() -> BinaryIO:
        return cast(BinaryIO, _CountingReader(blob.open(), progress))

    return Blob(digest=blob.digest, size=blob.size, media_type=blob.media_type, open=open_)


class _CountingReader(io.RawIOBase):
    """The source stream, telling progress how many bytes went by."""

    def __init__(self, stream: BinaryIO, progress: Progress) -> None:
        super().__init__()
        self._stream = stream
        self._progress = progress

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # The source's own chunk, not RawIOBase's read: that fills a fresh buffer and copies it,
        # two short-lived MiB a chunk, page faults and CPU a push could do without.
        cancel.check()
        data = self._stream.read(size)
        self._progress.advance(len(data))
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        cancel.check()
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:  # files and response streams fill the buffer without a copy
            n = int(readinto(buffer) or 0)
        else:
            data = self._stream.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self._progress.advance(n)
        return n

    def close(self) -> None:
        self._stream.close()
        super().close()


def _run_all(tasks: Sequence[Callable[[], object]], workers: int) -> None:
    """Run callables in a bounded pool; at the first failure, cancel what has not started.

    A cancelled job does not wait for uploads in flight: they stop at their next read, or the
    process ends without them (cancel.leave)."""
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="push")
    futures: list[Future[object]] = [pool.submit(task) for task in tasks]
    try:
        for future in futures:
            future.result()
    except BaseException:
        pool.shutdown(wait=not cancel.requested(), cancel_futures=True)
        raise
    pool.shutdown()
