"""Reports for later jobs, written atomically: a killed job never leaves half a file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

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


# The AWS console's host per partition (the partitions a role ARN here can name).
_CONSOLE = {
    "aws": "{region}.console.aws.amazon.com",
    "aws-cn": "{region}.console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


def ecr_console_url(partition: str, account: str, region: str, repository: str, digest: str) -> str:
    """The ECR console's page of one image (by digest) in a private repository."""
    host = _CONSOLE[partition].format(region=region)
    return (
        f"https://{host}/ecr/repositories/private/{account}/{quote(repository, safe='/')}"
        f"/_/image/{digest}/details?region={region}"
    )


def annotations_report(links: Sequence[tuple[str, str]]) -> str:
    """GitLab's artifacts:reports:annotations document (GitLab 16.3+): (label, URL) pairs shown
    as external links on the job page."""
    entries = [{"external_link": {"label": label, "url": url}} for label, url in links]
    return json.dumps({"gitlab-xacct": entries}, indent=2) + "\n"


def write_atomically(path: Path, text: str, *, mode: int = 0o644, what: str = "the report") -> None:
    """All or nothing (see files.replace_atomically); a failure is one line naming `what`,
    exit 2."""
    try:
        replace_atomically(path, text, mode=mode)
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {path}: {exc.strerror}") from None
