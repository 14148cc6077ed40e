"""The flags of `bootstrap role` and `bootstrap build-policy`.

Apart from the checks in settings.py, so that building the command line (every command, every
start) does not load them. These are an administrator's flags, not a job's: most have no
XACCT_* variable; `--external-id`, `--region` and `--role-arn` reuse the job's own options.
"""

from __future__ import annotations

from gitlab_xacct.config.options import COMMON_OPTIONS, IDENTITY_OPTIONS, Option
from gitlab_xacct.iac import options as as_code

FORMATS = (as_code.CLOUDFORMATION, as_code.TERRAFORM)

DEFAULT_ROLE_NAME = "gitlab-xacct-push"
DEFAULT_AUDIENCE = "sts.amazonaws.com"  # what docs/identity.md and docs/gitlab-ci.md put in aud

_IDENTITY = {o.dest: o for o in IDENTITY_OPTIONS}

ROLE_OPTIONS: tuple[Option, ...] = (
    Option("role_name", "", "--role-name", "value",
           f"name of the role to create or update (default: {DEFAULT_ROLE_NAME})", "NAME"),
    Option("build_accounts", "", "--build-account", "list",
           "trust this BUILD account (arn:aws:iam::ID:root, any principal there the account "
           "allows; repeatable)", "ID"),
    Option("build_principals", "", "--build-principal", "list",
           "trust this BUILD role or user ARN, e.g. the runner's role (narrower, recommended; "
           "repeatable)", "ARN"),
    Option("tag_session", "", "--tag-session", "bool",
           "also allow sts:TagSession (for XACCT_SESSION_TAGS=true jobs)"),
    Option("oidc_provider", "", "--gitlab-oidc-provider", "value",
           "also trust GitLab ID tokens through this IAM OIDC provider of the role's account",
           "ARN"),
    Option("project_path", "", "--gitlab-project-path", "value",
           "GitLab project (group/project) whose ID tokens the OIDC trust accepts (sub claim)",
           "PATH"),
    Option("audience", "", "--gitlab-audience", "value",
           f"aud of the job's id_tokens for the OIDC trust (default: {DEFAULT_AUDIENCE})", "AUD"),
    Option("repositories", "", "--repository", "list",
           "ECR repository the role may push to; * and ? wildcards allowed (team/*; repeatable)",
           "NAME"),
    Option("allow_create", "", "--allow-create", "bool",
           "also allow ecr:CreateRepository on those repositories (XACCT_CREATE_REPOSITORY)"),
    Option("managed_policies", "", "--managed-policy", "list",
           "attach this managed policy instead of the inline one, e.g. "
           "AmazonEC2ContainerRegistryPowerUser (name of an AWS managed policy, or an ARN; "
           "repeatable)", "NAME_OR_ARN"),
    _IDENTITY["external_id"],
    _IDENTITY["region"],
    Option("dry_run", "", "--dry-run", "bool",
           "print the policy documents as JSON and what would change; change nothing"),
    Option("check", "", "--check", "bool",
           "compare the existing role with these flags, one line per difference; exit 3 when "
           "there is one"),
    *as_code.options(FORMATS),
    *COMMON_OPTIONS,
)  # fmt: skip

BUILD_POLICY_OPTIONS: tuple[Option, ...] = (
    _IDENTITY["role_arn"],
    Option("tag_session", "", "--tag-session", "bool",
           "also allow sts:TagSession (default: XACCT_SESSION_TAGS)"),
    Option("attach_to_role", "", "--attach-to-role", "value",
           "put the policy inline on this role of the current account (the runner's role) "
           "instead of printing it", "NAME"),
    *as_code.options(FORMATS),
    *COMMON_OPTIONS,
)  # fmt: skip
