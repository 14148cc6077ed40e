"""`gitlab-xacct doctor`: a checklist from the job's variables to a registry upload.

The checks, and boto3, load only when the command runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from gitlab_xacct.commands import Command
from gitlab_xacct.config.options import (
    COMMON_OPTIONS,
    IDENTITY_OPTIONS,
    PUSH_OPTIONS,
    REGISTRY_OPTIONS,
    Option,
)

JSON_OPTION = Option(
    "json", "", "--json", "bool", "print the report as JSON (name, status, side, detail, fix)"
)
OPTIONS: tuple[Option, ...] = (
    *IDENTITY_OPTIONS,
    *REGISTRY_OPTIONS,
    *(o for o in PUSH_OPTIONS if o.dest in ("repository", "create_repository", "destinations")),
    *COMMON_OPTIONS,
    JSON_OPTION,
)


def run(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    """Prints the report on stdout; the exit code is the first failing check's (0: all ok).
    With XACCT_DESTINATIONS, one checklist per destination, in the order push uses them."""
    from gitlab_xacct.config.resolver import Resolver
    from gitlab_xacct.doctor import report
    from gitlab_xacct.doctor.run import diagnose, per_destination

    as_json = bool(flags.get("json"))
    runs = per_destination(env, flags, OPTIONS)
    if runs is None:
        checks = diagnose(Resolver(env, flags, OPTIONS))
        print(report.as_json(checks) if as_json else report.as_text(checks), end="")
        return report.exit_code(checks)
    shown = report.destinations_as_json(runs) if as_json else report.destinations_as_text(runs)
    print(shown, end="")
    return report.destinations_exit_code(runs)


COMMAND = Command(
    name="doctor",
    summary="check every link from these variables to an ECR upload; say which side to fix",
    description="Run in a job or on a laptop with push's variables: checks the settings, the "
    "External ID, the base identity, each AssumeRole hop, the ECR token, the repository, the "
    "registry and a blob upload (started and cancelled), and names for each failure the side "
    "to fix (BUILD, OURTHING, GitLab variables) and the fix. Exit 0 only when every check "
    "passes, else the exit code of the first failure.",
    options=OPTIONS,
    run=run,
)
