"""`docker://HOST/REPO[:TAG|@DIGEST]`: an image in a registry, named as containers/image does.

The host is never guessed: `docker://alpine` is refused rather than read as Docker Hub, so a
job never pulls from somewhere it did not name. `docker.io/NAME` is Docker Hub (its API lives at
registry-1.docker.io, its single-name images under `library/`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gitlab_xacct.errors import ConfigError

FORM = "docker://HOST/REPO[:TAG|@DIGEST]"
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_CONFIG_KEY = "index.docker.io"  # `https://index.docker.io/v1/` in a Docker config

_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\])(?::[0-9]{{1,5}})?")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"  # distribution's reference grammar
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)  # ASCII: Python's \w takes "é" too
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ImageReference:
    host: str  # lower case, with the port when one was given
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest, else the tag, else `latest`."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host in DOCKER_HUB_HOSTS else self.host

    def __str__(self) -> str:
        suffix = f"@{self.digest}" if self.digest else f":{self.tag}" if self.tag else ""
        return f"docker://{self.host}/{self.repository}{suffix}"


def parse_reference(text: str) -> ImageReference:
    """Parse `docker://HOST/REPO[:TAG|@DIGEST]`; errors are one line and say what is wrong."""
    value = text.strip()
    if not value.startswith("docker://"):
        raise ConfigError(f"{value!r}: expected {FORM}")
    rest = value.removeprefix("docker://")
    host, slash, name = rest.partition("/")
    host = host.lower()
    if not slash or not name:
        raise ConfigError(f"{value!r}: no repository after the host; expected {FORM}")
    if not _HOST.fullmatch(host) or not ("." in host or ":" in host or host == "localhost"):
        raise ConfigError(
            f"{value!r}: {host!r} is not a registry host (it needs a dot or a port, or is "
            f"localhost; Docker Hub is docker.io/NAME); expected {FORM}"
        )
    name, at, digest = name.partition("@")
    repository, colon, tag = name.rpartition(":") if ":" in name else (name, "", "")
    if at and colon:
        raise ConfigError(f"{value!r}: give a tag or a digest, not both; expected {FORM}")
    if at and not _DIGEST.fullmatch(digest):
        raise ConfigError(f"{value!r}: {digest!r} is not sha256: and 64 lowercase hex digits")
    if colon and not _TAG.fullmatch(tag):
        raise ConfigError(
            f"{value!r}: {tag!r} is not a valid tag (1-128 letters, digits, '_', '.', '-', not "
            "starting with '.' or '-')"
        )
    if not _REPOSITORY.fullmatch(repository):
        raise ConfigError(
            f"{value!r}: {repository!r} is not a repository name (lower-case letters and digits, "
            "separated by '.', '_', '__' or dashes, components joined by '/')"
        )
    if host in DOCKER_HUB_HOSTS and "/" not in repository:
        repository = f"library/{repository}"
    return ImageReference(host, repository, tag or None, digest or None)
