"""Manifests over the registry API: GET with every check a registry could fail, and a PUT that is
never sent again before asking whether the first one landed.

A manifest is small and decides what a tag means, so what comes back is held to the bytes: the
digest asked for, the digest the registry names, JSON, a media type the document agrees with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

from gitlab_xacct.errors import PushError, RegistryUnreachable
from gitlab_xacct.registry.auth import pull_scope, push_scope
from gitlab_xacct.registry.image import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)
from gitlab_xacct.registry.retry import (
    RETRY_STATUSES,
    Again,
    NoAnswer,
    answer,
    no_answer,
    repeat,
    retry_after,
    with_attempts,
)
from gitlab_xacct.registry.session import Session, error_detail, error_entries
from gitlab_xacct.registry.transport import Response
from gitlab_xacct.registry.transport_errors import TransportError

log = logging.getLogger(__name__)

MANIFEST_LIMIT = 4 * 1024 * 1024  # the distribution spec's suggested manifest size limit
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))


def manifest_digest(registry: Session, repository: str, reference: str) -> str | None:
    """The digest `reference` (a tag or digest) names, None when there is no such manifest."""
    response = registry.send(
        "HEAD",
        f"/v2/{repository}/manifests/{reference}",
        scopes=(pull_scope(repository),),
        headers={"Accept": MANIFEST_ACCEPT},
    )
    if response.status_code == 404:
        return None
    registry.check(response, f"HEAD of manifest {repository}:{reference}", (200,))
    digest = response.headers.get("Docker-Content-Digest")
    if digest:
        return digest
    if reference.startswith("sha256:"):
        return reference
    raw, _ = get_manifest(registry, repository, reference)  # a registry that does not say
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def get_manifest(registry: Session, repository: str, reference: str) -> tuple[bytes, str]:
    what = f"manifest {repository}:{reference}"
    path = f"/v2/{repository}/manifests/{reference}"

    def step(attempt: int, last: bool) -> tuple[bytes, str]:
        response = registry.send(
            "GET",
            path,
            scopes=(pull_scope(repository),),
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
        )
        try:
            raw = _body(registry, response, what)
        except TransportError as exc:  # lost mid-body: ask again
            reason = no_answer(exc, registry.network)

            def cut_off(attempts: int) -> RegistryUnreachable:
                return RegistryUnreachable(
                    f"registry {registry.host}: the body of {what} was cut off after {attempts} "
                    f"attempts ({reason})"
                )

            raise Again(reason, give_up=cut_off) from None
        return raw, _checked(registry, response, raw, reference, what)

    return repeat(registry.network, registry.network.attempts, step, registry.pauses("GET", path))


def _body(registry: Session, response: Response, what: str) -> bytes:
    with response:
        registry.check(response, f"GET of {what}", (200,))
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MANIFEST_LIMIT:
            raise PushError(f"registry {registry.host}: {what} is {length} bytes, over 4 MiB")
        data = bytearray()
        while piece := response.read(64 * 1024):
            data += piece
            if len(data) > MANIFEST_LIMIT:
                raise PushError(f"registry {registry.host}: {what} is over 4 MiB")
    return bytes(data)


def _checked(registry: Session, response: Response, raw: bytes, reference: str, what: str) -> str:
    """The media type of a served manifest, after the checks a registry could fail."""
    host = registry.host
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    if reference.startswith("sha256:") and actual != reference:
        raise PushError(f"registry {host} served bytes hashing to {actual} for {what}")
    named = response.headers.get("Docker-Content-Digest", "").strip()
    if named.startswith("sha256:") and named != actual:
        raise PushError(f"registry {host} served {what} as {named}, but its bytes hash to {actual}")
    served = response.headers.get("Content-Type", "")
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise PushError(
            f"registry {host} served {what} as {served or 'no type'}, and it is not a JSON "
            "object: not an image manifest"
        )
    # A type the document contradicts is a broken registry or proxy; a document of a type we
    # do not push (schema 1) is well-formed, and the source reader refuses it (exit 2).
    declared = served.split(";", maxsplit=1)[0].strip()
    own = doc.get("mediaType")
    if declared in MANIFEST_TYPES | INDEX_TYPES and isinstance(own, str) and own != declared:
        raise PushError(
            f"registry {host} served {what} as {declared}, but the document says it is {own}"
        )
    return media_type(served, raw)


def put_manifest(
    registry: Session, repository: str, reference: str, manifest: bytes, media_type: str
) -> str:
    """Not re-sent blindly: a PUT that got no answer, or a 5xx, may have landed (the registry
    stored it, then the answer was lost). Sending it again would be harmless on most registries
    (same bytes, same tag), but not on ECR with immutable tags, which refuses a second PUT of an
    existing tag (ImageTagAlreadyExistsException), and the first one would then look failed.
    So before each new send, a HEAD asks where `reference` is: at our digest, it landed and is
    done; anywhere else, the PUT goes again."""
    expected = "sha256:" + hashlib.sha256(manifest).hexdigest()
    path = f"/v2/{repository}/manifests/{reference}"

    def step(attempt: int, last: bool) -> Response | None:
        if attempt > 1 and manifest_digest(registry, repository, reference) == expected:
            log.info("manifest %s landed at %s before its answer was lost", reference, expected)
            return None
        try:
            response = registry.send(
                "PUT",
                path,
                scopes=(push_scope(repository),),
                body=lambda: manifest,
                headers={"Content-Type": media_type},
                retry=False,
            )
        except NoAnswer as exc:
            message = str(exc)

            def unreachable(attempts: int) -> RegistryUnreachable:
                return RegistryUnreachable(with_attempts(message, attempts))

            raise Again(exc.reason, give_up=unreachable) from None
        if response.status_code in RETRY_STATUSES and not last:
            response.close()
            raise Again(answer(response), give_up=_unused, later=retry_after(response))
        registry.note_attempts(response, attempt)
        return response

    attempts = registry.network.attempts
    response = repeat(registry.network, attempts, step, registry.pauses("PUT", path))
    if response is None:
        return expected
    unknown = _unknown_blobs(response)
    try:
        registry.check(response, f"PUT of manifest {reference}", (200, 201))
    except PushError as exc:
        if unknown is None:
            raise
        said = f"HTTP {response.status_code}{error_detail(response)}"
        raise BlobsUnknown(str(exc), unknown, said) from None
    digest = response.headers.get("Docker-Content-Digest", expected)
    if digest != expected:
        raise PushError(
            f"registry {registry.host} answered digest {digest} for manifest {reference}, but "
            f"the bytes pushed hash to {expected}"
        )
    return digest


class BlobsUnknown(PushError):
    """A manifest refused because the registry does not know a blob (or child manifest) it
    names: `digests`, the ones the error body names (often one, sometimes none)."""

    def __init__(self, message: str, digests: tuple[str, ...], answer: str) -> None:
        super().__init__(message)
        self.digests = digests
        self.answer = answer


# What distribution answers (DIGEST_INVALID comes with MANIFEST_BLOB_UNKNOWN when it read a link
# file another upload was rewriting); BLOB_UNKNOWN is what some registries send instead.
_BLOB_UNKNOWN = frozenset({"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"})
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _unknown_blobs(response: Response) -> tuple[str, ...] | None:
    """The digests a 400 or 404 names as unknown blobs; None when it is another refusal."""
    if response.status_code not in (400, 404):
        return None
    entries = error_entries(response)
    if not any(code in _BLOB_UNKNOWN for code, _ in entries):
        return None
    named = (d for code, text in entries if code in _BLOB_UNKNOWN for d in _DIGEST.findall(text))
    return tuple(dict.fromkeys(named))


def _unused(attempts: int) -> BaseException:
    return AssertionError(f"the last of {attempts} answers is checked, not retried")


def media_type(content_type: str, raw: bytes) -> str:
    """The served Content-Type, else the document's own mediaType, else its shape."""
    served = content_type.split(";", maxsplit=1)[0].strip()
    if served in MANIFEST_TYPES | INDEX_TYPES:
        return served
    try:
        doc = json.loads(raw)
    except ValueError:
        return served
    if isinstance(doc, dict):
        own = doc.get("mediaType")
        if isinstance(own, str) and own:
            return own
        if doc.get("schemaVersion") == 2:
            return OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    return served
