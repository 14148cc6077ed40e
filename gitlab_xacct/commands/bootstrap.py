"""`gitlab-xacct bootstrap role` and `bootstrap build-policy`: an administrator's commands.

stdout holds results (outcome lines, differences, JSON documents, and a newly generated
External ID, the one secret this tool ever prints because the administrator needs it once);
the log on stderr says what was read and done, and masks every secret.
"""

from __future__ import annotations

from collections.abc import Mapping

from gitlab_xacct.bootstrap.options import BUILD_POLICY_OPTIONS, ROLE_OPTIONS
from gitlab_xacct.bootstrap.settings import BuildPolicySettings, RoleSettings
from gitlab_xacct.commands import Command


def run_role(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    settings = RoleSettings.from_env(env, flags)
    if settings.as_code is not None:
        from gitlab_xacct.iac import emit

        return emit.role(settings, settings.as_code)
    from gitlab_xacct.bootstrap import run  # boto3: only when the command runs

    return run.run_role(settings, env)


def run_build_policy(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    settings = BuildPolicySettings.from_env(env, flags)
    if settings.as_code is not None:
        from gitlab_xacct.iac import emit

        return emit.build_policy(settings, settings.as_code)
    from gitlab_xacct.bootstrap import run  # boto3: only when the command runs

    return run.run_build_policy(settings)


ROLE = Command(
    name="bootstrap role",
    summary="create or update the OURTHING role: trust, External ID, ECR push permissions",
    description="Run with an OURTHING administrator's credentials: create or update, "
    "idempotently, the role BUILD's jobs assume (trust with an External ID, least-privilege "
    "ECR push policy); --check compares, --dry-run prints the documents, --format writes them "
    "as a CloudFormation template or a Terraform configuration instead.",
    options=ROLE_OPTIONS,
    run=run_role,
)
BUILD_POLICY = Command(
    name="bootstrap build-policy",
    summary="print (or put on the runner's role) the BUILD identity policy to assume the role",
    description="The identity policy the runner's role in BUILD needs to assume the OURTHING "
    "role; printed, put inline on a role with --attach-to-role (BUILD administrator's "
    "credentials), or written as a CloudFormation template or a Terraform configuration "
    "(--format).",
    options=BUILD_POLICY_OPTIONS,
    run=run_build_policy,
)
