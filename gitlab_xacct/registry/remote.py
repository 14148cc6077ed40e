"""Images in other registries: the credentials for a host, how to reach it, and `docker://`
sources whose blobs stream straight from the source registry (no temporary files).

Credentials, first found wins: an explicit `USER:PASSWORD` (or the name of a variable holding
it); the Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): the
`credHelpers` helper for the host, the `credsStore` helper, its `auths`; in a GitLab job, for
the host in `CI_REGISTRY`, `CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD`, else `gitlab-ci-token`
with `CI_JOB_TOKEN`; else anonymous.

Transport: verified TLS only, except a loopback host (TLS first, plain HTTP when it does not
speak TLS, as Docker does) and hosts listed as insecure (TLS unverified first, then plain HTTP).
Whether a host speaks TLS is one GET of /v2/ over TLS with the certificate unchecked
(`Transport.speaks_tls`): a loopback registry that speaks TLS with a certificate that is not
trusted then fails its first request (exit 4); it is never spoken to over plain HTTP, not even
when the proxy in `HTTPS_PROXY` refuses the tunnel or does not answer (the first request then
fails naming the proxy).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from gitlab_xacct import docker_config
from gitlab_xacct.config.reference import DOCKER_HUB_CONFIG_KEY, DOCKER_HUB_HOSTS, ImageReference
from gitlab_xacct.config.resolver import split_list
from gitlab_xacct.config.validate import is_loopback
from gitlab_xacct.errors import ConfigError, NotFound, RegistryUnreachable
from gitlab_xacct.registry.client import DEFAULT_CHUNK_SIZE, Credentials, Network, Registry
from gitlab_xacct.registry.image import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    Blob,
    ImageIndex,
    ImageManifest,
    SourceImage,
)
from gitlab_xacct.registry.oci_layout import (
    get_list,
    manifest_descriptors,
    media_type_of,
    parse_descriptor,
    parse_object,
    sha256_digest,
)
from gitlab_xacct.registry.transport import Transport
from gitlab_xacct.registry.transport_errors import TransportError
from gitlab_xacct.secrets import Secret

log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROBE_TIMEOUT = (5.0, 10.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Access:
    """How to talk to one registry: credentials (and where they came from), the hosts the user
    listed as insecure, and the upload chunk size."""

    credentials: Credentials | None
    origin: str  # "--src-creds", "Docker config PATH", "CI_JOB_TOKEN", "anonymous", ...
    insecure_registries: frozenset[str] = frozenset()
    chunk_size: int = DEFAULT_CHUNK_SIZE
    network: Network = field(default_factory=Network)  # timeouts and retries
    env: Mapping[str, str] | None = None  # proxies and trust store (gitlab_xacct.network)


# ---- credentials -------------------------------------------------------------------------


def parse_credentials(value: str, origin: str, env: Mapping[str, str]) -> tuple[Credentials, str]:
    """`USER:PASSWORD`, or the name of a variable that holds it. Never echoes the value."""
    text, where = value.strip(), origin
    if ":" not in text:
        if not _VARIABLE.fullmatch(text):
            raise ConfigError(
                f"{origin}: give USER:PASSWORD, or the name of a (masked) variable holding it"
            )
        if not env.get(text, "").strip():
            raise ConfigError(f"{origin}: names the variable {text}, which is not set or empty")
        text, where = env[text].strip(), f"{origin} (${text})"
    username, _, password = text.partition(":")
    if not username or not password:
        raise ConfigError(f"{where}: expected USER:PASSWORD, with both parts non-empty")
    return Credentials(username, Secret(password)), where


def lookup_credentials(
    host: str, env: Mapping[str, str], explicit: tuple[str, str] | None = None
) -> tuple[Credentials | None, str]:
    """The credentials for `host` and where they came from, by the order in this module's doc."""
    if explicit is not None:
        return parse_credentials(*explicit, env)
    found = _from_docker_config(host, env) or _from_gitlab(host, env)
    return found if found else (None, "anonymous")


def docker_config_path(env: Mapping[str, str]) -> Path:
    if env.get("DOCKER_CONFIG", "").strip():
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    return Path(env.get("HOME") or Path.home()) / ".docker" / "config.json"


