"""`gitlab-xacct copy SRC DEST`: any source into a registry, with the registries' own logins.

Its settings hold the registries' credentials, looked up (Docker config, credential helpers,
CI_REGISTRY) as they are resolved, which takes the registry code: they live beside the copy in
`jobs/copy.py`, loaded when the command runs. No AWS: nothing `copy` loads imports boto3.
"""

from __future__ import annotations

from collections.abc import Mapping

from gitlab_xacct.commands import Command
from gitlab_xacct.config.forms import SOURCE_FORMS, one_of
from gitlab_xacct.config.options import COPY_COMMAND_OPTIONS


def run(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    """Prints HOST/REPO:TAG@DIGEST per tag, on stdout."""
    from gitlab_xacct.jobs.copy import CopySettings, copy  # requests: only when a copy runs

    result = copy(CopySettings.from_env(env, flags), env)
    for tag in result.tags:
        print(result.tagged(tag))
    return 0


COMMAND = Command(
    name="copy",
    summary="copy an image into a registry (from a file, a layout or another registry), no AWS",
    description="Copy SRC (oci:, oci-archive:, docker-archive: or docker://) to DEST "
    "(docker://HOST/REPO:TAG) with the registries' own credentials; no AWS involved.",
    options=COPY_COMMAND_OPTIONS,
    run=run,
    positionals=(
        ("src", "SRC", f"the image: {one_of(SOURCE_FORMS)}"),
        ("dest", "DEST", "where to: docker://HOST/REPO[:TAG] (a tag here or in --tag)"),
    ),
)
