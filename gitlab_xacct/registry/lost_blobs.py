"""A manifest PUT refused because the registry does not know a blob the manifest names.

Registries on distribution's storage (docker-registry, GitLab's, Harbor) lose races between
concurrent uploads of one blob: each upload that completes rewrites the repository's link file
of that blob, and a manifest PUT that reads the file while it is empty is refused with
MANIFEST_BLOB_UNKNOWN and DIGEST_INVALID, though every blob went up. Pushes that share base
layers at the same moment (a `parallel:matrix`) hit it. So that refusal is not the end: the
blobs the error names are looked up (HEAD), those the registry lacks are uploaded again through
the normal path (verified on the way), and the manifest is sent again, at most
`Network.attempts` times in all, through `retry.repeat`.

Only the named blobs are looked up: distribution names every blob it could not find, one
error entry each, so HEADing the others would cost a request per layer on every retry for
nothing. When the error names none (or none the manifest holds), every one the manifest names
is looked up.
A refused manifest sets no tag, and an index's children go up (by digest) before it, so
nothing is ever tagged that points at a missing blob.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gitlab_xacct.errors import PushError
from gitlab_xacct.registry.client import Registry
from gitlab_xacct.registry.image import Blob, ImageIndex, ImageManifest, SourceImage
from gitlab_xacct.registry.manifests import BlobsUnknown
from gitlab_xacct.registry.retry import Again, repeat

log = logging.getLogger(__name__)


def put_manifest(registry: Registry, repository: str, reference: str, image: SourceImage) -> str:
    """PUT `image`'s manifest as `reference`; when the registry says it lacks a blob (or, for an
    index, a child manifest) that it names, send that again and the manifest after it."""
    parts = _parts(image)
    where = f"{registry.host}/{repository}"

    def step(attempt: int, last: bool) -> str:
        try:
            return registry.put_manifest(repository, reference, image.manifest, image.media_type)
        except BlobsUnknown as refused:
            named = tuple(d for d in refused.digests if d in parts) or tuple(parts)
            give_up = _give_up(registry, reference, named, refused.answer)
            if last:
                raise Again(refused.answer, give_up=give_up) from None
            missing = [d for d in named if not _present(registry, repository, parts[d])]
            for digest in missing:
                _send_again(registry, repository, parts[digest])
            # Nothing missing: the registry lost a race and knows the blob now; a short wait
            # lets it settle. Something sent again: the manifest can go at once.
            raise Again(_what(named, missing), give_up=give_up, wait=not missing) from None

    def pause(attempt: int, what: str, wait: float) -> None:
        log.warning(
            "registry %s refused manifest %s of %s for a blob it did not know: %s; sending "
            "the manifest again in %.1f s (attempt %d of %d)",
            registry.host, reference, where, what, wait, attempt + 1, registry.network.attempts,
        )  # fmt: skip

    return repeat(registry.network, registry.network.attempts, step, pause)


def _parts(image: SourceImage) -> dict[str, Blob | ImageManifest]:
    """What the manifest names, by digest: an image's layers and config, an index's children."""
    if isinstance(image, ImageIndex):
        return {child.digest: child for child in image.children}
    return {blob.digest: blob for blob in image.blobs}


def _present(registry: Registry, repository: str, part: Blob | ImageManifest) -> bool:
    if isinstance(part, ImageManifest):
        return registry.manifest_digest(repository, part.digest) == part.digest
    return registry.blob_exists(repository, part.digest)


def _send_again(registry: Registry, repository: str, part: Blob | ImageManifest) -> None:
    if isinstance(part, ImageManifest):  # a child of an index: by digest, itself healed
        put_manifest(registry, repository, part.digest, part)
    else:
        registry.upload_blob(repository, part)


def _what(named: tuple[str, ...], missing: list[str]) -> str:
    """What was missing and sent again, or that nothing was, for the log line."""
    if missing:
        return f"{_listed(tuple(missing))} missing, sent again"
    return f"{_listed(named)} there after all (the registry lost a race between uploads)"


def _listed(digests: tuple[str, ...]) -> str:
    noun = "blob" if len(digests) == 1 else "blobs"
    return f"{noun} {', '.join(digests)} {'was' if len(digests) == 1 else 'were'}"


def _give_up(
    registry: Registry, reference: str, named: tuple[str, ...], answer: str
) -> Callable[[int], PushError]:
    def failed(attempts: int) -> PushError:
        noun = "blob" if len(named) == 1 else "blobs"
        return PushError(
            f"registry {registry.host}: PUT of manifest {reference} failed after {attempts} "
            f"attempts (last answer: {answer}): it does not know {noun} {', '.join(named)}, "
            "though each time it lacked one it was sent again; check the registry's storage "
            "and logs, try again later, or raise XACCT_RETRIES"
        )

    return failed