def _from_docker_config(host: str, env: Mapping[str, str]) -> tuple[Credentials, str] | None:
    """As Docker looks: `credHelpers[host]` decides alone; then `credsStore`; then `auths`
    (Docker skips `auths` when a `credsStore` is set; podman and skopeo read it: so do we, when
    the store has nothing for the host)."""
    path = docker_config_path(env)
    config = docker_config.load(path)
    server = DOCKER_HUB_CONFIG_KEY if host in DOCKER_HUB_HOSTS else host
    helpers = config.get("credHelpers")
    helper = helpers.get(server) if isinstance(helpers, dict) else None
    if isinstance(helper, str) and helper:
        found = _ask_helper(helper, server, path, "credHelpers", env)
        return (found, f"docker-credential-{helper} ({path} credHelpers)") if found else None
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        found = _ask_helper(store, server, path, "credsStore", env)
        if found:
            return found, f"docker-credential-{store} ({path} credsStore)"
    auths = config.get("auths")
    entries = (
        {docker_config.registry_host(k): v for k, v in auths.items()}
        if isinstance(auths, dict)
        else {}
    )
    keys = [host, DOCKER_HUB_CONFIG_KEY] if host in DOCKER_HUB_HOSTS else [host]
    entry = next((entries[k] for k in keys if isinstance(entries.get(k), dict)), None)
    if isinstance(entry, dict):
        credentials = _entry_credentials(entry, path, host)
        if credentials:
            return credentials, f"Docker config {path}"
    return None


def _ask_helper(
    helper: str, server: str, path: Path, field: str, env: Mapping[str, str]
) -> Credentials | None:
    from gitlab_xacct.registry import credential_helpers  # subprocess: only for a helper

    return credential_helpers.from_helper(helper, server, config=path, field=field, env=env)


