"""Where a source's files live: a directory, or a tar archive indexed in place.

Every file is handed out as a `Section` (a byte range of a file on disk), so a blob inside an
uncompressed archive is read straight from the archive: nothing is extracted, each reader has its
own handle, and memory stays flat however large the layer.
"""

from __future__ import annotations

import io
import posixpath
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

from gitlab_xacct.errors import ConfigError

if TYPE_CHECKING:
    import tarfile

    from _typeshed import WriteableBuffer

_SPARE_BYTES = 64 * 1024 * 1024  # left free for everything else on the runner
_CHUNK = 1 << 20
_MAX_LINK_HOPS = 8
# Errors a damaged or hostile archive can raise while we read it.
_StreamMode = Literal["r|gz", "r|bz2", "r|xz"]


def _archive_errors() -> tuple[type[BaseException], ...]:
    # tarfile and the codecs load only when an archive is opened: not for a layout directory.
    import lzma
    import tarfile
    import zlib

    return (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)


# The fix for an archive or layout that is damaged, incomplete or hostile.
EXPORT_AGAIN = "export the image again (skopeo copy, buildah push or docker save)"


@dataclass(frozen=True, slots=True)
class Section:
    """`size` bytes at `offset` in the file at `path`."""

    path: Path
    offset: int
    size: int

    def open(self) -> BinaryIO:
        """A fresh handle that yields exactly this section's bytes."""
        return io.BufferedReader(_SectionReader(self.path, self.offset, self.size))

    def read_all(self) -> bytes:
        with self.open() as stream:
            return stream.read()


class _SectionReader(io.RawIOBase):
    def __init__(self, path: Path, offset: int, size: int) -> None:
        super().__init__()
        self._path = path
        self._file = path.open("rb", buffering=0)
        self._left = size
        try:
            self._file.seek(offset)
        except OSError:
            self._file.close()
            raise

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer).cast("B")
        count = self._file.readinto(view[: min(len(view), self._left)])
        if not count:
            # The file shrank after we indexed it: never pass off a short blob as complete.
            raise OSError(f"{self._path}: unexpected end of file")
        self._left -= count
        return count

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


class Files(Protocol):
    """Read-only files of an image layout or archive, by their relative POSIX name."""

    @property
    def label(self) -> str:
        """Names the source in error messages."""
        ...

    def get(self, name: str) -> Section | None:
        """The file's section, or None when there is no such file."""
        ...


def normalise(name: str) -> str | None:
    """`name` without `./` and doubled slashes; None when it is absolute or climbs out (`..`)."""
    if name.startswith("/") or "\0" in name:
        return None
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


@dataclass(frozen=True, slots=True)
class DirFiles:
    """Files under a directory (an OCI layout on disk)."""

    root: Path

    @property
    def label(self) -> str:
        return str(self.root)

    def get(self, name: str) -> Section | None:
        norm = normalise(name)
        if not norm:
            raise ConfigError(
                f"{self.label}: refusing path {name!r}, which is outside the layout; {EXPORT_AGAIN}"
            )
        path = self.root / norm
        try:
            info = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ConfigError(f"{self.label}: cannot read {norm}: {exc.strerror}") from exc
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{self.label}: {norm} is not a regular file; {EXPORT_AGAIN}")
        return Section(path, 0, info.st_size)


@dataclass(frozen=True, slots=True)
class ArchiveFiles:
    """Regular members of a tar archive; link members resolve to them, never outside."""

    archive: Path
    regular: Mapping[str, Section]
    links: Mapping[str, str | None]  # member -> target member; None when the target escapes

    @property
    def label(self) -> str:
        return str(self.archive)

    def get(self, name: str) -> Section | None:
        norm = normalise(name)
        if not norm:
            raise ConfigError(
                f"{self.label}: refusing path {name!r}, which is outside the archive; "
                f"{EXPORT_AGAIN}"
            )
        # `docker save` links repeated layers (`<id>/layer.tar -> ../<other>/layer.tar`), so
        # links that stay inside the archive and end at a regular member are followed.
        start = norm
        for _ in range(_MAX_LINK_HOPS):
            section = self.regular.get(norm)
            if section is not None:
                return section
            if norm not in self.links:
                if norm == start:
                    return None
                raise ConfigError(
                    f"{self.label}: member {start} links to {norm}, which is absent; {EXPORT_AGAIN}"
                )
            target = self.links[norm]
            if target is None:
                raise ConfigError(
                    f"{self.label}: member {norm} is a link to outside the archive, refused; "
                    f"{EXPORT_AGAIN}"
                )
            norm = target
        raise ConfigError(
            f"{self.label}: member {start} is a link loop or a chain of over {_MAX_LINK_HOPS} "
            f"links; {EXPORT_AGAIN}"
        )


