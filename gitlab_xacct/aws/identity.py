"""From the job's own identity to the target role: base identity, then each hop of the chain."""

from __future__ import annotations

import logging

from gitlab_xacct import settings
from gitlab_xacct.aws.credentials import (
    AssumedRole,
    Session,
    assume_role,
    assume_with_web_identity,
    base_session,
    caller_arn,
)
from gitlab_xacct.errors import IdentityError
from gitlab_xacct.settings import CHAINED_MAX_SECONDS, IdentitySettings

log = logging.getLogger(__name__)


def assume_target(identity: IdentitySettings) -> AssumedRole:
    """Every hop in order; the result holds the target role's credentials only."""
    hops = identity.hops
    caller: Session
    if identity.web_identity:
        check_chained_duration(identity, 1)
        web = assume_with_web_identity(
            identity.web_identity,
            session_name=identity.session_name,
            region=identity.region,
            # Used for one call, the next hop: the shortest lifetime AWS allows is enough.
            duration_seconds=900,
        )
        caller = web.session
    else:
        caller = base_session()
        if identity.duration_seconds > CHAINED_MAX_SECONDS:
            # Instance profiles, task roles and IRSA are role sessions too: assuming from them
            # is chaining. Only worth a GetCallerIdentity when the limit could bite.
            arn = caller_arn(caller, identity.region) or ""
            check_chained_duration(identity, 1 if ":assumed-role/" in arn else 2)

    role: AssumedRole | None = None
    for number, hop in enumerate(hops, start=1):
        role = assume_role(
            caller,
            hop,
            label=hop_label(identity, number),
            session_name=identity.session_name,
            region=identity.region,
            duration_seconds=identity.duration_seconds,
            # Tags go on the first AssumeRole only: they are transitive, so later hops keep
            # them, and AWS refuses a later hop that sets a transitive key again.
            tags=identity.session_tags if number == 1 else (),
            tags_in_play=bool(identity.session_tags),
        )
        caller = role.session
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


def hop_label(identity: IdentitySettings, number: int) -> str:
    hop = identity.hops[number - 1]
    return (
        f"hop {number} of {len(identity.hops)} ({hop.origin})"
        if len(identity.hops) > 1
        else (hop.origin)
    )


def check_chained_duration(identity: IdentitySettings, first_chained: int) -> None:
    """Refuse before any AssumeRole: hop `first_chained` onwards use role credentials."""
    settings.check_chained_duration(
        identity.duration_seconds,
        identity.hops,
        first_chained,
        origin="XACCT_DURATION_SECONDS",
        label=lambda number: hop_label(identity, number),
        setting="XACCT_DURATION_SECONDS",
    )
