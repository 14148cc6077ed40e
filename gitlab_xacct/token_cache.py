"""docker-credential-xacct's cache of ECR tokens: the one file in which gitlab-xacct keeps a secret.

Docker runs the helper for every pull and push, often several times per command; without a cache
each run costs an AssumeRole and a GetAuthorizationToken (and CloudTrail entries). Only users who
configure the helper get this file, and `XACCT_CREDENTIAL_CACHE=false` turns it off. It lives at
`$XDG_CACHE_HOME/gitlab-xacct/ecr-tokens.json` (else `~/.cache/...`), folder 0700, file 0600,
replaced atomically. A token is used until 5 minutes before ECR's expiresAt; a file that cannot
be read as a cache is ignored and replaced, never an error: the worst case is one more AWS call.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gitlab_xacct.docker_config import write_private
from gitlab_xacct.secrets import Secret

log = logging.getLogger(__name__)

FILE_NAME = "ecr-tokens.json"
FORMAT_VERSION = 1
# Docker may hold a token for the whole of a long push; 5 minutes left is too little to start one.
MARGIN = timedelta(minutes=5)


def cache_dir(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore a relative path
        return Path(xdg) / "gitlab-xacct"
    return Path(env.get("HOME") or Path.home()) / ".cache" / "gitlab-xacct"


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A token answers for one role, in one account and region, for one registry host."""

    role_arn: str
    account: str
    region: str
    host: str


@dataclass(frozen=True, slots=True)
class CachedToken:
    key: CacheKey
    username: str
    password: Secret
    expires_at: datetime  # aware

    def usable(self, now: datetime) -> bool:
        return self.expires_at - MARGIN > now


class TokenCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / FILE_NAME

    def get(self, key: CacheKey, now: datetime) -> CachedToken | None:
        return next((t for t in self._load() if t.key == key and t.usable(now)), None)

    def put(self, token: CachedToken, now: datetime) -> bool:
        """Keep `token` unless it is already too close to expiry (moto's stand-in answers with
        an expiresAt in 2015: such a token is simply never cached). Expired entries go.
        """
        if not token.usable(now):
            return False
        kept = [t for t in self._load() if t.key != token.key and t.usable(now)]
        return self._save([*kept, token])

    def erase(self, host: str) -> int:
        tokens = self._load()
        kept = [t for t in tokens if t.key.host != host]
        if len(kept) != len(tokens):
            self._save(kept)
        return len(tokens) - len(kept)

    def listing(self, now: datetime) -> dict[str, str]:
        """host -> username of the usable tokens: the helper's answer to `list`."""
        return {t.key.host: t.username for t in self._load() if t.usable(now)}

    def _load(self) -> list[CachedToken]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            if document.get("version") != FORMAT_VERSION:
                return []
            return [_token(entry) for entry in document["tokens"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.debug("ignoring the token cache %s: %s", self.path, type(exc).__name__)
            return []

    def _save(self, tokens: list[CachedToken]) -> bool:
        document = {"version": FORMAT_VERSION, "tokens": [_entry(t) for t in tokens]}
        try:
            write_private(self.path, json.dumps(document, indent=2) + "\n")
            os.chmod(self.directory, 0o700)  # also when the folder was there before us
        except OSError as exc:
            log.warning(
                "could not write the token cache %s (%s); set XACCT_CREDENTIAL_CACHE=false "
                "to stop using it",
                self.path,
                exc.strerror,
            )
            return False
        return True


def _entry(token: CachedToken) -> dict[str, str]:
    return {
        "role_arn": token.key.role_arn,
        "account": token.key.account,
        "region": token.key.region,
        "host": token.key.host,
        "username": token.username,
        "password": token.password.reveal(),
        "expires_at": token.expires_at.astimezone(UTC).isoformat(),
    }


def _token(entry: dict[str, str]) -> CachedToken:
    fields = ("role_arn", "account", "region", "host", "username", "password", "expires_at")
    if not all(isinstance(entry[f], str) for f in fields):
        raise TypeError("a cache entry field is not a string")
    expires = datetime.fromisoformat(entry["expires_at"])
    if expires.tzinfo is None:
        raise ValueError("expires_at without a time zone")
    return CachedToken(
        key=CacheKey(entry["role_arn"], entry["account"], entry["region"], entry["host"]),
        username=entry["username"],
        password=Secret(entry["password"]),
        expires_at=expires,
    )