@contextmanager
def open_archive(path: Path, keep: Callable[[str], bool]) -> Iterator[ArchiveFiles]:
    """Index the tar at `path`. A compressed tar cannot be read at random offsets, so its
    members for which `keep(name)` holds are extracted to a temporary directory removed on exit.
    """
    label = str(path)
    try:
        with path.open("rb") as stream:
            magic = stream.read(6)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{label}: no such file; check the path (relative paths start in the "
            "job's working directory)"
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigError(
            f"{label}: is a directory, expected a tar archive (an OCI layout directory is "
            f"oci:{label})"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror}") from exc
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        raise ConfigError(f"{label}: zstd-compressed archives are not supported; decompress it")
    compression = _compression(magic)
    if compression is None:
        yield _index_in_place(path)
        return
    import tempfile

    try:
        scratch = tempfile.TemporaryDirectory(prefix="xacct-source-")
    except OSError as exc:
        raise ConfigError(
            f"{label}: cannot create a temporary directory to unpack it: {exc.strerror} "
            "(set TMPDIR to a writable directory)"
        ) from exc
    with scratch as tmp:
        yield _extract(path, compression, keep, Path(tmp))


def _compression(magic: bytes) -> _StreamMode | None:
    if magic.startswith(b"\x1f\x8b"):
        return "r|gz"
    if magic.startswith(b"BZh"):
        return "r|bz2"
    if magic.startswith(b"\xfd7zXZ\x00"):
        return "r|xz"
    return None


def _index_in_place(path: Path) -> ArchiveFiles:
    import tarfile

    regular: dict[str, Section] = {}
    links: dict[str, str | None] = {}
    try:
        end = path.stat().st_size
        with tarfile.open(path, mode="r:") as archive:
            for member in archive:
                name = _member_name(path, member)
                if _is_data(member):
                    # Indexing only seeks, so tarfile may not notice data cut short: check here.
                    if member.offset_data + member.size > end:
                        raise ConfigError(
                            f"{path}: the tar archive is truncated (in {name}); {EXPORT_AGAIN}"
                        )
                    regular[name] = Section(path, member.offset_data, member.size)
                    links.pop(name, None)
                elif member.issym() or member.islnk():
                    links[name] = _link_target(name, member)
                    regular.pop(name, None)
    except _archive_errors() as exc:
        raise _archive_error(path, exc) from exc
    return ArchiveFiles(path, regular, links)


def _extract(path: Path, mode: _StreamMode, keep: Callable[[str], bool], tmp: Path) -> ArchiveFiles:
    import shutil
    import tarfile

    regular: dict[str, Section] = {}
    links: dict[str, str | None] = {}
    try:
        with tarfile.open(path, mode=mode) as archive:
            for number, member in enumerate(archive):
                name = _member_name(path, member)
                if _is_data(member) and keep(name):
                    # Files get numbered names: nothing from the archive becomes a path on disk.
                    target = tmp / str(number)
                    _check_room(path, name, member.size, tmp)
                    source = archive.extractfile(member)
                    if source is None:  # pragma: no cover - regular members always have data
                        continue
                    with target.open("xb") as out:
                        shutil.copyfileobj(source, out, _CHUNK)
                    if target.stat().st_size != member.size:
                        raise ConfigError(
                            f"{path}: the tar archive is truncated (in {name}); {EXPORT_AGAIN}"
                        )
                    regular[name] = Section(target, 0, member.size)
                    links.pop(name, None)
                elif member.issym() or member.islnk():
                    links[name] = _link_target(name, member)
                    regular.pop(name, None)
    except _archive_errors() as exc:
        raise _archive_error(path, exc) from exc
    return ArchiveFiles(path, regular, links)


def _check_room(path: Path, name: str, size: int, tmp: Path) -> None:
    """A member that would not fit is refused before a byte is written: a small compressed
    archive can declare members of any size, and a full disk fails every job on the runner."""
    import shutil

    free = shutil.disk_usage(tmp).free
    if size + _SPARE_BYTES > free:
        raise ConfigError(
            f"{path}: unpacking {name} needs {size} bytes, and the temporary folder "
            f"{tmp.parent} has {free} free; set TMPDIR to a folder with room, or give the "
            "archive uncompressed (an uncompressed archive is read in place, nothing unpacked)"
        )


def _is_data(member: tarfile.TarInfo) -> bool:
    # Sparse members do not store their bytes contiguously: not usable as blobs.
    return member.isreg() and not member.issparse()


def _member_name(path: Path, member: tarfile.TarInfo) -> str:
    norm = normalise(member.name)
    if norm is None:
        raise ConfigError(
            f"{path}: member {member.name!r} has an unsafe path (absolute or '..'), refused; "
            f"{EXPORT_AGAIN}"
        )
    return norm


def _link_target(name: str, member: tarfile.TarInfo) -> str | None:
    if member.islnk():  # hard link: the target is another member's name
        return normalise(member.linkname) or None
    # A symlink is relative to its own directory; it may climb, but not out of the archive.
    target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
    if target == ".." or target.startswith("../"):
        return None
    return normalise(target) or None


def _archive_error(path: Path, exc: BaseException) -> ConfigError:
    import tarfile

    text = str(exc)
    if isinstance(exc, EOFError) or "unexpected end" in text:
        return ConfigError(f"{path}: the tar archive is truncated; {EXPORT_AGAIN}")
    if isinstance(exc, tarfile.TarError):
        return ConfigError(f"{path}: not a valid tar archive ({text}); {EXPORT_AGAIN}")
    if isinstance(exc, OSError) and exc.strerror:
        return ConfigError(f"{path}: cannot read the archive: {exc.strerror}")
    return ConfigError(f"{path}: cannot read the archive: {text}")
