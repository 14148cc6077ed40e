"""The documents of the OURTHING role, from its settings: one function, two kinds of writer.

`bootstrap role` fills them with the account it runs in and applies them with IAM; `--format
cloudformation|terraform` fills them with placeholders (`iac/symbols.py`) that each tool's
writer turns into its own references to the account, the partition and the External ID. Both
writers call this function, so the role a stack makes and the role the CLI makes cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitlab_xacct.aws import iam as policies
from gitlab_xacct.bootstrap.settings import RoleSettings


@dataclass(frozen=True, slots=True)
class RoleDocuments:
    trust: policies.PolicyDocument
    permissions: policies.PolicyDocument | None  # the inline policy; None with managed ones
    managed: tuple[str, ...]  # managed policy ARNs


def role_documents(
    settings: RoleSettings,
    *,
    partition: str,
    account: str,
    external_id: str,
    oidc_provider_arn: str | None = None,
) -> RoleDocuments:
    """`oidc_provider_arn` is the provider the trust names (the given one, checked to be in
    `account`, or a placeholder's); None without --gitlab-oidc-provider."""
    oidc = None
    if settings.oidc is not None:
        oidc = policies.OidcTrust(
            provider_arn=oidc_provider_arn or settings.oidc.provider_arn,
            audience=settings.oidc.audience,
            project_path=settings.oidc.project_path,
        )
    trust = policies.trust_policy(
        principal_arns=settings.principal_arns(partition),
        external_id=external_id,
        tag_session=settings.tag_session,
        oidc=oidc,
    )
    permissions = None
    if settings.repositories:
        arns = [
            policies.repository_arn(partition, settings.region or "", account, name)
            for name in settings.repositories
        ]
        permissions = policies.push_policy(repository_arns=arns, allow_create=settings.allow_create)
    managed = tuple(
        sorted(
            {
                name if name.startswith("arn:") else f"arn:{partition}:iam::aws:policy/{name}"
                for name in settings.managed_policies
            }
        )
    )
    return RoleDocuments(trust=trust, permissions=permissions, managed=managed)
