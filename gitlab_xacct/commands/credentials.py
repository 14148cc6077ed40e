"""`gitlab-xacct credentials`: the target role's credentials, shaped for another tool."""

from __future__ import annotations

from collections.abc import Mapping

from gitlab_xacct.commands import Command
from gitlab_xacct.config.credentials import CredentialsSettings


def run(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    settings = CredentialsSettings.from_env(env, flags)
    from gitlab_xacct.jobs.credentials import deliver  # boto3: only when the command runs

    deliver(settings)
    return 0


COMMAND = Command(
    name="credentials",
    summary="print or write the target role's credentials for the AWS CLI, Terraform or SDKs",
    description="Assume the role in the target account and hand its temporary credentials to "
    "other tools: shell exports, a dotenv file, JSON, the AWS CLI's credential_process, or a "
    "named profile.",
    options=CredentialsSettings.OPTIONS,
    run=run,
)
