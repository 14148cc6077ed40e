"""Turn AWS's bare AccessDenied into what to check, and in which account.

AWS does not say whether the trust policy (target account) or the identity policy (caller's
account) refused, so the message lists both, with the exact ARNs to put in each.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from gitlab_xacct.errors import IdentityError
from gitlab_xacct.secrets import mask

if TYPE_CHECKING:
    from gitlab_xacct.config.identity import Hop, WebIdentity

_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
_BAD_BASE_CREDENTIALS = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "UnrecognizedClientException"}
)


def principal_for(caller: str) -> str:
    """The ARN a trust policy names for a caller: an assumed-role session maps to its role."""
    match = re.fullmatch(r"arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/.+", caller)
    if match:
        return f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}"
    return caller


def _error(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "Unknown")), mask(str(error.get("Message", "")))


def attempts(exc: ClientError) -> str:
    """' after N attempts' when botocore retried (throttling, 5xx), else ''."""
    retried = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
    return f" after {retried + 1} attempts" if retried else ""


def assume_role_failure(
    exc: ClientError, hop: Hop, *, label: str, caller: str | None, tagged: bool
) -> IdentityError:
    code, aws_message = _error(exc)
    role = hop.role
    if code in _BAD_BASE_CREDENTIALS:
        return IdentityError(
            f"{label}: STS rejected the caller's credentials ({code}: {aws_message}); the "
            "runner's AWS credentials are invalid or expired: check the runner's role or the "
            "AWS_* variables"
        )
    if code not in _DENIED:
        return IdentityError(
            f"{label}: sts:AssumeRole on {role} failed{attempts(exc)}: {code}: {aws_message}"
        )

    who = caller or "(unknown: sts:GetCallerIdentity failed too)"
    principal = principal_for(who)
    caller_account = who.split(":")[4] if who.startswith("arn:") else "the caller's account"
    sent = f"sent ({len(hop.external_id)} characters)" if hop.external_id else "not sent"
    identity_side = "identity-based polic" in aws_message
    tag_session = tagged and "TagSession" in aws_message
    actions = "sts:AssumeRole and sts:TagSession" if tagged else "sts:AssumeRole"
    lines = [
        f"AccessDenied at {label}: {who} may not assume {role} (External ID {sent}).",
        f"  AWS said: {aws_message}" if aws_message else "",
        (
            "  Session tags (XACCT_SESSION_TAGS) need sts:TagSession allowed both in the role's "
            "trust policy and in the caller's identity policy; allow it there or turn the tags "
            "off."
            if tag_session
            else ""
        ),
        f"  In the target account {role.account}: role {role.name} must exist and its trust "
        f"policy must allow {actions} for {principal} (or arn:{role.partition}:iam::"
        f"{caller_account}:root) with StringEquals sts:ExternalId = the External ID.",
        f"  In the caller's account {caller_account}: the identity policy of {principal} must "
        f"allow {actions} on {role}"
        + (" (AWS says no identity-based policy allows it)." if identity_side else "."),
        f"  External ID: {hop.external_id_origin} must equal the trust policy's sts:ExternalId "
        "exactly"
        + ("." if hop.external_id else "; it is unset, and most cross-account roles demand one."),
    ]
    return IdentityError("\n".join(line for line in lines if line))


def web_identity_failure(exc: ClientError, web: WebIdentity) -> IdentityError:
    code, aws_message = _error(exc)
    claims = token_claims(web.token.reveal())
    issuer = str(claims.get("iss", "?")).removeprefix("https://")
    seen = ", ".join(f"{k}={claims[k]}" for k in ("iss", "sub", "aud") if k in claims)
    provider = f"arn:{web.role.partition}:iam::{web.role.account}:oidc-provider/{issuer}"
    if attempts(exc):  # throttling or 5xx, retried by botocore: not the trust policy's fault
        return IdentityError(
            f"GitLab OIDC: sts:AssumeRoleWithWebIdentity into {web.role} failed{attempts(exc)}: "
            f"{code}: {aws_message}; AWS STS is throttling or failing: rerun the job later"
        )
    if code in ("ExpiredTokenException", "ExpiredToken"):
        hint = "the ID token expired; GitLab issues it when the job starts, so rerun the job"
    elif code == "InvalidIdentityToken":
        hint = (
            f"AWS could not validate the token; check that the OIDC provider {provider} exists "
            "in that account and that AWS can reach the GitLab server's /.well-known/openid-"
            "configuration"
        )
    else:
        hint = (
            f'role {web.role.name} must trust Principal {{"Federated": "{provider}"}} for '
            f"sts:AssumeRoleWithWebIdentity, with conditions on {issuer}:sub and {issuer}:aud "
            "that match the token's claims, and the OIDC provider must list the token's aud"
        )
    return IdentityError(
        f"GitLab OIDC: sts:AssumeRoleWithWebIdentity into {web.role} failed ({code}: "
        f"{aws_message}).\n  Token claims: {seen or 'unreadable'} (from {web.token_variable}).\n"
        f"  {hint[0].upper()}{hint[1:]}."
    )


def token_claims(token: str) -> dict[str, object]:
    """The JWT payload, unverified: only to name iss/sub/aud in messages (none is a secret)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return {}
    return (
        {k: v for k, v in claims.items() if isinstance(v, str | int)}
        if isinstance(claims, dict)
        else {}
    )
