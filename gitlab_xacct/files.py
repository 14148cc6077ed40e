"""Writing a file so that readers see the old content or the new, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_atomically(path: Path, text: str, *, mode: int) -> None:
    """Temp file in the same folder (created 0600), fsync, chmod, then os.replace.

    Raises OSError; the temp file is gone whatever happens, and `path` is untouched on failure.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
