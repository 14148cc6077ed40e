"""`bootstrap role` and `bootstrap build-policy` at work: connect, plan, apply or print.

stdout holds results (outcome lines, differences, JSON documents, and a newly generated
External ID, the one secret this tool ever prints because the administrator needs it once);
the log on stderr says what was read and done, and masks every secret.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

from gitlab_xacct.aws import iam as policies
from gitlab_xacct.bootstrap import build_policy, role
from gitlab_xacct.bootstrap.aws import connect
from gitlab_xacct.bootstrap.settings import BuildPolicySettings, RoleSettings
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.secrets import register

log = logging.getLogger(__name__)

EXIT_DIFFERENT = 3  # --check: the role differs from the flags, or is missing (see README)


def run_role(settings: RoleSettings, env: Mapping[str, str]) -> int:
    for warning in settings.external_id_warnings:
        log.warning("warning: %s", warning)
    admin = connect(settings.region)
    log.info("gitlab-xacct bootstrap role %s in account %s as %s", settings.role_name,
             admin.account, admin.arn)  # fmt: skip
    if settings.build_accounts and not settings.build_principals:
        log.warning(
            "--build-account trusts every principal of %s that its own policies allow to "
            "assume this role; --build-principal with the runner's role ARN is narrower "
            "(recommended)",
            ", ".join(settings.build_accounts),
        )
    trusted_accounts = {arn.split(":")[4] for arn in settings.principal_arns(admin.partition)}
    if admin.account in trusted_accounts:
        log.warning(
            "you are in account %s, which the trust names as BUILD: the role is created here; "
            "run bootstrap role with OURTHING's credentials unless both sides are one account",
            admin.account,
        )
    state = role.read(admin, settings.role_name)
    plan = role.plan(settings, admin, state)
    differences = role.differences(plan, state)
    for note in role.notes(plan, state):
        log.warning("note: %s", note)

    if settings.check:
        return _check(plan, differences)
    if settings.dry_run:
        _out(json.dumps(_dry_run(plan, state, differences), indent=2))
        log.info("dry run: nothing was changed")
        return 0

    if plan.id_source == "generated" and env.get("GITLAB_CI") == "true":
        # A job log is read by every project member: no secret is printed there, even once.
        raise ConfigError(
            "--external-id: not set, and bootstrap role runs in a GitLab job whose log project "
            "members can read, so it will not print a generated External ID there; set "
            "XACCT_EXTERNAL_ID (a masked variable) or run it outside CI"
        )
    if plan.id_source == "kept":
        log.info(
            "kept the role's current External ID (not shown); give --external-id or "
            "XACCT_EXTERNAL_ID to replace it"
        )
    elif plan.id_source == "given" and any("External ID" in line for line in differences):
        log.warning(
            "the External ID changes: jobs using the old one fail until XACCT_EXTERNAL_ID "
            "is updated in GitLab"
        )
    done = role.apply(admin, plan, state)
    for line in done:
        log.info("%s", line)
    outcome = "created" if state is None else "updated" if done else "unchanged"
    _out(f"role {plan.role_arn}: {outcome}")
    if plan.id_source == "generated":
        # Printed once, on stdout only; registered so that no log line can ever repeat it.
        value = plan.external_id.reveal()
        register(value)
        _out(f"External ID (shown once; keep it in a masked variable): {value}")
    if outcome != "unchanged":
        _next_steps(settings, plan)
    return 0


def _check(plan: role.Plan, differences: list[str]) -> int:
    for line in differences:
        _out(line)
    if differences:
        log.error(
            "%d difference(s) between %s and the flags; run the same command without --check "
            "to fix them",
            len(differences),
            plan.role_arn,
        )
        return EXIT_DIFFERENT
    _out(f"role {plan.role_arn}: matches")
    return 0


def _dry_run(plan: role.Plan, state: role.RoleState | None, changes: list[str]) -> dict[str, Any]:
    external = {
        "given": "given (not shown)",
        "kept": "kept from the role (not shown)",
        "generated": "a new one, generated and shown when this runs for real",
    }[plan.id_source]
    return {
        "role_arn": plan.role_arn,
        "action": "create" if state is None else "update" if changes else "none",
        "changes": changes,
        "external_id": external,
        "trust_policy": plan.printable_trust,
        "inline_policy_name": role.INLINE_POLICY if plan.permissions else None,
        "inline_policy": plan.permissions,
        "managed_policies": list(plan.managed),
    }


def _next_steps(settings: RoleSettings, plan: role.Plan) -> None:
    runner_roles = [p.rsplit("/", 1)[-1] for p in settings.build_principals if ":role/" in p]
    attach = runner_roles[0] if len(runner_roles) == 1 else "RUNNER_ROLE_NAME"
    tag = " --tag-session" if settings.tag_session else ""
    region = f" --region {settings.region}" if settings.region else ""
    repository = (
        f" --repository {settings.repositories[0]}"
        if len(settings.repositories) == 1 and not any(c in settings.repositories[0] for c in "*?")
        else ""
    )
    _out("next steps:")
    _out(
        "  1. in BUILD, as its administrator (the runner's role may then assume this one):\n"
        f"     gitlab-xacct bootstrap build-policy --role-arn {plan.role_arn} "
        f"--attach-to-role {attach}{tag}"
    )
    _out(
        "  2. in GitLab, with the External ID in XACCT_EXTERNAL_ID of this shell (not on the "
        "command line):\n"
        f"     gitlab-xacct gitlab configure --project GROUP/PROJECT --role-arn {plan.role_arn}"
        f"{region}{repository}"
    )
    if settings.tag_session:
        _out("     and set XACCT_SESSION_TAGS=true in the job")


def run_build_policy(settings: BuildPolicySettings) -> int:
    if settings.attach_to_role is None:
        # Printing needs no AWS call at all: a BUILD admin can paste it anywhere.
        _out(policies.to_json(build_policy.document(settings)))
        return 0
    admin = connect(settings.region)
    log.info("gitlab-xacct bootstrap build-policy in account %s as %s", admin.account, admin.arn)
    attached = build_policy.attach(admin, settings, settings.attach_to_role)
    _out(attached.line())
    return 0


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
