"""A token service for docker-registry's `auth: token`, and a starter for a registry using it.

What distribution 2.8 (registry/auth/token) checks, read from its source and held to here:
- the JWT header names the signing key by `kid`, the libtrust fingerprint of the public key:
  SHA-256 of its DER (PKIX) form, first 30 bytes, base32 without padding, 12 groups of 4 joined
  by ':'; the key must belong to a certificate in `rootcertbundle` (an `x5c` chain would do too);
- `alg` must be the key's (ES256 for P-256; the signature is r||s, 64 bytes, not DER);
- claims: `iss` equal to the configured issuer, `aud` equal to the service *as a string* (2.8
  unmarshals it into a string, so a list makes the token malformed), `exp`/`nbf` with 60 s
  leeway, and `access` [{type, name, actions}] covering every action the request needs (a
  mount needs pull on the `from` repository too; a DELETE needs "delete").

The service runs on 127.0.0.1 on a free port in a thread, with socket timeouts, and stops with
its context manager. It checks Basic credentials, records every token request, and grants what
`grant` allows (default: users get pull and push, anonymous gets pull on `public` repositories).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.standins.loopback_server import LoopbackServer
from tests.standins.servers import Server, spawn_registry

SERVICE = "standin-registry"
ISSUER = "standin-token-issuer"
Grant = Callable[[str | None, str, list[str]], list[str]]  # (user, repository, asked) -> given


def libtrust_kid(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass(frozen=True)
class TokenRequest:
    user: str | None  # None: anonymous
    scopes: tuple[str, ...]
    service: str


@dataclass
class TokenIssuer(LoopbackServer):
    users: Mapping[str, str]  # username -> password
    public: frozenset[str] = frozenset()  # repositories anonymous clients may pull
    lifetime: int = 300
    grant: Grant | None = None
    requests: list[TokenRequest] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)  # every token handed out, for secret scans
    _key: ec.EllipticCurvePrivateKey = field(init=False, repr=False)
    _server: ThreadingHTTPServer | None = field(init=False, default=None, repr=False)
    _thread: threading.Thread | None = field(init=False, default=None, repr=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.kid = libtrust_kid(self._key.public_key())

    @property
    def realm(self) -> str:
        return f"{self.base_url}/token"

    def certificate_pem(self) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self._key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM)

    def token(self, user: str | None, scopes: tuple[str, ...], service: str) -> str:
        """A JWT as distribution 2.8 verifies it (see the module doc)."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            asked = [a for a in actions.split(",") if a]
            given = (self.grant or self._default_grant)(user, name, asked)
            access.append({"type": kind, "name": name, "actions": given})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user or "",
            "aud": service,
            "exp": now + self.lifetime,
            "nbf": now - 1,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "access": access,
        }
        header = {"typ": "JWT", "alg": "ES256", "kid": self.kid}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        r, s = decode_dss_signature(
            self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _default_grant(self, user: str | None, repository: str, asked: list[str]) -> list[str]:
        allowed = {"pull", "push"} if user else ({"pull"} if repository in self.public else set())
        return [a for a in asked if a in allowed]

    # ---- lifecycle --------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def _record(self, request: TokenRequest, token: str) -> None:
        with self._lock:
            self.requests.append(request)
            self.issued.append(token)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: ClassVar[TokenIssuer]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests read `requests`, not a log

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/token":
            self._answer(404, {"error": "not found"})
            return
        query = parse_qsl(url.query)
        scopes = tuple(s for key, value in query if key == "scope" for s in value.split())
        service = next((value for key, value in query if key == "service"), "")
        user = None
        header = self.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                pair = base64.b64decode(header[6:]).decode()
            except ValueError:
                pair = ""
            name, _, password = pair.partition(":")
            if self.owner.users.get(name) != password or not password:
                self._answer(401, {"details": "wrong credentials"}, basic=True)
                return
            user = name
        token = self.owner.token(user, scopes, service)
        self.owner._record(TokenRequest(user, scopes, service), token)
        issued = datetime.datetime.now(datetime.UTC).isoformat()
        body = {"token": token, "expires_in": self.owner.lifetime, "issued_at": issued}
        self._answer(200, body)

    def _answer(self, status: int, doc: Mapping[str, object], basic: bool = False) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if basic:
            self.send_header("WWW-Authenticate", 'Basic realm="standin-token-issuer"')
        self.end_headers()
        self.wfile.write(data)


@dataclass
class TokenRegistry(Server):
    """docker-registry with `auth: token` trusting `issuer`, over plain HTTP on loopback."""

    host: str = field(kw_only=True)
    issuer: TokenIssuer = field(kw_only=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_token_registry(
    workdir: Path, issuer: TokenIssuer, *, timeout: float = 10.0
) -> TokenRegistry:
    """Run docker-registry with token auth on a port the kernel picks (read from its log)."""
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = workdir / "token-ca.pem"
    bundle.write_bytes(issuer.certificate_pem())
    started = spawn_registry(
        workdir,
        "  token:\n"
        f"    realm: {issuer.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
        f"    rootcertbundle: {bundle}\n",
        timeout=timeout,
    )
    return TokenRegistry(
        started.process,
        started.log_path,
        f"http://{started.host}",
        started.log_file,
        host=started.host,
        issuer=issuer,
    )
