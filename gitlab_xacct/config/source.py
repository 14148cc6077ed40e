"""Where the image comes from, parsed (not opened: registry/sources.py opens it), and the
tags it gets, named the way containers/image names sources:

- `oci:PATH[:REF]`: an OCI image layout directory (REF: a ref.name annotation, or @N);
- `oci-archive:FILE[:REF]`: a tar of an OCI image layout;
- `docker-archive:FILE[:NAME:TAG]`: a `docker save` archive (or :@N, its Nth image);
- `docker://HOST/REPO[:TAG|@DIGEST]`: an image in a registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gitlab_xacct.config import validate
from gitlab_xacct.config.forms import SOURCE_FORMS, one_of
from gitlab_xacct.config.reference import ImageReference, parse_reference
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.config.validate import defaulted
from gitlab_xacct.errors import ConfigError

Transport = Literal["oci", "oci-archive", "docker-archive", "docker"]


_TRANSPORTS: dict[str, Transport] = {
    "oci": "oci",
    "oci-archive": "oci-archive",
    "docker-archive": "docker-archive",
}


_FORMS = f"expected {one_of(SOURCE_FORMS)}"


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed source: the transport, the file or directory, and the image within it.

    For docker:// the path is empty, `host` and `repository` name the image and `ref` is its
    tag or digest.
    """

    transport: Transport
    path: Path
    ref: str | None
    host: str | None = None
    repository: str | None = None

    @property
    def image(self) -> ImageReference:
        """The docker:// reference (only for that transport)."""
        if self.host is None or self.repository is None:
            raise ValueError(f"{self} is not a docker:// source")
        digest = self.ref if self.ref and self.ref.startswith("sha256:") else None
        tag = None if digest else self.ref
        return ImageReference(self.host, self.repository, tag, digest)

    def __str__(self) -> str:
        if self.transport == "docker":
            return str(self.image)
        ref = f":{self.ref}" if self.ref is not None else ""
        return f"{self.transport}:{self.path}{ref}"


def parse_source(spec: str) -> SourceSpec:
    """Parse `TRANSPORT:PATH[:REF]`; the path ends at its first ':' as in containers/image."""
    text = spec.strip()
    name, colon, rest = text.partition(":")
    if name == "docker":
        image = parse_reference(text)
        return SourceSpec(
            transport="docker",
            path=Path(""),
            ref=image.digest or image.tag,
            host=image.host,
            repository=image.repository,
        )
    if not colon or name not in _TRANSPORTS:
        what = f"unknown transport {name!r}" if colon else "no transport"
        raise ConfigError(f"{text!r}: {what}; {_FORMS}")
    transport = _TRANSPORTS[name]
    path, colon, ref = rest.partition(":")
    if not path:
        raise ConfigError(f"{text!r}: the path is empty; {_FORMS}")
    if colon and not ref:
        raise ConfigError(f"{text!r}: nothing follows the ':' after the path; {_FORMS}")
    if ref.startswith("@") and not (ref[1:].isascii() and ref[1:].isdigit()):  # not "@²"
        raise ConfigError(f"{text!r}: {ref!r} is not @ and an image number such as @0; {_FORMS}")
    if transport == "docker-archive" and "@" in ref[1:]:
        raise ConfigError(f"{text!r}: choose the image by name:tag or @N, not digest; {_FORMS}")
    if any(char.isspace() for char in ref):
        raise ConfigError(f"{text!r}: the image reference {ref!r} contains whitespace; {_FORMS}")
    return SourceSpec(transport=transport, path=Path(path), ref=ref or None)


def resolve_source(r: Resolver) -> tuple[SourceSpec, str]:
    """XACCT_SOURCE (--source), parsed (not opened), and where it was set."""
    value, origin = r.required("source", "the image to push")
    try:
        return parse_source(value), origin
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def resolve_tags(r: Resolver) -> tuple[str, ...]:
    explicit = r.list("tags")
    pairs: list[tuple[str, str]]
    if explicit:
        values, origin = explicit
        if not values:
            raise ConfigError(f"{origin}: lists no tag; give tags separated by commas or spaces")
        pairs = [(v, origin) for v in values]
    else:
        pairs = [(r.env[n], n) for n in ("CI_COMMIT_SHORT_SHA", "CI_COMMIT_TAG") if r.env.get(n)]
    if not pairs:
        raise ConfigError(
            "XACCT_TAGS (--tag): no tags set and CI_COMMIT_SHORT_SHA is unset; "
            "give at least one tag"
        )
    tags = [defaulted(validate.tag, value, origin, "XACCT_TAGS (--tag)") for value, origin in pairs]
    return tuple(dict.fromkeys(tags))  # keep order, drop repeats
