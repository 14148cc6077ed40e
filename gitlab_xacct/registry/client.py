"""The registry HTTP API (OCI distribution spec): the calls a push, a pull and a copy need.

`Registry` is the facade the rest of the tool calls, on top of the layers below it:
`session.Session` (one authenticated, retried request; statuses mapped to errors), `blobs.py`
(streams and uploads) and `manifests.py` (GET with every check, PUT never re-sent blindly), which
use a `Session` and never this module.
"""

from __future__ import annotations

from typing import BinaryIO, cast
from urllib.parse import urlencode, urljoin

from gitlab_xacct.config.engine import Network
from gitlab_xacct.errors import NotFound, RegistryUnreachable
from gitlab_xacct.registry import blobs, manifests
from gitlab_xacct.registry.auth import Credentials, pull_scope, push_scope
from gitlab_xacct.registry.blobs import CHUNK, ResponseStream, VerifiedStream
from gitlab_xacct.registry.image import Blob
from gitlab_xacct.registry.manifests import MANIFEST_ACCEPT
from gitlab_xacct.registry.retry import NoAnswer
from gitlab_xacct.registry.session import DEFAULT_CHUNK_SIZE, Session

__all__ = [
    "CHUNK",
    "DEFAULT_CHUNK_SIZE",
    "MANIFEST_ACCEPT",
    "Credentials",
    "Network",
    "NoAnswer",
    "NotFound",
    "Registry",
    "RegistryUnreachable",
    "VerifiedStream",
]


class Registry(Session):
    """A registry at `base_url` (scheme://host[:port]): its session (see `Session` for the
    arguments) and the calls a push, a pull and a copy make."""

    def ping(self) -> None:
        """GET /v2/: the endpoint is a registry and takes the credentials, before any upload."""
        response = self.send("GET", "/v2/")
        self.check(response, "the login (GET /v2/)", (200,))

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.send(
            "HEAD", f"/v2/{repository}/blobs/{digest}", scopes=(pull_scope(repository),)
        )
        if response.status_code == 404:
            return False
        self.check(response, f"HEAD of blob {digest}", (200,))
        return True

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest `reference` (a tag or digest) names, None when there is no such manifest."""
        return manifests.manifest_digest(self, repository, reference)

    def open_blob(self, repository: str, digest: str) -> BinaryIO:
        """A stream of the blob's bytes as stored (no content decoding), redirects followed."""
        response = self.send(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scopes=(pull_scope(repository),),
            headers={"Accept-Encoding": "identity"},
            stream=True,
        )
        try:
            self.check(response, f"GET of blob {digest} in {repository}", (200,))
        except BaseException:
            response.close()
            raise
        return cast(BinaryIO, ResponseStream(response))

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount: True when the registry linked the blob (201).

        On 202 the registry opened an upload session instead. It is kept and reused by the next
        `upload_blob` of that digest into `repository` (no DELETE: distribution wants a
        "delete" scope for it, which a pushing token rarely has, and it would cost a request).
        """
        query = urlencode({"mount": digest, "from": from_repository})
        response = self.send(
            "POST",
            f"/v2/{repository}/blobs/uploads/?{query}",
            scopes=(push_scope(repository), pull_scope(from_repository)),
            retry=True,  # links an existing blob or opens a session: harmless twice
        )
        if response.status_code == 201:
            return True
        self.check(response, f"mount of {digest} from {from_repository}", (202,))
        location = response.headers.get("Location")
        if location:
            self.keep_upload_session(repository, digest, urljoin(self.url("/"), location))
        return False

    def upload_blob(self, repository: str, blob: Blob) -> None:
        """Upload a blob the registry lacks: one streamed PUT up to `chunk_size`, PATCH chunks
        above it (resumed after a dropped connection); retried a bounded number of times."""
        blobs.upload_blob(self, repository, blob)

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """The manifest's bytes exactly as served and its media type; refused (exit 5) over
        4 MiB, when not a JSON object, when served as a type the document contradicts, or when
        its bytes do not hash to the digest asked for or to the one the registry names
        (`Docker-Content-Digest`). A body cut off mid-way is asked for again."""
        return manifests.get_manifest(self, repository, reference)

    def put_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str
    ) -> str:
        """PUT a manifest byte for byte; returns the digest the registry reports for it. After
        a lost answer or a 5xx, a HEAD says whether it landed before it is sent again."""
        return manifests.put_manifest(self, repository, reference, manifest, media_type)
