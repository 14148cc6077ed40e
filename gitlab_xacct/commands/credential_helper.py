"""`docker-credential-xacct`: a Docker credential helper answering with the target role's ECR token.

Configured as `"credHelpers": {"HOST": "xacct"}` in a Docker config (or `auth.json`), it is run by
docker, buildah, podman and skopeo as `docker-credential-xacct ACTION` with the request on stdin.
Nothing goes into the Docker config: each `get` assumes the role from the environment (the same
XACCT_* variables as `push`), unless the token cache (token_cache.py) holds a fresh token.

Protocol facts this follows (docker-credential-helpers, `client` and `credentials` packages):
the caller reads stdout only, and on a failure puts stdout's text into its own error message, so
errors go to stdout as one line, like Docker's own helpers do; the helper's stderr is passed
through to the caller's stderr. "credentials not found in native keychain" on stdout, exit 1, is
the one answer that lets the caller go on without credentials.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from gitlab_xacct import __version__, cancel
from gitlab_xacct import log as xlog
from gitlab_xacct.aws import ecr
from gitlab_xacct.aws.identity import assume_target
from gitlab_xacct.config import validate
from gitlab_xacct.config.identity import IdentitySettings
from gitlab_xacct.config.options import (
    COMMON_OPTIONS,
    CREDENTIAL_HELPER_OPTIONS,
    IDENTITY_OPTIONS,
    REGISTRY_OPTIONS,
)
from gitlab_xacct.config.resolver import Resolver, check_unknown_variables
from gitlab_xacct.docker_config import registry_host
from gitlab_xacct.errors import ConfigError, XacctError
from gitlab_xacct.secrets import mask, register
from gitlab_xacct.token_cache import CachedToken, CacheKey, TokenCache, cache_dir

PROG = "docker-credential-xacct"
NOT_FOUND = "credentials not found in native keychain"  # docker-credential-helpers' exact text
MISSING_URL = "no credentials server URL"
OPTIONS = (*IDENTITY_OPTIONS, *REGISTRY_OPTIONS, *CREDENTIAL_HELPER_OPTIONS, *COMMON_OPTIONS)
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "XACCT_EXTERNAL_ID")

log = logging.getLogger(__name__)


class NotOurs(Exception):
    """The host is neither an ECR registry nor XACCT_REGISTRY_ENDPOINT's: not ours to answer."""


@dataclass(frozen=True, slots=True)
class Request:
    identity: IdentitySettings
    account: str
    host: str
    cache: bool

    @property
    def key(self) -> CacheKey:
        region = self.identity.region
        return CacheKey(str(self.identity.target.role), self.account, region, self.host)


def resolve(host: str, env: Mapping[str, str]) -> Request:
    """Which account and region `host` is, and how to reach the role; NotOurs for other hosts.

    An ECR host name carries its account and region (its region wins over XACCT_REGION); the
    XACCT_REGISTRY_ENDPOINT host is the target role's own account, as for `push`.
    """
    parsed = validate.parse_ecr_host(host)
    if parsed is None:
        endpoint = env.get("XACCT_REGISTRY_ENDPOINT", "").strip()
        if not endpoint:
            raise NotOurs(host)
        ours = registry_host(validate.registry_endpoint(endpoint, "XACCT_REGISTRY_ENDPOINT"))
        if host != ours:
            raise NotOurs(host)
    check_unknown_variables(env)
    r = Resolver(env, {"region": parsed[1]} if parsed else {}, OPTIONS)
    identity = IdentitySettings.resolve(r)
    return Request(
        identity=identity,
        account=parsed[0] if parsed else identity.target.role.account,
        host=host,
        cache=r.boolean("credential_cache") if r.get("credential_cache") else True,
    )


def fetch_token(identity: IdentitySettings, account: str) -> ecr.Authorization:
    """The AWS part, kept in one function: assume the role, then GetAuthorizationToken."""
    role = assume_target(identity)
    client = ecr.ecr_client(role, identity.region)
    return ecr.authorize(client, account=account, region=identity.region, role=role.arn)


