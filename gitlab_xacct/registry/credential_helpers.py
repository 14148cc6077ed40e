"""Docker credential helpers (`credHelpers`, `credsStore`) as a source of registry credentials.

The protocol (docker/docker-credential-helpers): run `docker-credential-NAME get`, write the
server address on stdin, read `{"ServerURL", "Username", "Secret"}` on stdout; "credentials not
found" on stdout with a non-zero exit means the helper has nothing for that server.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from gitlab_xacct.errors import ConfigError, RegistryAuthError
from gitlab_xacct.registry.client import Credentials
from gitlab_xacct.secrets import Secret, mask, register

log = logging.getLogger(__name__)

HELPER_TIMEOUT = 60.0  # a helper may unlock a keyring or call a cloud API; never wait forever
_NOT_FOUND = "credentials not found"
# The Username a helper gives for an OAuth2 refresh token (Docker's identitytoken).
_IDENTITY_TOKEN_USER = "<token>"  # noqa: S105 - a marker, not a password


def from_helper(
    name: str, server: str, *, config: Path, field: str, env: Mapping[str, str]
) -> Credentials | None:
    """The helper's credentials for `server`, None when it has none; a helper that is missing
    or broken is an error naming the config entry, since Docker would fail the same way. It
    runs with the job's environment (`env`), which it may need (AWS_*, a keyring's socket)."""
    program = f"docker-credential-{name}"
    path = shutil.which(program, path=env.get("PATH", ""))
    if path is None:
        raise ConfigError(
            f"{config}: {field} names {name!r} for {server}, but {program} is not on PATH; "
            f"install it, or remove that {field} entry"
        )
    try:
        result = subprocess.run(
            [path, "get"], input=server, capture_output=True, text=True, env=dict(env),
            timeout=HELPER_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise RegistryAuthError(
            f"{program} get {server} gave no answer in {HELPER_TIMEOUT:.0f} s ({config}: {field})"
        ) from None
    if result.returncode != 0:
        said = (result.stdout.strip() or result.stderr.strip()).splitlines()
        if said and _NOT_FOUND in said[0].lower():
            return None
        first = mask(said[0]) if said else f"exit code {result.returncode}"
        raise RegistryAuthError(f"{program} get {server} failed: {first} ({config}: {field})")
    return _parse(result.stdout, program, server)


def _parse(output: str, program: str, server: str) -> Credentials | None:
    try:
        answer = json.loads(output)
    except json.JSONDecodeError:
        raise RegistryAuthError(f"{program} get {server}: the answer is not JSON") from None
    username = answer.get("Username") if isinstance(answer, dict) else None
    secret = answer.get("Secret") if isinstance(answer, dict) else None
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        raise RegistryAuthError(f"{program} get {server}: the answer has no Username/Secret")
    if username == _IDENTITY_TOKEN_USER:
        register(secret)  # masked from here on, though not used
        log.warning("%s: the identity token for %s is not supported; not used", program, server)
        return None
    return Credentials(username, Secret(secret))
