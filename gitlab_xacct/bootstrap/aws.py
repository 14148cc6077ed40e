"""The administrator's own AWS session and IAM errors turned into one-line messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from gitlab_xacct.aws.credentials import base_session, client
from gitlab_xacct.aws.iam import PolicyDocument
from gitlab_xacct.errors import ConfigError, IdentityError, XacctError
from gitlab_xacct.secrets import mask

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

DEFAULT_REGION = "us-east-1"  # IAM is global; STS answers in any region of the partition


@dataclass(frozen=True, slots=True)
class Admin:
    """Who runs the command, and an IAM client with those credentials."""

    iam: IAMClient
    arn: str
    account: str
    partition: str


def connect(region: str | None) -> Admin:
    """boto3's default chain (AWS_PROFILE, keys, SSO, instance role); AWS_ENDPOINT_URL honoured."""
    session = base_session()
    region = region or session.region_name or DEFAULT_REGION
    try:
        identity = client(session, "sts", region).get_caller_identity()
    except NoCredentialsError:
        raise IdentityError(
            "no AWS credentials: run this with an administrator's credentials of the account "
            "(AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or aws sso login)"
        ) from None
    except ClientError as exc:
        raise IdentityError(f"sts:GetCallerIdentity failed: {_text(exc)}") from None
    except BotoCoreError as exc:
        raise IdentityError(f"could not reach AWS STS: {mask(str(exc))}") from None
    arn = identity["Arn"]
    iam = client(session, "iam", region)
    return Admin(iam=iam, arn=arn, account=identity["Account"], partition=arn.split(":")[1])


def code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _text(exc: ClientError) -> str:
    message = exc.response.get("Error", {}).get("Message", "")
    return mask(f"{code(exc)}: {message}")


def failure(exc: ClientError | BotoCoreError, action: str, admin: Admin) -> XacctError:
    """An IAM call that failed: whose permission is missing, or which input IAM refused."""
    if isinstance(exc, BotoCoreError):
        return IdentityError(f"could not reach AWS IAM for {action}: {mask(str(exc))}")
    if code(exc) in ("AccessDenied", "AccessDeniedException"):
        return IdentityError(
            f"AccessDenied: {admin.arn} may not call {action} in account {admin.account}; run "
            f"this with administrator credentials of that account ({_text(exc)})"
        )
    if code(exc) in ("MalformedPolicyDocument", "InvalidInput", "ValidationError"):
        return ConfigError(
            f"IAM refused {action}: {_text(exc)}; check that every --build-principal and "
            "--gitlab-oidc-provider exists"
        )
    return IdentityError(f"{action} failed in account {admin.account}: {_text(exc)}")


def iam_document(value: Any, what: str) -> PolicyDocument:
    """botocore decodes IAM's URL-encoded documents to dicts; a string is decoded here. What is
    not a JSON object (a stand-in's Python repr, say) is said as such, naming `what`."""
    try:
        document = json.loads(unquote(value)) if isinstance(value, str) else value
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise IdentityError(
            f"IAM returned {what} that is not a JSON policy document; look at it in the IAM "
            "console, then fix or delete it"
        )
    return dict(document)
