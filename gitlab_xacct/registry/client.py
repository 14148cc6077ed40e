"""The registry HTTP API (OCI distribution spec): the calls a push, a pull and a copy need.

One `transport.Transport` per registry: pooled connections, a User-Agent, timeouts on every call,
and retries (bounded, with backoff: `retry.Network`) only for requests that are safe to repeat.
Authentication (Basic or Bearer tokens) is `auth.Authenticator`'s; blob streams and uploads are
`blobs.py`'s. HTTP statuses map to domain errors here and nowhere else.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import BinaryIO, cast
from urllib.parse import urlencode, urljoin, urlsplit

from gitlab_xacct import __version__
from gitlab_xacct.errors import NotFound, PushError, RegistryAuthError, RegistryUnreachable
from gitlab_xacct.registry import manifests
from gitlab_xacct.registry.auth import Attempt, Authenticator, Credentials, pull_scope, push_scope
from gitlab_xacct.registry.blobs import CHUNK, ResponseStream, VerifiedStream, upload_blob
from gitlab_xacct.registry.image import Blob
from gitlab_xacct.registry.manifests import MANIFEST_ACCEPT
from gitlab_xacct.registry.retry import (
    RETRY_STATUSES,
    Again,
    Network,
    NoAnswer,
    Pause,
    answer,
    no_answer,
    repeat,
    retry_after,
    with_attempts,
)
from gitlab_xacct.registry.transport import (
    Body,
    ProxyRefused,
    Response,
    TLSError,
    Transport,
    TransportError,
)
from gitlab_xacct.secrets import mask

__all__ = [
    "CHUNK",
    "MANIFEST_ACCEPT",
    "Credentials",
    "Network",
    "NoAnswer",
    "NotFound",
    "Registry",
    "RegistryUnreachable",
    "VerifiedStream",
]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
# ECR's chunked PATCH is broken: it answers 201 to intermediate PATCHes and drops the bodies of
# later chunks (aws/containers-roadmap#2831), so AWS hosts always get one streamed PUT.
_NO_CHUNKING = (".amazonaws.com", ".amazonaws.com.cn")
_ECR_HINT = "the ECR credentials were not accepted, or the role may not push to this repository"
# Requests safe to send again as they are: they change nothing on the registry.
_SAFE = frozenset({"GET", "HEAD"})


class Registry:
    """A registry at `base_url` (scheme://host[:port]).

    `insecure` turns TLS verification off (an `--insecure-registry` host); `chunk_size` is the
    size above which blobs go up in PATCH chunks (0: never); `refresh` returns fresh
    credentials when the registry rejects the current ones mid-way (once per request);
    `network` holds the timeouts and the bound on retries; `env`, the settings' mapping, gives
    the proxy variables and the trust store (`gitlab_xacct.network`; default: os.environ).
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None,
        *,
        pool: int = 8,
        insecure: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        refresh: Callable[[], Credentials] | None = None,
        auth_hint: str = _ECR_HINT,
        network: Network | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.network = network or Network()
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.host = parts.netloc
        self.hostname = (parts.hostname or "").lower()
        self.insecure = insecure
        self.chunk_size = 0 if self.hostname.endswith(_NO_CHUNKING) else max(chunk_size, 0)
        self.auth_hint = auth_hint
        self.auth = Authenticator(
            self.host, credentials, self._fetch_token, refresh=refresh, insecure=insecure
        )
        # No retries in the transport: `send` retries itself, so it can cap Retry-After, count
        # the attempts and say what the last answer was. Uploads retry (or resume) in blobs.py.
        self._transport = Transport(user_agent=f"gitlab-xacct/{__version__}", pool=pool, env=env)
        self._mount_sessions: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- one request, authenticated --------------------------------------------------------

    def url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else f"{self.base_url}{path_or_url}"

    def send(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...] = (),
        body: Callable[[], Body] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        retry: bool | None = None,
    ) -> Response:
        """One request; on a 401, authenticate as the registry asks and send it again.

        `body` is a factory, called for each send, so a streamed body can be sent again.
        Credentials go only to this registry's own host, never to a redirect's target.
        With `retry` (default: for GET and HEAD only), no answer, 429 and 5xx are tried again
        up to `network.retries` times with backoff; the last answer is returned (its attempts
        in `Response.attempts`, for `check`), or, when there was none, RegistryUnreachable
        says how many tries.
        """
        repeat = method in _SAFE if retry is None else retry
        return self._retried(
            method,
            path_or_url,
            partial(
                self._authenticated,
                method,
                path_or_url,
                scopes=scopes,
                body=body,
                headers=headers,
                stream=stream,
            ),
            self.network.attempts if repeat else 1,
        )

    def _retried(
        self, method: str, path_or_url: str, sending: Callable[[], Response], attempts: int
    ) -> Response:
        """`sending()` until an answer not worth repeating (no answer, 429 and 5xx are), at most
        `attempts` times with backoff; the last answer (its attempts in `Response.attempts`), or
        NoAnswer naming the attempts."""

        def step(attempt: int, last: bool) -> Response:
            try:
                response = sending()
            except NoAnswer as exc:
                raise Again(exc.reason, give_up=partial(_no_answer_after, exc)) from None
            if response.status_code in RETRY_STATUSES and not last:
                response.close()
                raise Again(answer(response), give_up=_unreachable, later=retry_after(response))
            response.attempts = max(attempt, response.attempts)
            return response

        return repeat(self.network, attempts, step, self.pauses(method, path_or_url))

    def pauses(self, method: str, path_or_url: str) -> Pause:
        """The warning before a request is sent again."""
        path = urlsplit(self.url(path_or_url)).path

        def pause(attempt: int, what: str, wait: float) -> None:
            log.warning(
                "registry %s: %s %s got %s; trying again in %.1f s (attempt %d of %d)",
                self.host, method, path, what, wait, attempt + 1, self.network.attempts,
            )  # fmt: skip

        return pause

    def note_attempts(self, response: Response, attempts: int) -> None:
        """How many sends `response` took, for the message of `check`."""
        response.attempts = attempts

    def _authenticated(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        body: Callable[[], Body] | None,
        headers: dict[str, str] | None,
        stream: bool,
    ) -> Response:
        url = self.url(path_or_url)
        ours = urlsplit(url).netloc == self.host
        attempt = Attempt()
        for sends in range(1, 4):
            header = self.auth.authorization(scopes, attempt) if ours else None
            sent = dict(headers or {})
            if header:
                sent["Authorization"] = header
            response = self._request(
                method,
                url,
                body=body() if body else None,
                headers=sent,
                stream=stream,
                allow_redirects=method in ("GET", "HEAD"),
            )
            final = urlsplit(response.url or url).netloc == self.host
            if response.status_code in (401, 403):  # for check: how often it was refused
                response.attempts = sends
            if response.status_code != 401 or not (ours and final) or sends == 3:
                return response
            if not self.auth.unauthorized(response, header, attempt):
                return response
            response.close()
        raise AssertionError("unreachable")

    def _request(
        self,
        method: str,
        url: str,
        *,
        body: Body = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        allow_redirects: bool = False,
        verify: bool | None = None,
    ) -> Response:
        try:
            return self._transport.request(
                method,
                url,
                headers=headers,
                body=body,
                timeout=self.network.timeout,
                verify=(not self.insecure) if verify is None else verify,
                allow_redirects=allow_redirects,
                stream=stream,
            )
        except TLSError as exc:
            host = urlsplit(url).netloc
            if exc.certificate:
                raise RegistryAuthError(
                    f"TLS verification failed for {host}: {mask(exc.reason)}; if this registry "
                    "has a private certificate, add it to the system trust store, or list the "
                    "host in XACCT_INSECURE_REGISTRIES"
                ) from None
            raise RegistryUnreachable(f"no TLS answer from {host} ({mask(exc.reason)})") from None
        except ProxyRefused as exc:  # an answer, and a final one: not retried
            raise PushError(
                f"could not reach the registry at {self.base_url} ({mask(exc.reason)}); check "
                "the proxy variables (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) and the proxy's rules"
            ) from None
        except TransportError as exc:
            endpoint = " (or XACCT_REGISTRY_ENDPOINT)" if self.auth_hint == _ECR_HINT else ""
            reason = no_answer(exc, self.network)
            raise NoAnswer(
                f"could not reach the registry at {self.base_url} ({reason}); check the host "
                f"name{endpoint} and the network path from the runner",
                reason,
            ) from None

    def _fetch_token(
        self, url: str, params: list[tuple[str, str]], authorization: str | None, verify: bool
    ) -> Response:
        """A GET to the token service: retried like any GET (a token changes nothing)."""
        headers = {"Authorization": authorization} if authorization else {}
        query = urlencode(params)
        target = f"{url}{'&' if '?' in url else '?'}{query}" if query else url
        sending = partial(self._request, "GET", target, headers=headers, verify=verify)
        return self._retried("GET", url, sending, self.network.attempts)

    def check(self, response: Response, what: str, ok: tuple[int, ...]) -> None:
        if response.status_code in ok:
            return
        detail = _error_detail(response)
        attempts = response.attempts
        if response.status_code in (401, 403):
            again = f", after {attempts} attempts with renewed credentials" if attempts > 1 else ""
            raise RegistryAuthError(
                f"registry {self.host} refused {what} (HTTP {response.status_code}{detail}"
                f"{again}); {self.auth_hint}"
            )
        error = NotFound if response.status_code == 404 else PushError
        if attempts > 1:
            raise error(
                f"registry {self.host}: {what} failed after {attempts} attempts (last answer: "
                f"{answer(response)}{detail}); the registry is overloaded or failing: try again "
                "later, or raise XACCT_RETRIES"
            )
        raise error(f"registry {self.host}: {what} failed (HTTP {response.status_code}{detail})")

    # ---- the calls ---------------------------------------------------------------------------

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
        response = self.send(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            scopes=(pull_scope(repository),),
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if response.status_code == 404:
            return None
        self.check(response, f"HEAD of manifest {repository}:{reference}", (200,))
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        if reference.startswith("sha256:"):
            return reference
        raw, _ = self.get_manifest(repository, reference)  # a registry that does not say
        return "sha256:" + hashlib.sha256(raw).hexdigest()

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
            with self._lock:
                self._mount_sessions[(repository, digest)] = urljoin(self.url("/"), location)
        return False

    def take_upload_session(self, repository: str, digest: str) -> str | None:
        """The upload URL a 202 mount left for this blob, once."""
        with self._lock:
            return self._mount_sessions.pop((repository, digest), None)

    def upload_blob(self, repository: str, blob: Blob) -> None:
        """Upload a blob the registry lacks: one streamed PUT up to `chunk_size`, PATCH chunks
        above it (resumed after a dropped connection); retried a bounded number of times."""
        upload_blob(self, repository, blob)

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


def _no_answer_after(exc: NoAnswer, attempts: int) -> NoAnswer:
    return NoAnswer(with_attempts(str(exc), attempts), exc.reason)


def _unreachable(attempts: int) -> BaseException:
    return AssertionError(f"an answer is returned from the last of {attempts} attempts")


def _error_detail(response: Response) -> str:
    """The registry's own error code, from its JSON error body, when there is one."""
    try:
        errors = response.json().get("errors") or []
        codes = [str(e.get("code", "")) for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError, TypeError, TransportError):
        return ""
    return f": {', '.join(c for c in codes if c)}" if any(codes) else ""
