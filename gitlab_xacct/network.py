"""How every connection of a run reaches the network: one trust store and one proxy dialect for
STS, ECR's API (botocore) and the registry alike.

Trust: a CA bundle named by `AWS_CA_BUNDLE` or `REQUESTS_CA_BUNDLE` (the first set) replaces
the trust store, as botocore and requests document those variables; otherwise the system trust
store, as OpenSSL finds it (`SSL_CERT_FILE` and `SSL_CERT_DIR` point it elsewhere). Never
certifi's or botocore's bundled copy: a private CA added to the system store works everywhere.

Proxies: `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (lower case first, as curl reads them), a proxy
reached over plain HTTP (`user:password@` for Basic); `NO_PROXY` entries match a host, its
subdomains, `HOST:PORT`, an IP address or a CIDR range, or `*`. botocore gets the proxy this
module picks for its endpoint, not its own reading of the variables (which knows no CIDR).
"""

from __future__ import annotations

import base64
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote, urlsplit

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.secrets import Secret

if TYPE_CHECKING:
    from botocore.config import Config

T = TypeVar("T")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BUNDLES = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE")


# ---- trust -----------------------------------------------------------------------------------


def ca_bundle(env: Mapping[str, str]) -> str | None:
    """The CA bundle that replaces the system trust store, or None; a missing file is exit 2."""
    for name in _BUNDLES:
        value = env.get(name, "").strip()
        if value:
            if not os.path.isfile(value):
                raise ConfigError(f"{name}: no such CA bundle file {value!r}")
            return value
    return None


def system_store(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The system trust store as OpenSSL finds it: its file and folder, which `SSL_CERT_FILE`
    and `SSL_CERT_DIR` (of the settings' mapping) replace; None for one that does not exist."""
    defaults = ssl.get_default_verify_paths()
    cafile = env.get("SSL_CERT_FILE", "").strip() or defaults.openssl_cafile
    capath = env.get("SSL_CERT_DIR", "").strip() or defaults.openssl_capath
    return (
        cafile if cafile and os.path.isfile(cafile) else None,
        capath if capath and os.path.isdir(capath) else None,
    )


_contexts: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def ssl_context(env: Mapping[str, str], *, verify: bool = True) -> ssl.SSLContext:
    """The TLS context of every verified connection (or of an unverified one, for a host the
    user listed as insecure); built once per process and trust store."""
    cafile = capath = None
    if verify:
        bundle = ca_bundle(env)
        cafile, capath = (bundle, None) if bundle is not None else system_store(env)
    key = (verify, cafile, capath)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks host names, verifies
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif cafile is not None or capath is not None:
                context.load_verify_locations(cafile=cafile, capath=capath)
            _contexts[key] = context
        return context


def aws_verify(env: Mapping[str, str]) -> str | None:
    """botocore's `verify`: the bundle, else the system store's file (botocore would otherwise
    use the copy of certifi's bundle it ships). None: no such file (botocore's own then)."""
    bundle = ca_bundle(env)
    return bundle if bundle is not None else system_store(env)[0]


# ---- proxies ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    url: str  # http://[user:password@]host:port, as requests and botocore take it
    authorization: str | None  # Proxy-Authorization, from the proxy URL's user:password

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


def _env(env: Mapping[str, str], name: str) -> str:
    return (env.get(name.lower()) or env.get(name.upper()) or "").strip()


def proxy_for(scheme: str, host: str, port: int, env: Mapping[str, str]) -> Proxy | None:
    """The proxy a request to `scheme://host:port` goes through, by the proxy variables."""
    value = _proxy_variable(env, scheme)
    if not value or bypasses(host, port, _env(env, "no_proxy")):
        return None
    return _proxy(value, scheme)


def proxy_for_url(url: str, env: Mapping[str, str]) -> Proxy | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return proxy_for(scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme], env)


def check_proxies(env: Mapping[str, str]) -> None:
    """Refuse unusable proxy variables (and CA bundle) up front (exit 2, before any work), not
    at the first request that would go through them."""
    for scheme in ("http", "https"):
        value = _proxy_variable(env, scheme)
        if value:
            _proxy(value, scheme)
    ca_bundle(env)


def _proxy_variable(env: Mapping[str, str], scheme: str) -> str:
    return _env(env, f"{scheme}_proxy") or _env(env, "all_proxy")


def _proxy(value: str, scheme: str) -> Proxy:
    parts = urlsplit(value if "://" in value else f"http://{value}")
    variable = f"{scheme.upper()}_PROXY"
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ConfigError(
            f"{variable} (or ALL_PROXY): only proxies reached over plain HTTP are supported; "
            "give it as http://HOST:PORT"
        )
    try:
        proxy_port = parts.port or 80
    except ValueError:
        raise ConfigError(
            f"{variable} (or ALL_PROXY): not a valid port; give http://HOST:PORT"
        ) from None
    authorization = None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    url = f"http://{host}:{proxy_port}"
    if parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        authorization = basic_authorization(user, password)
        url = f"http://{parts.netloc.rpartition('@')[0]}@{host}:{proxy_port}"
    return Proxy(parts.hostname, proxy_port, url, authorization)


def bypasses(host: str, port: int, no_proxy: str) -> bool:
    """Whether `NO_PROXY` exempts `host:port`: `*`, a host and its subdomains (`example.com`
    or `.example.com`), `HOST:PORT`, an IP address, or a CIDR range of addresses."""
    host = host.lower().strip("[]")
    for item in no_proxy.replace(" ", ",").split(","):
        entry = item.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, wanted_port = _split_port(entry)
        if wanted_port is not None and wanted_port != port:
            continue
        if "/" in name and _in_network(host, name):
            return True
        name = name.lstrip(".").strip("[]")
        if host == name or host.endswith("." + name):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:5000
        name, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return name, int(port) if port.isdecimal() and port.isascii() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        if port.isdecimal() and port.isascii():
            return name, int(port)
    return entry, None


def _in_network(host: str, cidr: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


# ---- botocore --------------------------------------------------------------------------------


def aws_client(create: Callable[..., T], config: Config, env: Mapping[str, str] | None = None) -> T:
    """A botocore client on this module's trust store and proxy: `create(config=, verify=)`.

    With no proxy variable set, one client, told to use no proxy. Otherwise the endpoint is
    known only once a client exists: a first one resolves it, and the client returned is made
    with the proxy this module picks for that endpoint (NO_PROXY with CIDR ranges and ports
    applies to STS and ECR as to the registry)."""
    from botocore.config import Config as BotoConfig

    env = os.environ if env is None else env
    verify = aws_verify(env)
    if not any(_proxy_variable(env, scheme) for scheme in _DEFAULT_PORTS):
        return create(config=config.merge(BotoConfig(proxies={})), verify=verify)
    first = create(config=config.merge(BotoConfig(proxies={})), verify=verify)
    endpoint = getattr(getattr(first, "meta", None), "endpoint_url", None)
    proxy = proxy_for_url(endpoint, env) if isinstance(endpoint, str) else None
    if proxy is None or not isinstance(endpoint, str):
        return first
    wanted = {urlsplit(endpoint).scheme.lower(): proxy.url}
    return create(config=config.merge(BotoConfig(proxies=wanted)), verify=verify)


def basic_authorization(username: str, password: str) -> str:
    """An `Authorization` (or `Proxy-Authorization`) value for Basic credentials, registered
    for masking: it decodes to the password."""
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {Secret(pair).reveal()}"
