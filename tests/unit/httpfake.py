"""An in-process registry behind a fake transport: the client's unit tests need no socket.

`FakeRegistry` answers the distribution API as docker-registry 2.8 does (uploads with Range and
Location, PATCH appends, mounts 201/202, manifests by tag or digest) with Basic or Bearer-token
auth, records every request, and can cut a request's connection after part of its body.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gitlab_xacct.registry.client import Registry
from gitlab_xacct.registry.image import OCI_LAYER_TAR, Blob
from gitlab_xacct.registry.transport import Body, Response, Transport
from gitlab_xacct.registry.transport_errors import TransportError

HOST = "registry.test"
REALM = "https://auth.test/token"
SERVICE = "registry.test"
_ROUTE = re.compile(r"/v2/(?P<name>.+?)/(?P<kind>blobs|manifests)/(?P<rest>.*)")


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(data: bytes, media_type: str = OCI_LAYER_TAR) -> Blob:
    """A blob of `data`, read from memory."""
    return Blob(digest=digest(data), size=len(data), media_type=media_type,
                open=lambda: io.BytesIO(data))  # fmt: skip


@dataclass
class Seen:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class FakeRegistry:
    """`auth`: None, "basic" or "bearer". `users`: username -> password."""

    auth: str | None = None
    users: dict[str, str] = field(default_factory=lambda: {"user": "pw-secret-1"})
    blobs: dict[str, bytes] = field(default_factory=dict)
    repos: dict[str, set[str]] = field(default_factory=dict)  # repository -> blob digests
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)  # token -> granted scopes
    token_lifetime: int = 300
    drops: list[Callable[[Seen], int | None]] = field(default_factory=list)
    answers: list[Callable[[Seen], Answer | None]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def client(self, base_url: str = f"https://{HOST}", **kwargs: Any) -> Registry:
        registry = Registry(base_url, kwargs.pop("credentials", None), **kwargs)
        registry._transport = FakeTransport(self)
        return registry

    def put_blob(self, repository: str, data: bytes) -> str:
        self.blobs[digest(data)] = data
        self.repos.setdefault(repository, set()).add(digest(data))
        return digest(data)

    def requests_to(self, method: str, pattern: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == method and re.search(pattern, s.path)]

    def expire_tokens(self) -> None:
        self.tokens.clear()

    # ---- the server --------------------------------------------------------------------------

    def handle(self, seen: Seen) -> Answer:
        self.seen.append(seen)
        canned = next((a for answer in self.answers if (a := answer(seen)) is not None), None)
        if canned is not None:
            return canned
        if seen.url.startswith(REALM):
            return self._token(seen)
        return self._authorize(seen) or self._route(seen)

    def _route(self, seen: Seen) -> Answer:
        match = _ROUTE.fullmatch(seen.path)
        if match is None:
            return (200, {}, b"{}") if seen.path == "/v2/" else (404, {}, b"")
        name, kind, rest = match["name"], match["kind"], match["rest"]
        if kind == "manifests":
            return self._manifest(seen, name, rest)
        if rest.startswith("uploads/"):
            return self._upload(seen, name, rest.removeprefix("uploads/"))
        return self._blob(seen, name, rest)

    def _authorize(self, seen: Seen) -> Answer | None:
        header = seen.headers.get("Authorization", "")
        if self.auth == "basic":
            user, password = _basic(header)
            if self.users.get(user or "") == password and password:
                return None
            return 401, {"WWW-Authenticate": 'Basic realm="fake"'}, _errors("UNAUTHORIZED")
        if self.auth == "bearer":
            needed = _needed(seen)
            token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
            granted = self.tokens.get(token or "")
            if granted is not None and all(s in granted for s in needed):
                return None
            error = "" if token is None else ',error="invalid_token"'
            if granted is not None:
                error = ',error="insufficient_scope"'
            scope = f',scope="{" ".join(needed)}"' if needed else ""
            challenge = f'Bearer realm="{REALM}",service="{SERVICE}"{scope}{error}'
            return 401, {"WWW-Authenticate": challenge}, _errors("UNAUTHORIZED")
        return None

    def _token(self, seen: Seen) -> Answer:
        user, password = _basic(seen.headers.get("Authorization", ""))
        if user is not None and self.users.get(user) != password:
            return 401, {}, b"{}"
        scopes = []
        for scope in seen.query.get("scope", []):
            resource, _, actions = scope.rpartition(":")
            allowed = actions.split(",") if user else ["pull"]
            scopes += [f"{resource}:{a}" for a in allowed if a]
        token = f"tok-{next(self._ids)}-secret"
        self.tokens[token] = tuple(scopes)
        body = {"access_token": token, "expires_in": self.token_lifetime}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _manifest(self, seen: Seen, name: str, reference: str) -> Answer:
        if seen.method == "PUT":
            media_type = seen.headers.get("Content-Type", "")
            self.manifests[(name, reference)] = (seen.body, media_type)
            self.manifests[(name, digest(seen.body))] = (seen.body, media_type)
            return 201, {"Docker-Content-Digest": digest(seen.body)}, b""
        found = self.manifests.get((name, reference))
        if found is None:
            return 404, {"Content-Type": "application/json"}, _errors("MANIFEST_UNKNOWN")
        raw, media_type = found
        headers = {"Content-Type": media_type, "Docker-Content-Digest": digest(raw)}
        return 200, headers, b"" if seen.method == "HEAD" else raw

    def _blob(self, seen: Seen, name: str, blob_digest: str) -> Answer:
        if blob_digest not in self.repos.get(name, set()):
            return 404, {}, _errors("BLOB_UNKNOWN")
        data = self.blobs[blob_digest]
        return 200, {"Content-Length": str(len(data))}, b"" if seen.method == "HEAD" else data

    def _start(self, seen: Seen, name: str) -> Answer:
        mount, source = seen.query.get("mount", [""])[0], seen.query.get("from", [""])[0]
        if mount and mount in self.repos.get(source, set()):
            self.repos.setdefault(name, set()).add(mount)
            return 201, {"Docker-Content-Digest": mount}, b""
        new = f"u{next(self._ids)}"
        self.uploads[new] = bytearray()
        return 202, self._where(name, new), b""

    def _upload(self, seen: Seen, name: str, upload_id: str) -> Answer:
        if seen.method == "POST":
            return self._start(seen, name)
        data = self.uploads.get(upload_id)
        if data is None:
            return 404, {}, _errors("BLOB_UPLOAD_UNKNOWN")
        if seen.method == "PATCH":
            start = seen.headers.get("Content-Range", "").partition("-")[0]
            if start and int(start) != len(data):
                return 416, {}, _errors("BLOB_UPLOAD_INVALID")
            data += seen.body
        elif seen.method == "PUT":
            data += seen.body
            wanted = seen.query.get("digest", [""])[0]
            if digest(bytes(data)) != wanted:
                return 400, {}, _errors("DIGEST_INVALID")
            self.put_blob(name, bytes(data))
            del self.uploads[upload_id]
            return 201, {"Docker-Content-Digest": wanted}, b""
        status = {"GET": 204, "PATCH": 202}.get(seen.method, 405)
        return status, self._where(name, upload_id), b""

    def _where(self, name: str, upload_id: str) -> dict[str, str]:
        size = len(self.uploads[upload_id])
        return {
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Range": f"0-{max(size - 1, 0)}",
        }


class FakeTransport(Transport):
    """`transport.Transport` with every exchange answered by the fake registry (redirects are
    still followed by the real code)."""

    def __init__(self, server: FakeRegistry) -> None:
        super().__init__(user_agent="fake")
        self.server = server

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: Body, **_: Any
    ) -> Response:
        seen = Seen(method, url, dict(headers), b"")
        chunks = [body] if isinstance(body, bytes) else list(_iterate(body, seen, self.server))
        seen.body = b"".join(chunks)
        status, answer_headers, content = self.server.handle(seen)
        return Response.of(status, answer_headers, b"" if method == "HEAD" else content, url)


def _iterate(body: Iterable[bytes] | None, seen: Seen, server: FakeRegistry) -> Iterable[bytes]:
    """Consume a streamed body as a socket would, cutting it where a drop rule says."""
    if body is None:
        return
    cut = next((n for rule in server.drops if (n := rule(seen)) is not None), None)
    sent = 0
    for piece in body:
        if cut is not None and sent + len(piece) > cut:
            server.seen.append(seen)
            raise TransportError("connection reset by peer (fake)")
        sent += len(piece)
        yield piece
    if cut is not None:
        server.seen.append(seen)
        raise TransportError("connection reset by peer (fake)")


def _basic(header: str) -> tuple[str | None, str | None]:
    if not header.startswith("Basic "):
        return None, None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


def _needed(seen: Seen) -> list[str]:
    match = _ROUTE.fullmatch(seen.path)
    if match is None:
        return []
    name = match["name"]
    actions = ["pull"] if seen.method in ("GET", "HEAD") else ["pull", "push"]
    needed = [f"repository:{name}:{a}" for a in actions]
    source = seen.query.get("from", [""])[0]
    return needed + ([f"repository:{source}:pull"] if source else [])


def _errors(code: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
