"""Base identity (boto3's default chain) and the assume-role hop into the target account."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from gitlab_xacct import __version__
from gitlab_xacct.errors import IdentityError
from gitlab_xacct.secrets import Secret, mask, register
from gitlab_xacct.validate import RoleArn

log = logging.getLogger(__name__)

# AWS errors that retrying cannot fix: fail at once and explain (botocore's standard retry mode
# already retries throttling, 5xx and connection errors a bounded number of times).
_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
_BAD_BASE_CREDENTIALS = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "UnrecognizedClientException"}
)


def client_config() -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=10,
        read_timeout=30,
        user_agent_extra=f"gitlab-xacct/{__version__}",
    )


@dataclass(frozen=True)
class AssumedRole:
    """Credentials of the target role; every AWS call after the hop uses these only."""

    session: boto3.Session
    arn: str  # the assumed-role session ARN, arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION
    account: str


def base_session() -> boto3.Session:
    """The runner's own identity: instance profile, task role, IRSA, AWS_PROFILE, static keys."""
    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        for value in (frozen.secret_key, frozen.token):
            if value:
                register(value)
    return session


def assume_role(
    base: boto3.Session,
    *,
    role: RoleArn,
    external_id: Secret | None,
    session_name: str,
    region: str,
    duration_seconds: int = 3600,
) -> AssumedRole:
    import boto3

    sts = base.client("sts", region_name=region, config=client_config())
    params: dict[str, object] = {
        "RoleArn": str(role),
        "RoleSessionName": session_name,
        "DurationSeconds": duration_seconds,
    }
    if external_id:
        params["ExternalId"] = external_id.reveal()
    log.debug("sts:AssumeRole %s as session %s", role, session_name)
    try:
        response = sts.assume_role(**params)  # type: ignore[arg-type]
    except NoCredentialsError:
        raise IdentityError(
            "no AWS credentials for the base identity: the runner has no instance or task role "
            "that boto3 can find, and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and "
            "AWS_WEB_IDENTITY_TOKEN_FILE are unset"
        ) from None
    except ClientError as exc:
        raise _explain_assume_failure(exc, base, role, external_id, region) from None
    except BotoCoreError as exc:
        raise IdentityError(f"could not reach AWS STS to assume {role}: {mask(str(exc))}") from None

    creds = response["Credentials"]
    for value in (creds["SecretAccessKey"], creds["SessionToken"]):
        register(value)
    arn = response["AssumedRoleUser"]["Arn"]
    log.info("assumed %s (credentials expire %s)", arn, creds["Expiration"].isoformat())
    session = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )
    return AssumedRole(session=session, arn=arn, account=arn.split(":")[4])


def caller_arn(base: boto3.Session, region: str) -> str | None:
    """Who the base credentials are, for error messages; None when even that is refused."""

    try:
        sts = base.client("sts", region_name=region, config=client_config())
        return sts.get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError):
        return None


def principal_for(caller: str) -> str:
    """The ARN a trust policy names for a caller: an assumed-role session maps to its role."""
    match = re.fullmatch(r"arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/.+", caller)
    if match:
        return f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}"
    return caller


def _explain_assume_failure(
    exc: ClientError, base: boto3.Session, role: RoleArn, external_id: Secret | None, region: str
) -> IdentityError:

    error = exc.response.get("Error", {})
    code = error.get("Code", "Unknown")
    aws_message = mask(error.get("Message", ""))
    if code in _BAD_BASE_CREDENTIALS:
        return IdentityError(
            f"STS rejected the base credentials ({code}: {aws_message}); the runner's AWS "
            "credentials are invalid or expired: check the runner's role or the AWS_* variables"
        )
    if code not in _DENIED:
        return IdentityError(f"sts:AssumeRole on {role} failed: {code}: {aws_message}")

    caller = caller_arn(base, region) or "(unknown: sts:GetCallerIdentity failed too)"
    principal = principal_for(caller)
    caller_account = caller.split(":")[4] if caller.startswith("arn:") else "BUILD"
    sent = f"sent ({len(external_id)} characters)" if external_id else "not sent"
    identity_side = "identity-based polic" in aws_message
    lines = [
        f"AccessDenied: {caller} may not assume {role} (External ID {sent}).",
        f"  AWS said: {aws_message}" if aws_message else "",
        f"  In the target account {role.account}: role {role.name} must exist and its trust "
        f"policy must allow sts:AssumeRole for {principal} (or arn:{role.partition}:iam::"
        f"{caller_account}:root) with StringEquals sts:ExternalId = the External ID.",
        f"  In the runner's account {caller_account}: the identity policy of {principal} must "
        f"allow sts:AssumeRole on {role}"
        + (" (AWS says no identity-based policy allows it)." if identity_side else "."),
        "  External ID: XACCT_EXTERNAL_ID must equal the trust policy's sts:ExternalId exactly"
        + ("." if external_id else "; it is unset, and most cross-account roles demand one."),
    ]
    return IdentityError("\n".join(line for line in lines if line))
