"""Reports for later jobs, written atomically: a killed job never leaves half a file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.files import replace_atomically
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
    """All or nothing (see files.replace_atomically); a failure is one line, exit 2."""
    try:
        replace_atomically(path, text, mode=mode)
    except OSError as exc:
        raise ConfigError(f"cannot write the report {path}: {exc.strerror}") from None
