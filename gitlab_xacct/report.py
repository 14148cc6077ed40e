"""Reports for later jobs, written atomically: a killed job never leaves half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.push import PushResult


def dotenv_lines(results: Sequence[PushResult]) -> str:
    """The variables GitLab's artifacts:reports:dotenv hands to later jobs; no secret among them.

    XACCT_IMAGE_URI is the first destination's; XACCT_IMAGE_URIS lists every destination's.
    """
    first = results[0]
    return (
        f"XACCT_IMAGE_URI={first.uri}\n"
        f"XACCT_IMAGE_DIGEST={first.digest}\n"
        f"XACCT_IMAGE_TAGS={','.join(first.tags)}\n"
        f"XACCT_IMAGE_URIS={' '.join(r.uri for r in results)}\n"
    )


def write_atomically(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Temp file in the same folder, fsync, then os.replace: readers see all or nothing."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write the report {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write the report {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
