"""`gitlab-xacct login`: the target role's ECR logins, merged into a Docker config.json."""

from __future__ import annotations

from collections.abc import Mapping

from gitlab_xacct.commands import Command
from gitlab_xacct.config.login import LoginSettings


def run(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    """Prints a line per registry logged into, on stdout."""
    settings = LoginSettings.from_env(env, flags)
    from gitlab_xacct.jobs.login import login  # boto3: only when the command runs

    for done in login(settings, env):
        print(done.line())
    return 0


COMMAND = Command(
    name="login",
    summary="assume the target role and write its ECR logins into a Docker config.json",
    description="Assume the role in the target account, get ECR authorization tokens and merge "
    "them into a Docker config.json (0600) for docker, buildah, podman, kaniko or skopeo.",
    options=LoginSettings.OPTIONS,
    run=run,
)
