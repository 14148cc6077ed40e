"""Placeholders in the documents that a template fills in where it is deployed.

The documents are built by the same code as the CLI's (`bootstrap/documents.py`), with these
strings where the CLI would put the account it runs in, its partition and the External ID.
Each writer then replaces every string that holds one with its tool's reference: CloudFormation's
`Fn::Sub` of `${AWS::AccountId}` and `Ref` of the parameter, Terraform's interpolations. The
braces cannot appear in anything the settings accept (names, ARNs and patterns are checked), so
a placeholder is never confused with a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gitlab_xacct.bootstrap import documents
from gitlab_xacct.bootstrap.settings import RoleSettings

PARTITION = "{{xacct:partition}}"
ACCOUNT = "{{xacct:account}}"
EXTERNAL_ID = "{{xacct:external_id}}"

_ANY = re.compile(r"\{\{xacct:(\w+)\}\}")


def split(text: str) -> list[tuple[str, bool]]:
    """`text` as pieces: (literal, False) and (placeholder name, True), in order."""
    # re.split keeps the group: literal, name, literal, name...; empty literals are dropped.
    return [(piece, i % 2 == 1) for i, piece in enumerate(_ANY.split(text)) if piece]


def replace_strings(value: Any, string: Callable[[str], Any]) -> Any:
    """`value` (a JSON-like document) with every string that holds a placeholder replaced by
    `string(it)`; other strings, keys and numbers as they are."""
    if isinstance(value, dict):
        return {key: replace_strings(item, string) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_strings(item, string) for item in value]
    if isinstance(value, str) and _ANY.search(value):
        return string(value)
    return value


def fill(value: Any, values: dict[str, str]) -> Any:
    """Every placeholder replaced by its value: what the document becomes where it is deployed
    (tests compare that with the CLI's documents)."""
    return replace_strings(value, lambda text: _ANY.sub(lambda m: values[m[1]], text))


def role_documents(settings: RoleSettings) -> documents.RoleDocuments:
    """The role's documents with placeholders where the deployment fills in its own values.
    A GitLab OIDC trust names the provider of the account the role is made in (a role can only
    trust its own account's provider), so the given ARN's account becomes a placeholder too."""
    oidc_arn = None
    if settings.oidc is not None:
        host = settings.oidc.provider_arn.split(":oidc-provider/", 1)[1]
        oidc_arn = f"arn:{PARTITION}:iam::{ACCOUNT}:oidc-provider/{host}"
    return documents.role_documents(
        settings,
        partition=PARTITION,
        account=ACCOUNT,
        external_id=EXTERNAL_ID,
        oidc_provider_arn=oidc_arn,
    )
