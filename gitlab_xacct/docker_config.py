"""A Docker `config.json`: read it strictly, merge registry logins in, write it privately.

Docker, podman, buildah, skopeo and kaniko all read `auths.HOST.auth` = base64("USER:PASSWORD"),
keyed by the registry host[:port] without a scheme (the key `docker push HOST/repo` looks up).
Everything else in the file belongs to the user and is kept as it was.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.secrets import Secret, register


def registry_host(value: str) -> str:
    """`https://HOST[:PORT]/v2/`, `HOST[:PORT]` or `HOST/path` -> `host[:port]`, Docker's key."""
    value = value.strip()
    netloc = urlsplit(value if "://" in value else f"//{value}").netloc
    return netloc.rpartition("@")[2].lower()


def load(path: Path) -> dict[str, object]:
    """The file as a JSON object ({} when it does not exist); anything else is exit 2.

    A file Docker could not parse either is the user's to fix: overwriting it would lose their
    settings, and merging into a guess would write something they never had.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read the Docker config {path}: {reason}") from None
    if not text.strip():
        return {}  # Docker treats an empty file as an empty config too
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"the Docker config {path} is not valid JSON (line {exc.lineno}, column "
            f"{exc.colno}); fix or move it, it was left untouched"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"the Docker config {path} holds a JSON {type(config).__name__}, not an object; "
            "fix or move it, it was left untouched"
        )
    if not isinstance(config.get("auths", {}), dict):
        raise ConfigError(
            f"the Docker config {path}: 'auths' is not an object; fix or move the file, it was "
            "left untouched"
        )
    return config


def merge(
    config: Mapping[str, object], logins: Mapping[str, tuple[str, Secret]]
) -> dict[str, object]:
    """A copy of `config` with one `auths` entry per host, every other key and entry kept.

    A host's entry is replaced whole: an old `identitytoken` or `registrytoken` next to the new
    `auth` would win over it in Docker and the login would not take.
    """
    merged = dict(config)
    existing = config.get("auths")
    auths: dict[str, object] = dict(existing) if isinstance(existing, dict) else {}
    for host, (username, password) in logins.items():
        auth = base64.b64encode(f"{username}:{password.reveal()}".encode()).decode()
        register(auth)
        auths[host] = {"auth": auth}
    merged["auths"] = auths
    return merged


def shadowing(config: Mapping[str, object], host: str) -> str | None:
    """Why Docker would not read `auths[host]`, or None. Docker asks `credHelpers[host]` first,
    then `credsStore`, and only without both reads `auths` (docker/cli configfile.GetAuthConfig;
    a store that does not know the host yields empty credentials, not the `auths` entry).
    """
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        return (
            f"credHelpers sends {host} to docker-credential-{helpers[host]}: docker and skopeo "
            "ask that helper and ignore this auths entry; remove that credHelpers line"
        )
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return (
            f"credsStore is {store!r}: docker reads credentials for {host} from "
            f"docker-credential-{store}, not from this auths entry, so docker push will not use "
            "this login (podman, buildah and skopeo ignore credsStore and do use it); point "
            "--docker-config/DOCKER_CONFIG at a config without credsStore, or add "
            f'"credHelpers": {{"{host}": "xacct"}}'
        )
    return None


def save(path: Path, config: Mapping[str, object]) -> None:
    """Tab-indented like Docker writes it; private, atomic, through a symlink as Docker does."""
    text = json.dumps(config, indent="\t") + "\n"
    try:
        write_private(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write the Docker config {path}: {exc.strerror}") from None


def write_private(path: Path, text: str) -> None:
    """Missing parents 0700, file 0600 from its first byte, replaced in one rename.

    A symlinked file (dotfile managers) is written at its target, so the link survives.
    """
    target = Path(os.path.realpath(path))
    missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    from gitlab_xacct.files import replace_atomically  # only `login` writes the file

    replace_atomically(target, text, mode=0o600)
