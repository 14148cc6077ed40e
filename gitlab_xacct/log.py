"""Logging to stderr in the host's language: GitLab collapsible sections, secrets masked.

stdout is kept for results (the pushed references), so scripts can capture them.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from gitlab_xacct.registry.image import ImageIndex, SourceImage
from gitlab_xacct.secrets import MaskingFilter

log = logging.getLogger("gitlab_xacct")


def setup(*, debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries stay at WARNING even in debug mode: botocore's debug log prints response bodies,
    # and an AssumeRole response carries credentials before we can register them for masking.
    root.setLevel(logging.WARNING)
    log.setLevel(logging.DEBUG if debug else logging.INFO)


@contextmanager
def section(name: str, title: str, env: Mapping[str, str]) -> Iterator[None]:
    """A collapsible section in a GitLab job log (plain lines elsewhere), with its duration."""
    gitlab = env.get("GITLAB_CI") == "true"
    started = time.monotonic()
    if gitlab:
        sys.stderr.write(f"\x1b[0Ksection_start:{int(time.time())}:{name}\r\x1b[0K{title}\n")
    else:
        log.info("== %s", title)
    ok = False
    try:
        yield
        ok = True
    finally:
        elapsed = time.monotonic() - started
        log.info("%s %s (%.1f s)", "done:" if ok else "FAILED:", title.lower(), elapsed)
        if gitlab:
            sys.stderr.write(f"\x1b[0Ksection_end:{int(time.time())}:{name}\r\x1b[0K\n")


def preamble(command: str, summary: Iterable[tuple[str, str]], image: SourceImage) -> None:
    """What the run understood (redacted settings) and what the source holds, before any work."""
    log.info("gitlab-xacct %s", command)
    for key, value in summary:
        log.info("  %-18s %s", key + ":", value)
    kind = f"index of {len(image.children)} images" if isinstance(image, ImageIndex) else "image"
    log.info("source: %s %s", kind, image.digest)
