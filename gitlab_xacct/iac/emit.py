"""Writing what `--format` made: to stdout, or to `--output` atomically (a reader sees the old
file or the new one, never half), 0600 when it holds the External ID's value."""

from __future__ import annotations

import logging
import sys

from gitlab_xacct.bootstrap.settings import BuildPolicySettings, RoleSettings
from gitlab_xacct.iac import cloudformation, terraform
from gitlab_xacct.iac.options import CLOUDFORMATION, AsCode
from gitlab_xacct.report import write_atomically

log = logging.getLogger(__name__)


def role(settings: RoleSettings, as_code: AsCode) -> int:
    for warning in settings.external_id_warnings:
        log.warning("warning: %s", warning)
    if settings.external_id is not None and as_code.embedded is None:
        log.info(
            "the External ID given is not written: it is the %s, given when the stack is deployed "
            "(--embed-external-id writes it into --output)",
            "template's ExternalId parameter"
            if as_code.format == CLOUDFORMATION
            else "configuration's sensitive variable external_id",
        )
    if as_code.format == CLOUDFORMATION:
        text = cloudformation.dump(
            cloudformation.role_template(settings, as_code.embedded),
            "bootstrap role",
            "CAPABILITY_NAMED_IAM",
        )
    else:
        text = terraform.dump(terraform.role_config(settings, as_code.embedded))
    return write(text, as_code, f"the role {settings.role_name}")


def build_policy(settings: BuildPolicySettings, as_code: AsCode) -> int:
    if as_code.format == CLOUDFORMATION:
        template = cloudformation.build_policy_template(settings)
        text = cloudformation.dump(template, "bootstrap build-policy", "CAPABILITY_IAM")
    else:
        text = terraform.dump(terraform.build_policy_config(settings))
    return write(text, as_code, "the runner's policy")


def gitlab_variables(
    *,
    kind: str,
    ident: str,
    scope: str,
    values: tuple[tuple[str, str, bool], ...],
    as_code: AsCode,
) -> int:
    config = terraform.gitlab_variables_config(
        kind=kind, ident=ident, scope=scope, values=values, embedded=as_code.embedded
    )
    return write(terraform.dump(config), as_code, f"the {kind}'s CI/CD variables")


def write(text: str, as_code: AsCode, what: str) -> int:
    if as_code.output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    write_atomically(as_code.output, text, mode=as_code.mode, what="the --output file")
    if as_code.embedded is not None:
        log.warning(
            "wrote %s as %s to %s with the External ID's value in it (mode 0600): keep it out "
            "of version control",
            what,
            as_code.format,
            as_code.output,
        )
    else:
        log.info("wrote %s as %s to %s", what, as_code.format, as_code.output)
    return 0