def get(server_url: str, env: Mapping[str, str], now: datetime) -> CachedToken:
    request = resolve(registry_host(server_url), env)
    cache = TokenCache(cache_dir(env)) if request.cache else None
    if cache and (cached := cache.get(request.key, now)):
        log.debug("token for %s from the cache (expires %s)", request.host, cached.expires_at)
        return cached
    auth = fetch_token(request.identity, request.account)
    token = CachedToken(request.key, auth.login.username, auth.login.password, auth.expires_at)
    if cache:
        cache.put(token, now)
    return token


def main(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin: TextIO,
    stdout: TextIO,
    now: datetime | None = None,
) -> int:
    for name in _SECRET_ENV:
        if env.get(name):
            register(env[name])
    refused: ConfigError | None = None
    try:
        debug = validate.boolean_variable(env, "XACCT_DEBUG")
    except ConfigError as exc:  # refused below, the helper's way: one line on stdout, exit 1
        debug, refused = False, exc
    xlog.setup(debug=debug)
    if not debug:  # stderr reaches the user of docker on every pull: warnings only
        logging.getLogger("gitlab_xacct").setLevel(logging.WARNING)
    now = now or datetime.now(UTC)
    if len(argv) != 1:
        stdout.write(f"usage: {PROG} get|store|erase|list|version (request on stdin)\n")
        return 1
    action = _ACTIONS.get(argv[0])
    if action is None:
        stdout.write(f"{PROG}: unknown action {argv[0]!r}; use {', '.join(_ACTIONS)}\n")
        return 1
    try:
        if refused:
            raise refused
        with cancel.installed():
            return action(env, stdin, stdout, now)
    except cancel.Cancelled as exc:  # the caller (docker, skopeo) gave up on us: 130/143
        stdout.write(f"{PROG}: {exc}\n")
        return exc.exit_code
    except NotOurs:
        stdout.write(NOT_FOUND + "\n")
        return 1
    except XacctError as exc:
        if debug:
            log.debug("traceback:", exc_info=True)
        stdout.write(f"{PROG}: {' '.join(mask(str(exc)).split())}\n")
        return 1


def _get(env: Mapping[str, str], stdin: TextIO, stdout: TextIO, now: datetime) -> int:
    server_url = stdin.read().strip()
    if not server_url:
        stdout.write(MISSING_URL + "\n")
        return 1
    token = get(server_url, env, now)
    answer = {"ServerURL": server_url, "Username": token.username}
    stdout.write(json.dumps({**answer, "Secret": token.password.reveal()}) + "\n")
    return 0


def _store(env: Mapping[str, str], stdin: TextIO, stdout: TextIO, now: datetime) -> int:
    stdin.read()  # the caller's password: consumed, never kept or echoed
    sys.stderr.write(
        f"{PROG}: not stored: credentials for these hosts come from the role in XACCT_ROLE_ARN "
        "on every get, so there is nothing to keep\n"
    )
    return 0


def _erase(env: Mapping[str, str], stdin: TextIO, stdout: TextIO, now: datetime) -> int:
    host = registry_host(stdin.read())
    if host:
        TokenCache(cache_dir(env)).erase(host)
    return 0


def _list(env: Mapping[str, str], stdin: TextIO, stdout: TextIO, now: datetime) -> int:
    listing = {}
    if validate.boolean_variable(env, "XACCT_CREDENTIAL_CACHE", default=True):
        listing = TokenCache(cache_dir(env)).listing(now)
    stdout.write(json.dumps(listing) + "\n")
    return 0


def _version(env: Mapping[str, str], stdin: TextIO, stdout: TextIO, now: datetime) -> int:
    stdout.write(f"{PROG} (gitlab-xacct) {__version__}\n")
    return 0


_ACTIONS = {"get": _get, "store": _store, "erase": _erase, "list": _list, "version": _version}


def entry() -> None:
    sys.exit(main(sys.argv[1:], os.environ, sys.stdin, sys.stdout))
