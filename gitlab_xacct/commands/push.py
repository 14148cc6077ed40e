"""`gitlab-xacct push`: the job's one step, from the variables to the tagged image."""

from __future__ import annotations

from collections.abc import Mapping

from gitlab_xacct.commands import Command
from gitlab_xacct.config.problems import push_settings
from gitlab_xacct.config.push import PushSettings


def run(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    """Prints HOST/REPO:TAG@DIGEST per tag pushed, on stdout."""
    settings = push_settings(env, flags)  # every problem at once, before the engine loads
    from gitlab_xacct.jobs.push import push  # boto3 and requests: only when a push runs

    for result in push(settings, env):
        for tag in result.tags:
            print(result.tagged(tag))
    return 0


COMMAND = Command(
    name="push",
    summary="assume the target role, log into ECR and push an image, no Docker daemon needed",
    description="Assume the role in the target account (with the External ID), log into its "
    "ECR and push the image.",
    options=PushSettings.OPTIONS,
    run=run,
)