def _entry_credentials(entry: Mapping[str, object], path: Path, host: str) -> Credentials | None:
    auth, username, password = entry.get("auth"), entry.get("username"), entry.get("password")
    if isinstance(auth, str) and auth:
        try:
            username, _, password = base64.b64decode(auth, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(f"{path}: auths entry of {host}: 'auth' is not base64") from None
    if isinstance(username, str) and isinstance(password, str) and username and password:
        return Credentials(username, Secret(password))
    if entry.get("identitytoken"):
        log.warning("%s: the identitytoken of %s is not supported; not used", path, host)
    return None


def _from_gitlab(host: str, env: Mapping[str, str]) -> tuple[Credentials, str] | None:
    ci_registry = env.get("CI_REGISTRY", "").strip()
    if not ci_registry or docker_config.registry_host(ci_registry) != host:
        return None
    user, password = env.get("CI_REGISTRY_USER", ""), env.get("CI_REGISTRY_PASSWORD", "")
    if user and password:
        return Credentials(user, Secret(password)), "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD"
    if env.get("CI_JOB_TOKEN"):
        return Credentials("gitlab-ci-token", Secret(env["CI_JOB_TOKEN"])), "CI_JOB_TOKEN"
    return None


def source_access(host: str, env: Mapping[str, str]) -> Access:
    """A `docker://` source's access from the environment alone (what `push` has):
    XACCT_SRC_CREDS, XACCT_INSECURE_REGISTRIES, then the lookup order above."""
    explicit = env.get("XACCT_SRC_CREDS", "")
    credentials, origin = lookup_credentials(
        host, env, (explicit, "XACCT_SRC_CREDS") if explicit.strip() else None
    )
    insecure = split_list(env.get("XACCT_INSECURE_REGISTRIES", ""))
    listed = frozenset(docker_config.registry_host(h) for h in insecure)
    return Access(credentials=credentials, origin=origin, insecure_registries=listed, env=env)


# ---- transport ---------------------------------------------------------------------------


def is_insecure(host: str, insecure_registries: Collection[str]) -> bool:
    """Listed as HOST:PORT, or as HOST for any port."""
    return host in insecure_registries or _hostname(host) in insecure_registries


def transport_plan(host: str, insecure_registries: Collection[str]) -> tuple[tuple[str, bool], ...]:
    """(scheme, verify TLS) in the order to try: never plain HTTP for a host not allowed it."""
    if is_insecure(host, insecure_registries):
        return (("https", False), ("http", False))
    if is_loopback(_hostname(host)):
        return (("https", True), ("http", True))
    return (("https", True),)


def connect(host: str, access: Access, *, auth_hint: str, pool: int = 8) -> Registry:
    """A `Registry` for `host` over the first transport of its plan that answers."""
    plan = transport_plan(host, access.insecure_registries)
    scheme, verify = _first_answering(host, plan, access.env) if len(plan) > 1 else plan[0]
    if not verify:
        log.warning("TLS verification is off for %s (listed as an insecure registry)", host)
    return Registry(
        f"{scheme}://{host}",
        access.credentials,
        pool=pool,
        insecure=not verify,
        chunk_size=access.chunk_size,
        auth_hint=auth_hint,
        network=access.network,
        env=access.env,
    )


def _first_answering(
    host: str, plan: tuple[tuple[str, bool], ...], env: Mapping[str, str] | None
) -> tuple[str, bool]:
    """TLS when the peer answers over TLS; plain HTTP only when it does not. The
    probe checks no certificate: one that fails verification fails the first request over TLS
    (an error, never a downgrade)."""
    for scheme, verify in plan[:-1]:
        if _probe(host, env):
            return scheme, verify
        log.debug("%s does not answer over %s; trying the next transport", host, scheme)
    return plan[-1]


def _probe(host: str, env: Mapping[str, str] | None) -> bool:
    """Whether `host` speaks TLS (asked through the proxy the variables name for it). A proxy
    that cannot be reached or refuses the tunnel decides nothing: TLS then, whose first request
    fails naming the proxy, as for any other host; never plain HTTP around it."""
    transport = Transport(user_agent="gitlab-xacct", pool=1, env=env)
    try:
        return transport.speaks_tls(host, _PROBE_TIMEOUT)
    except TransportError as exc:
        log.debug("the TLS probe of %s went nowhere (%s): TLS it is", host, exc.reason)
        return True
    finally:
        transport.close()


def _hostname(host: str) -> str:
    return (urlsplit(f"//{host}").hostname or host).lower()


# ---- docker:// sources -------------------------------------------------------------------


@contextlib.contextmanager
def open_remote(reference: ImageReference, access: Access) -> Iterator[SourceImage]:
    """The image `reference` names; its blobs stream from the registry until the context exits."""
    hint = (
        f"the credentials from {access.origin} were not accepted, or may not pull "
        f"{reference.repository}"
    )
    label = str(reference)
    try:
        registry = connect(reference.api_host, access, auth_hint=hint)
    except RegistryUnreachable as exc:
        raise ConfigError(f"{label}: {exc}") from None
    with registry:
        try:
            image = _read(registry, reference, label)
        except NotFound as exc:
            raise ConfigError(f"{label}: no such image ({exc})") from None
        except RegistryUnreachable as exc:
            raise ConfigError(f"{label}: {exc}") from None
        yield image


def _read(registry: Registry, reference: ImageReference, label: str) -> SourceImage:
    repository = reference.repository
    raw, served = registry.get_manifest(repository, reference.reference)
    digest = reference.digest or sha256_digest(raw)
    doc = parse_object(raw, label, f"manifest {digest}")
    media_type = media_type_of(doc, served, label, digest)
    if media_type in MANIFEST_TYPES:
        return _manifest(
            registry,
            repository,
            raw=raw,
            doc=doc,
            digest=digest,
            media_type=media_type,
            label=label,
        )
    what = f"index {digest}"
    children = []
    for number, item in enumerate(get_list(doc, "manifests", label, what)):
        child = parse_descriptor(item, label, f"entry {number} of {what}")
        if child.media_type in INDEX_TYPES:
            raise ConfigError(f"{label}: {what} nests another index ({child.digest}): unsupported")
        child_raw, child_served = registry.get_manifest(repository, child.digest)  # verified
        if len(child_raw) != child.size:
            raise ConfigError(f"{label}: manifest {child.digest} is not {child.size} bytes")
        child_doc = parse_object(child_raw, label, f"manifest {child.digest}")
        child_type = media_type_of(child_doc, child.media_type or child_served, label, child.digest)
        children.append(
            _manifest(
                registry,
                repository,
                raw=child_raw,
                doc=child_doc,
                digest=child.digest,
                media_type=child_type,
                label=label,
            )
        )
    if not children:
        raise ConfigError(f"{label}: {what} lists no manifests")
    return ImageIndex(manifest=raw, media_type=media_type, digest=digest, children=tuple(children))


def _manifest(
    registry: Registry,
    repository: str,
    *,
    raw: bytes,
    doc: dict[str, object],
    digest: str,
    media_type: str,
    label: str,
) -> ImageManifest:
    config, layers = manifest_descriptors(doc, digest, media_type, label)

    def blob(descriptor_digest: str, size: int, kind: str | None) -> Blob:
        return Blob(
            digest=descriptor_digest,
            size=size,
            media_type=kind or "application/octet-stream",
            open=partial(registry.open_blob, repository, descriptor_digest),
            mount_from=(registry.host, repository),
        )

    return ImageManifest(
        manifest=raw,
        media_type=media_type,
        digest=digest,
        config=blob(config.digest, config.size, config.media_type),
        layers=tuple(blob(d.digest, d.size, d.media_type) for d in layers),
    )
