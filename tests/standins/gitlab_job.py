"""The environment a GitLab job in BUILD sees: predefined CI_* variables plus project XACCT_*."""

from __future__ import annotations

import os
from pathlib import Path

from tests.standins.aws_world import World


def job_env(world: World, registry_url: str, home: Path, **xacct: str) -> dict[str, str]:
    """The runner's own AWS keys, GitLab's ids, and the variables a project would set.

    The registry endpoint points at the stand-in registry, as a VPC endpoint override would.
    """
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        **world.runner_env(),
        "CI": "true",
        "CI_PROJECT_ID": "4242",
        "CI_PROJECT_PATH": "team/app",
        "CI_PIPELINE_ID": "1001",
        "CI_JOB_ID": "90001",
        "CI_COMMIT_SHORT_SHA": "a1b2c3d4",
        "XACCT_ROLE_ARN": world.role_arn,
        "XACCT_EXTERNAL_ID": world.external_id,
        "XACCT_REGISTRY_ENDPOINT": registry_url,
        **xacct,
    }
