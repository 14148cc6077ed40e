"""From the job's own identity to the target role: base identity, then each hop of the chain."""

from __future__ import annotations

import logging

import boto3

from gitlab_xacct.aws.credentials import (
    AssumedRole,
    assume_role,
    assume_with_web_identity,
    base_session,
    caller_arn,
)
from gitlab_xacct.errors import ConfigError, IdentityError
from gitlab_xacct.settings import IdentitySettings

log = logging.getLogger(__name__)

CHAINED_MAX_SECONDS = 3600  # AWS caps role sessions assumed with role credentials at one hour


def assume_target(identity: IdentitySettings) -> AssumedRole:
    """Every hop in order; the result holds the target role's credentials only."""
    hops = identity.hops
    caller: boto3.Session
    chained: bool
    if identity.web_identity:
        web = assume_with_web_identity(
            identity.web_identity,
            session_name=identity.session_name,
            region=identity.region,
            # Used for one call, the next hop: the shortest lifetime AWS allows is enough.
            duration_seconds=900,
        )
        caller, chained = web.session, True
    else:
        caller = base_session()
        chained = False
        if identity.duration_seconds > CHAINED_MAX_SECONDS:
            # Instance profiles, task roles and IRSA are role sessions too: assuming from them
            # is chaining. Only worth a GetCallerIdentity when the limit could bite.
            arn = caller_arn(caller, identity.region) or ""
            chained = ":assumed-role/" in arn

    role: AssumedRole | None = None
    for number, hop in enumerate(hops, start=1):
        label = f"hop {number} of {len(hops)} ({hop.origin})" if len(hops) > 1 else hop.origin
        if chained and identity.duration_seconds > CHAINED_MAX_SECONDS:
            raise ConfigError(
                f"XACCT_DURATION_SECONDS: {identity.duration_seconds} s is more than AWS allows "
                f"at {label}: it is assumed with role credentials (role chaining), which AWS "
                f"caps at {CHAINED_MAX_SECONDS} s; set XACCT_DURATION_SECONDS to 3600 or less"
            )
        role = assume_role(
            caller,
            hop,
            label=label,
            session_name=identity.session_name,
            region=identity.region,
            duration_seconds=identity.duration_seconds,
            # Tags go on the first AssumeRole only: they are transitive, so later hops keep
            # them, and AWS refuses a later hop that sets a transitive key again.
            tags=identity.session_tags if number == 1 else (),
        )
        caller, chained = role.session, True
    if role is None:  # settings always hold the target hop
        raise AssertionError("no role to assume")

    allowed = identity.allowed_account_ids
    if allowed is not None and role.account not in allowed:
        raise IdentityError(
            f"the assumed credentials belong to account {role.account} ({role.arn}), which "
            f"XACCT_ALLOWED_ACCOUNT_IDS does not list ({', '.join(sorted(allowed))}); check "
            "XACCT_ROLE_ARN or the list"
        )
    return role
