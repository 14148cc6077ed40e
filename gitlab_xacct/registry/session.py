"""The bottom of the registry client: one authenticated, retried request to one registry.

`Session` holds one `transport.Transport` (requests: pooled connections, a User-Agent, timeouts
on every call), the `auth.Authenticator` (Basic or Bearer tokens), and the retry policy
(`retry.repeat`, bounded, with backoff) for requests that are safe to repeat. HTTP statuses map
to domain errors here (`check`) and nowhere else. `blobs.py` and `manifests.py` work on a
`Session`; the `client.Registry` facade on top of them is what the rest of the tool calls.
Nothing here imports from above.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import Self
from urllib.parse import urlencode, urlsplit

from gitlab_xacct import __version__
from gitlab_xacct.config.engine import Network
from gitlab_xacct.errors import NotFound, PushError, RegistryAuthError, RegistryUnreachable
from gitlab_xacct.registry.auth import Attempt, Authenticator, Credentials
from gitlab_xacct.registry.retry import (
    RETRY_STATUSES,
    Again,
    NoAnswer,
    Pause,
    answer,
    no_answer,
    repeat,
    retry_after,
    with_attempts,
)
from gitlab_xacct.registry.transport import Body, Response, Transport
from gitlab_xacct.registry.transport_errors import ProxyRefused, TLSError, TransportError
from gitlab_xacct.secrets import mask

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
# ECR's chunked PATCH is broken: it answers 201 to intermediate PATCHes and drops the bodies of
# later chunks (aws/containers-roadmap#2831), so AWS hosts always get one streamed PUT.
_NO_CHUNKING = (".amazonaws.com", ".amazonaws.com.cn")
_ECR_HINT = "the ECR credentials were not accepted, or the role may not push to this repository"
# Requests safe to send again as they are: they change nothing on the registry.
_SAFE = frozenset({"GET", "HEAD"})


class Session:
    """Requests to the registry at `base_url` (scheme://host[:port]).

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

    def __enter__(self) -> Self:
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
        detail = error_detail(response)
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

    # ---- upload sessions a mount left ---------------------------------------------------------

    def keep_upload_session(self, repository: str, digest: str, url: str) -> None:
        """The upload URL a 202 mount opened for this blob, for the next upload of it."""
        with self._lock:
            self._mount_sessions[(repository, digest)] = url

    def take_upload_session(self, repository: str, digest: str) -> str | None:
        """The upload URL a 202 mount left for this blob, once."""
        with self._lock:
            return self._mount_sessions.pop((repository, digest), None)


def _no_answer_after(exc: NoAnswer, attempts: int) -> NoAnswer:
    return NoAnswer(with_attempts(str(exc), attempts), exc.reason)


def _unreachable(attempts: int) -> BaseException:
    return AssertionError(f"an answer is returned from the last of {attempts} attempts")


def error_entries(response: Response) -> list[tuple[str, str]]:
    """The registry's own errors, from its JSON error body: (code, the rest of the entry as
    text: its message and detail, which may name a digest); none when the body is not one."""
    try:
        errors = response.json().get("errors") or []
        return [
            (str(e.get("code", "")), json.dumps({k: v for k, v in e.items() if k != "code"}))
            for e in errors
            if isinstance(e, dict)
        ]
    except (ValueError, AttributeError, TypeError, TransportError):
        return []


def error_detail(response: Response) -> str:
    """The registry's own error codes, when its answer has a JSON error body."""
    codes = [code for code, _ in error_entries(response) if code]
    return f": {', '.join(codes)}" if codes else ""
