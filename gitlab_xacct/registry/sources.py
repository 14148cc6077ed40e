"""Image sources: where the image to push comes from, named the way containers/image names them.

- `oci:PATH[:REF]`: an OCI image layout directory (REF: a ref.name annotation, or @N);
- `oci-archive:FILE[:REF]`: a tar of an OCI image layout;
- `docker-archive:FILE[:NAME:TAG]`: a `docker save` archive (or :@N, its Nth image).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.docker_archive import read_docker_archive
from gitlab_xacct.registry.image import SourceImage
from gitlab_xacct.registry.oci_layout import read_layout
from gitlab_xacct.registry.tarindex import DirFiles, open_archive

__all__ = ["SourceImage", "SourceSpec", "Transport", "open_source", "parse_source"]

Transport = Literal["oci", "oci-archive", "docker-archive"]
_TRANSPORTS: dict[str, Transport] = {
    "oci": "oci",
    "oci-archive": "oci-archive",
    "docker-archive": "docker-archive",
}
_FORMS = "expected oci:PATH[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:NAME:TAG|:@N]"


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source: the transport, the file or directory, and the image within it."""

    transport: Transport
    path: Path
    ref: str | None

    def __str__(self) -> str:
        ref = f":{self.ref}" if self.ref is not None else ""
        return f"{self.transport}:{self.path}{ref}"


def parse_source(spec: str) -> SourceSpec:
    """Parse `TRANSPORT:PATH[:REF]`; the path ends at its first ':' as in containers/image."""
    text = spec.strip()
    name, colon, rest = text.partition(":")
    if name == "docker":
        raise ConfigError(
            f"{text!r}: the docker:// transport (copy from another registry) is not supported "
            f"yet; a later release adds it. Until then export the image: {_FORMS}"
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
    if ref.startswith("@") and not ref[1:].isdigit():
        raise ConfigError(f"{text!r}: {ref!r} is not @ and an image number such as @0; {_FORMS}")
    if transport == "docker-archive" and "@" in ref[1:]:
        raise ConfigError(f"{text!r}: choose the image by name:tag or @N, not digest; {_FORMS}")
    if any(char.isspace() for char in ref):
        raise ConfigError(f"{text!r}: the image reference {ref!r} contains whitespace; {_FORMS}")
    return SourceSpec(transport=transport, path=Path(path), ref=ref or None)


def open_source(spec: SourceSpec) -> contextlib.AbstractContextManager[SourceImage]:
    """Open the image `spec` names. Blobs can be opened until the context exits; an archive
    that must be decompressed is unpacked to a temporary directory removed on exit.
    """
    return _opened(spec)


@contextlib.contextmanager
def _opened(spec: SourceSpec) -> Iterator[SourceImage]:
    if spec.transport == "oci":
        yield read_layout(_layout_dir(spec.path), spec.ref)
    elif spec.transport == "oci-archive":
        with open_archive(spec.path, _in_layout) as files:
            yield read_layout(files, spec.ref)
    else:
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
