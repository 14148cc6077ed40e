"""From the job's own identity to the target role: base identity, then each hop of the chain."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from boto3.session import Session

from gitlab_xacct.aws.credentials import (
    AssumedRole,
    assume_role,
    assume_with_web_identity,
    base_session,
    caller_arn,
)
from gitlab_xacct.config import identity as config_identity
from gitlab_xacct.config.identity import (
    CHAINED_MAX_SECONDS,
    IdentitySettings,
)
from gitlab_xacct.errors import IdentityError

log = logging.getLogger(__name__)


def assume_target(identity: IdentitySettings) -> AssumedRole:
    """Every hop in order; the result holds the target role's credentials only."""
    caller: Session
    if identity.web_identity:
        check_chained_duration(identity, 1)
        caller = web_identity_role(identity).session
    else:
        caller = base_session()
        if identity.duration_seconds > CHAINED_MAX_SECONDS:
            # Instance profiles, task roles and IRSA are role sessions too: assuming from them
            # is chaining. Only worth a GetCallerIdentity when the limit could bite.
            arn = caller_arn(caller, identity.region) or ""
            check_chained_duration(identity, 1 if ":assumed-role/" in arn else 2)

    *_, role = assume_hops(identity, caller)  # the last is the target: settings always hold it

    allowed = identity.allowed_account_ids
    if allowed is not None and role.account not in allowed:
        raise IdentityError(
            f"the assumed credentials belong to account {role.account} ({role.arn}), which "
            f"XACCT_ALLOWED_ACCOUNT_IDS does not list ({', '.join(sorted(allowed))}); check "
            "XACCT_ROLE_ARN or the list"
        )
    return role


def web_identity_role(identity: IdentitySettings) -> AssumedRole:
    """GitLab OIDC's role session, the caller of the first hop (XACCT_WEB_IDENTITY_ROLE_ARN)."""
    if identity.web_identity is None:
        raise AssertionError("no web identity configured")
    return assume_with_web_identity(
        identity.web_identity,
        session_name=identity.session_name,
        region=identity.region,
        # Used for one call, the next hop: the shortest lifetime AWS allows is enough.
        duration_seconds=900,
    )


def assume_hops(identity: IdentitySettings, caller: Session) -> Iterator[AssumedRole]:
    """The hop loop, push's and the doctor's: each hop assumed with the previous one's
    credentials, starting from `caller`'s, each role yielded as it is reached. A refusal is
    an AssumeRoleError raised at the hop after the last one yielded."""
    for number in range(1, len(identity.hops) + 1):
        role = assume_hop(identity, number, caller)
        yield role
        caller = role.session


def assume_hop(
    identity: IdentitySettings,
    number: int,
    caller: Session,
    *,
    tags: tuple[tuple[str, str], ...] | None = None,
) -> AssumedRole:
    """Hop `number` (from 1) as the loop makes it; `tags` replaces its session tags (the doctor
    tries the first hop without them to tell whether they are what AWS refuses)."""
    if tags is None:
        # Tags go on the first AssumeRole only: they are transitive, so later hops keep them,
        # and AWS refuses a later hop that sets a transitive key again.
        tags = identity.session_tags if number == 1 else ()
    return assume_role(
        caller,
        identity.hops[number - 1],
        label=hop_label(identity, number),
        session_name=identity.session_name,
        region=identity.region,
        duration_seconds=identity.duration_seconds,
        tags=tags,
        tags_in_play=bool(identity.session_tags),
    )


def hop_label(identity: IdentitySettings, number: int) -> str:
    hop = identity.hops[number - 1]
    return (
        f"hop {number} of {len(identity.hops)} ({hop.origin})"
        if len(identity.hops) > 1
        else (hop.origin)
    )


def check_chained_duration(identity: IdentitySettings, first_chained: int) -> None:
    """Refuse before any AssumeRole: hop `first_chained` onwards use role credentials."""
    config_identity.check_chained_duration(
        identity.duration_seconds,
        identity.hops,
        first_chained,
        origin="XACCT_DURATION_SECONDS",
        label=lambda number: hop_label(identity, number),
        setting="XACCT_DURATION_SECONDS",
    )
