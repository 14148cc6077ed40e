"""Image sources: where the image to push comes from, named the way containers/image names them.

- `oci:PATH[:REF]`: an OCI image layout directory (REF: a ref.name annotation, or @N);
- `oci-archive:FILE[:REF]`: a tar of an OCI image layout;
- `docker-archive:FILE[:NAME:TAG]`: a `docker save` archive (or :@N, its Nth image);
- `docker://HOST/REPO[:TAG|@DIGEST]`: an image in a registry (`remote.py`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.options import SOURCE_FORMS, one_of
from gitlab_xacct.registry.image import SourceImage
from gitlab_xacct.registry.oci_layout import read_layout
from gitlab_xacct.registry.reference import ImageReference, parse_reference
from gitlab_xacct.registry.tarindex import DirFiles, open_archive

if TYPE_CHECKING:  # remote.py brings requests: imported only when a docker:// source opens
    from gitlab_xacct.registry.remote import Access

__all__ = ["SourceImage", "SourceSpec", "Transport", "open_source", "parse_source"]

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


def open_source(
    spec: SourceSpec, *, env: Mapping[str, str] | None = None, access: Access | None = None
) -> contextlib.AbstractContextManager[SourceImage]:
    """Open the image `spec` names. Blobs can be opened until the context exits; an archive
    that must be decompressed is unpacked to a temporary directory removed on exit.

    A docker:// source uses `access` (credentials, insecure hosts); without it they are looked
    up in `env` (default: os.environ): see `remote.source_access`.
    """
    return _opened(spec, os.environ if env is None else env, access)


@contextlib.contextmanager
def _opened(
    spec: SourceSpec, env: Mapping[str, str], access: Access | None
) -> Iterator[SourceImage]:
    if spec.transport == "docker":
        from gitlab_xacct.registry import remote

        image = spec.image
        chosen = access or remote.source_access(image.api_host, env)
        with remote.open_remote(image, chosen) as opened:
            yield opened
    elif spec.transport == "oci":
        yield read_layout(_layout_dir(spec.path), spec.ref)
    elif spec.transport == "oci-archive":
        with open_archive(spec.path, _in_layout) as files:
            yield read_layout(files, spec.ref)
    else:
        from gitlab_xacct.registry.docker_archive import read_docker_archive  # its tables: lazy

        with open_archive(spec.path, lambda _name: True) as files:
            yield read_docker_archive(files, spec.ref)


def _layout_dir(path: Path) -> DirFiles:
    if path.is_file():
        raise ConfigError(f"{path}: is a file, not an OCI layout directory (oci-archive:{path}?)")
    if not path.is_dir():
        raise ConfigError(f"{path}: no such OCI layout directory")
    return DirFiles(path)


def _in_layout(name: str) -> bool:
    return name in ("index.json", "oci-layout") or name.startswith("blobs/")
