"""Reports for later jobs, written atomically: a killed job never leaves half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.push import PushResult


def dotenv_lines(result: PushResult) -> str:
    """The variables GitLab's artifacts:reports:dotenv hands to later jobs; no secret among them."""
    return (
        f"XACCT_IMAGE_URI={result.uri}\n"
        f"XACCT_IMAGE_DIGEST={result.digest}\n"
        f"XACCT_IMAGE_TAGS={','.join(result.tags)}\n"
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
