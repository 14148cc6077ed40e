"""How a registry client proves who it is: Basic, or the Bearer-token flow of the distribution
spec (docker/distribution docs/spec/auth/token.md).

Nothing is sent before the registry asks: the first 401 names the scheme in `WWW-Authenticate`.
Basic sends the credentials on every request from then on. Bearer sends them only to the
token service named by the challenge's `realm`, which answers a short-lived token per scope
(`repository:NAME:pull,push`); tokens are cached per scope until shortly before they expire.

A request that gets a 401 is sent again at most twice: once after learning the scheme or
fetching a token, once more after dropping a rejected (expired) token or refreshing rejected
Basic credentials through the caller's `refresh` (an ECR token that expired mid-push).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gitlab_xacct.config.validate import is_loopback
from gitlab_xacct.errors import PushError, RegistryAuthError
from gitlab_xacct.network import basic_authorization
from gitlab_xacct.secrets import Secret

if TYPE_CHECKING:
    from gitlab_xacct.registry.transport import Response

# RFC 9110 tchar, one or more: authentication schemes and their parameters.
_NAME = re.compile(r"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_BARE = re.compile(r"[^\s,]*")
_EXPIRY_MARGIN = 10.0  # seconds: a token this close to its end is fetched anew, not sent
_DEFAULT_LIFETIME = 60  # the token spec's default when `expires_in` is absent
_FLIGHT_WAIT = 60.0  # seconds a thread waits for another's token fetch before asking again
_MAX_WAITS = 16  # fetches in flight waited for in a row (each may fail), before fetching anyway


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: Secret


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer", ...
    params: Mapping[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """`WWW-Authenticate` (RFC 7235): one or more `scheme k=v, k="quoted, v"` challenges."""
    challenges: list[Challenge] = []
    params: dict[str, str] = {}
    position = 0
    while position < len(header):
        match = _NAME.match(header, position)
        if match is None:
            position += 1  # a stray comma or a malformed piece: skip it
            continue
        name, position = match.group(1), match.end()
        rest = header[position:].lstrip()
        if rest.startswith("=") and challenges:
            position = len(header) - len(rest) + 1
            while position < len(header) and header[position] == " ":
                position += 1
            quoted = _QUOTED.match(header, position)
            if quoted:
                value = re.sub(r"\\(.)", r"\1", quoted.group(1))
                position = quoted.end()
            else:
                bare = _BARE.match(header, position)
                value = bare.group(0) if bare else ""
                position += len(value)
            params[name.lower()] = value
        else:
            params = {}
            challenges.append(Challenge(name.lower(), params))
    return challenges


def repository_scope(repository: str, *actions: str) -> str:
    """`repository:team/app:pull,push`, the resource scope a token is asked for."""
    return f"repository:{repository}:{','.join(actions)}"


def pull_scope(repository: str) -> str:
    return repository_scope(repository, "pull")


def push_scope(repository: str) -> str:
    return repository_scope(repository, "pull", "push")


def normalise_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """One scope per resource with the union of its actions, sorted: a stable cache key."""
    merged: dict[str, set[str]] = {}
    for scope in scopes:
        resource, _, actions = scope.rpartition(":")
        if not resource:
            continue
        merged.setdefault(resource, set()).update(a for a in actions.split(",") if a)
    return tuple(f"{r}:{','.join(sorted(a))}" for r, a in sorted(merged.items()))


def covers(granted: Iterable[str], needed: Iterable[str]) -> bool:
    """Whether a token asked for `granted` scopes was asked for everything in `needed`."""
    have: dict[str, set[str]] = {}
    for scope in granted:
        resource, _, actions = scope.rpartition(":")
        have.setdefault(resource, set()).update(actions.split(","))
    for scope in needed:
        resource, _, actions = scope.rpartition(":")
        if not set(actions.split(",")) <= have.get(resource, set()):
            return False
    return True


# (realm URL, query parameters, the Basic Authorization value or None, verify TLS) -> the response
TokenFetcher = Callable[[str, list[tuple[str, str]], str | None, bool], "Response"]


@dataclass(slots=True)
class _Token:
    value: Secret
    scopes: tuple[str, ...]
    good_until: float  # time.monotonic()


@dataclass(slots=True)
class Attempt:
    """What one request has already tried, so that each remedy is tried once."""

    challenge_scopes: tuple[str, ...] = ()
    refreshed: bool = False
    fetched: set[str] = field(default_factory=set)  # tokens fetched during this request


class Authenticator:
    """Shared by the threads of one `Registry`; every state change happens under one lock,
    which is never held across a network wait or a backoff: a token fetch (and a credential
    refresh) runs outside it. Token fetches are single-flight: threads needing the same scopes
    wait for the one fetch in flight instead of asking the token service each."""

    def __init__(
        self,
        host: str,
        credentials: Credentials | None,
        fetch: TokenFetcher,
        *,
        refresh: Callable[[], Credentials] | None = None,
        insecure: bool = False,
    ) -> None:
        self.host = host
        self._insecure = insecure
        self._credentials = credentials
        self._fetch = fetch
        self._refresh = refresh
        self._lock = threading.Lock()
        self._scheme: str | None = None  # learnt from the first challenge
        self._realm = ""
        self._service = ""
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._in_flight: dict[tuple[str, ...], threading.Event] = {}
        self.token_requests = 0

    @property
    def scheme(self) -> str | None:
        return self._scheme

    def authorization(self, scopes: tuple[str, ...], attempt: Attempt) -> str | None:
        """The `Authorization` value for a request needing `scopes`, or None (not asked yet)."""
        with self._lock:
            if self._scheme == "basic" and self._credentials:
                return _basic(self._credentials)
            if self._scheme != "bearer":
                return None
            wanted = normalise_scopes((*scopes, *attempt.challenge_scopes))
        return f"Bearer {self._token(wanted, attempt).reveal()}"

    def unauthorized(self, response: Response, sent: str | None, attempt: Attempt) -> bool:
        """Learn from a 401; True when sending the request again may succeed."""
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        with self._lock:
            if bearer is not None and bearer.params.get("realm"):
                self._scheme = "bearer"
                self._realm = bearer.params["realm"]
                self._service = bearer.params.get("service", "")
                attempt.challenge_scopes = tuple(bearer.params.get("scope", "").split())
                if sent is None or not sent.startswith("Bearer "):
                    return True
                if bearer.params.get("error") == "insufficient_scope":
                    return False  # the token service granted less: asking again changes nothing
                value = sent.removeprefix("Bearer ")
                for key in [k for k, t in self._tokens.items() if t.value.reveal() == value]:
                    del self._tokens[key]
                # A cached token may have expired: one fresh fetch. One fetched just now: no.
                return value not in attempt.fetched
            basic = any(c.scheme == "basic" for c in challenges)
            if self._credentials is None or (self._scheme == "bearer" and not basic):
                return False
            self._scheme = "basic"
            if sent is None or sent != _basic(self._credentials):
                return True  # not sent yet, or another thread refreshed them meanwhile
        return self._refresh_credentials(attempt)

    def _token_login(self) -> str | None:
        """What the token service is asked with: Basic credentials, or nothing (anonymous)."""
        return _basic(self._credentials) if self._credentials else None

    def _refresh_credentials(self, attempt: Attempt) -> bool:
        """Called without the lock: the refresh asks ECR (a network call)."""
        if self._refresh is None or attempt.refreshed:
            return False
        attempt.refreshed = True
        fresh = self._refresh()
        with self._lock:
            self._credentials = fresh
            self._tokens.clear()
        return True

    def _cached(self, scopes: tuple[str, ...]) -> Secret | None:
        """A cached token covering `scopes` (expired ones dropped); under the lock."""
        now = time.monotonic()
        for key, token in list(self._tokens.items()):
            if token.good_until <= now:
                del self._tokens[key]
            elif covers(token.scopes, scopes):
                return token.value
        return None

    def _token(self, scopes: tuple[str, ...], attempt: Attempt) -> Secret:
        """A token for `scopes`: cached, or fetched by this thread, or by the thread already
        fetching it (waited for without the lock; if its fetch failed, this one tries)."""
        for _ in range(_MAX_WAITS):
            with self._lock:
                cached = self._cached(scopes)
                if cached is not None:
                    return cached
                flight = self._in_flight.get(scopes)
                if flight is None:
                    flight = self._in_flight[scopes] = threading.Event()
                    break
            flight.wait(_FLIGHT_WAIT)
        else:
            flight = threading.Event()  # waited long enough: fetch without the others
        try:
            token = self._request_token(scopes, attempt)
            with self._lock:
                self._tokens[scopes] = token
        finally:
            with self._lock:
                if self._in_flight.get(scopes) is flight:
                    del self._in_flight[scopes]
            flight.set()
        attempt.fetched.add(token.value.reveal())
        return token.value

    def _request_token(self, scopes: tuple[str, ...], attempt: Attempt) -> _Token:
        """Called without the lock: the fetch is a network call, retried with backoff."""
        with self._lock:
            service, realm_url = self._service, self._realm
            self.token_requests += 1
        params = [("service", service)] if service else []
        params += [("scope", scope) for scope in scopes]
        realm = urlsplit(realm_url)
        realm_host = realm.netloc
        same_host = realm_host == self.host or realm.hostname == urlsplit(f"//{self.host}").hostname
        # Credentials go to the realm only over TLS, unless it is on loopback or is this
        # registry's own host listed as insecure; TLS is verified unless it is that host.
        if realm.scheme != "https" and not (
            realm.scheme == "http"
            and (is_loopback(realm.hostname or "") or (same_host and self._insecure))
        ):
            raise RegistryAuthError(
                f"registry {self.host} sends clients to the token service {realm_url!r}, which "
                "is not https://; refusing to send credentials there"
            )
        verify = not (same_host and self._insecure)
        response = self._fetch(realm_url, params, self._token_login(), verify)
        if response.status_code in (401, 403) and self._refresh_credentials(attempt):
            response = self._fetch(realm_url, params, self._token_login(), verify)
        if response.status_code in (401, 403):
            who = "the credentials" if self._credentials else "an anonymous request"
            raise RegistryAuthError(
                f"the token service {realm_host} of registry {self.host} refused {who} "
                f"(HTTP {response.status_code}) for {' '.join(scopes) or 'a login'}"
            )
        if response.status_code != 200:
            raise PushError(
                f"the token service {realm_host} of registry {self.host} answered HTTP "
                f"{response.status_code}"
            )
        try:
            doc = response.json()
        except ValueError:
            doc = None
        value = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise PushError(f"the token service {realm_host} answered without a token")
        lifetime = doc.get("expires_in") if isinstance(doc, dict) else None
        seconds = lifetime if isinstance(lifetime, int) and lifetime > 0 else _DEFAULT_LIFETIME
        margin = min(_EXPIRY_MARGIN, seconds / 2)
        return _Token(Secret(value), scopes, time.monotonic() + seconds - margin)


def _basic(credentials: Credentials) -> str:
    return basic_authorization(credentials.username, credentials.password.reveal())
