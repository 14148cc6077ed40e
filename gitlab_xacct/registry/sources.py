"""Image sources opened: the image a parsed `SourceSpec` (config/source.py) names.

- `oci:PATH[:REF]`: an OCI image layout directory (REF: a ref.name annotation, or @N);
- `oci-archive:FILE[:REF]`: a tar of an OCI image layout;
- `docker-archive:FILE[:NAME:TAG]`: a `docker save` archive (or :@N, its Nth image);
- `docker://HOST/REPO[:TAG|@DIGEST]`: an image in a registry (`remote.py`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from gitlab_xacct.config.source import SourceSpec
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.image import SourceImage
from gitlab_xacct.registry.oci_layout import read_layout
from gitlab_xacct.registry.tarindex import DirFiles, open_archive

if TYPE_CHECKING:  # remote.py brings requests: imported only when a docker:// source opens
    from gitlab_xacct.registry.remote import Access


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
