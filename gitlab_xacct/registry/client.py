"""The registry HTTP API (OCI distribution spec), the few calls a push needs.

One `requests.Session` per registry: pooled connections, a User-Agent, timeouts on every call,
and retries only for requests that are safe to repeat. HTTP statuses map to domain errors here
and nowhere else.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from gitlab_xacct import __version__
from gitlab_xacct.errors import PushError, RegistryAuthError
from gitlab_xacct.registry.image import Blob
from gitlab_xacct.secrets import Secret, mask

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024  # read and send blobs a MiB at a time: flat memory, few syscalls
TIMEOUT = (10.0, 300.0)  # connect, read (a registry may take a while to commit a big blob)
UPLOAD_ATTEMPTS = 3
MANIFEST_LIMIT = 4 * 1024 * 1024  # the distribution spec's suggested manifest size limit


@dataclass(frozen=True)
class Credentials:
    username: str
    password: Secret


class Registry:
    """A registry at `base_url` (scheme://host[:port]) spoken to with Basic auth."""

    def __init__(self, base_url: str, credentials: Credentials | None, *, pool: int = 8) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"gitlab-xacct/{__version__}"
        if credentials:
            self._session.auth = (credentials.username, credentials.password.reveal())
        # HEAD/GET are safe to repeat; uploads retry as a whole in upload_blob.
        retry = Retry(
            total=3,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"HEAD", "GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=retry)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, url: str, **kwargs: object) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]
        except requests.exceptions.SSLError as exc:
            raise RegistryAuthError(
                f"TLS verification failed for {self.host}: {mask(str(exc))}"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise PushError(
                f"could not reach the registry at {self.base_url} ({type(exc).__name__}); check "
                "XACCT_REGISTRY_ENDPOINT and the network path from the runner"
            ) from None

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _check(self, response: requests.Response, what: str, ok: tuple[int, ...]) -> None:
        if response.status_code in ok:
            return
        detail = _error_detail(response)
        if response.status_code in (401, 403):
            raise RegistryAuthError(
                f"registry {self.host} refused {what} (HTTP {response.status_code}{detail}); the "
                "ECR credentials were not accepted, or the role may not push to this repository"
            )
        raise PushError(
            f"registry {self.host}: {what} failed (HTTP {response.status_code}{detail})"
        )

    def ping(self) -> None:
        """GET /v2/: the endpoint is a registry and takes the credentials, before any upload."""
        response = self._request("GET", self._url("/v2/"))
        self._check(response, "the login (GET /v2/)", (200,))

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self._request("HEAD", self._url(f"/v2/{repository}/blobs/{digest}"))
        if response.status_code == 404:
            return False
        self._check(response, f"HEAD of blob {digest}", (200,))
        return True

    def upload_blob(self, repository: str, blob: Blob) -> None:
        """POST a session, then PUT the bytes in one stream; retried whole on transient failures."""
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                self._upload_once(repository, blob)
            except _TransientUploadError as exc:
                if attempt == UPLOAD_ATTEMPTS:
                    raise PushError(
                        f"upload of {blob.digest} failed after {attempt} attempts: {exc}"
                    ) from None
                log.warning("upload of %s failed (%s); retrying", blob.digest, exc)
                time.sleep(0.5 * 2**attempt)
            else:
                return

    def _upload_once(self, repository: str, blob: Blob) -> None:
        start = self._request("POST", self._url(f"/v2/{repository}/blobs/uploads/"))
        if start.status_code >= 500:
            raise _TransientUploadError(f"HTTP {start.status_code} opening the upload")
        self._check(start, f"starting the upload of {blob.digest}", (202,))
        location = start.headers.get("Location")
        if not location:
            raise PushError(f"registry {self.host} opened an upload without a Location header")
        url = urljoin(self._url("/"), location)
        separator = "&" if "?" in url else "?"
        body = VerifiedStream(blob)
        try:
            response = self._session.put(
                f"{url}{separator}digest={blob.digest}",
                data=body,
                headers={"Content-Type": "application/octet-stream"},
                timeout=TIMEOUT,
            )
        except requests.exceptions.RequestException as exc:
            raise _TransientUploadError(type(exc).__name__) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise _TransientUploadError(f"HTTP {response.status_code}")
        self._check(response, f"upload of {blob.digest}", (201,))
        echoed = response.headers.get("Docker-Content-Digest")
        if echoed and echoed != blob.digest:
            raise PushError(f"registry {self.host} stored blob {blob.digest} under digest {echoed}")

    def put_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str
    ) -> str:
        """PUT a manifest byte for byte; returns the digest the registry reports for it."""
        expected = "sha256:" + hashlib.sha256(manifest).hexdigest()
        response = self._request(
            "PUT",
            self._url(f"/v2/{repository}/manifests/{reference}"),
            data=manifest,
            headers={"Content-Type": media_type},
        )
        self._check(response, f"PUT of manifest {reference}", (200, 201))
        digest = response.headers.get("Docker-Content-Digest", expected)
        if digest != expected:
            raise PushError(
                f"registry {self.host} answered digest {digest} for manifest {reference}, but the "
                f"bytes pushed hash to {expected}"
            )
        return digest


class _TransientUploadError(Exception):
    """A failure worth retrying the whole blob upload for (5xx, 429, dropped connection)."""


class VerifiedStream:
    """A request body that streams a blob and refuses to send its last chunk if the bytes lie.

    The registry checks the digest too, but only after it has the whole body; stopping before the
    last chunk means a bad source never becomes a blob, and we can say which file is wrong.
    """

    def __init__(self, blob: Blob) -> None:
        self._blob = blob

    def __len__(self) -> int:
        return self._blob.size

    def __iter__(self) -> Iterator[bytes]:
        blob = self._blob
        hasher = hashlib.sha256()
        sent = 0
        with blob.open() as stream:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                sent += len(chunk)
                hasher.update(chunk)
                if sent > blob.size:
                    raise PushError(
                        f"blob {blob.digest} has more bytes than the {blob.size} declared"
                    )
                if sent == blob.size:
                    actual = "sha256:" + hasher.hexdigest()
                    if actual != blob.digest:
                        raise PushError(
                            f"blob {blob.digest} in the source hashes to {actual}; the image is "
                            "corrupt (rebuild or re-export it)"
                        )
                yield chunk
        if sent != blob.size:
            raise PushError(f"blob {blob.digest} has {sent} bytes, {blob.size} declared")


def _error_detail(response: requests.Response) -> str:
    """The registry's own error code, from its JSON error body, when there is one."""
    try:
        errors = response.json().get("errors") or []
        codes = [str(e.get("code", "")) for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError):
        return ""
    return f": {', '.join(c for c in codes if c)}" if any(codes) else ""
