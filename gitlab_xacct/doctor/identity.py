"""Checks 3 and 4: who the job is in AWS, and every AssumeRole hop to the target role.

On AccessDenied, AWS does not say which policy refused, nor whether the role exists; the
check lists the likely causes in order, narrowed by what BUILD can observe: the configuration
(an unset External ID), a retry without session tags, and the caller's own identity policy
when it may read it (own_policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from boto3.session import Session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from gitlab_xacct.aws import iam
from gitlab_xacct.aws.credentials import AssumedRole, AssumeRoleError, base_session, client
from gitlab_xacct.aws.explain import principal_for
from gitlab_xacct.aws.identity import (
    assume_hop,
    assume_hops,
    check_chained_duration,
    web_identity_role,
)
from gitlab_xacct.config.identity import CHAINED_MAX_SECONDS, Hop, IdentitySettings
from gitlab_xacct.doctor import own_policy, reasons
from gitlab_xacct.doctor.own_policy import Verdict
from gitlab_xacct.doctor.report import BUILD, GITLAB, OURTHING, Cause, Check, ok
from gitlab_xacct.errors import ConfigError, IdentityError
from gitlab_xacct.secrets import mask

BASE = "base identity"
ASSUME = "assume role"
_BAD_CREDENTIALS = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "UnrecognizedClientException"}
)


_KINDS = (
    (":assumed-role/", "an assumed-role session"),
    (":user/", "an IAM user"),
    (":federated-user/", "a federated user"),
)


@dataclass(frozen=True, slots=True)
class Caller:
    session: Session
    arn: str

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]

    @property
    def is_role_session(self) -> bool:
        return ":assumed-role/" in self.arn


def check_base_identity(identity: IdentitySettings) -> tuple[Check, Caller | None]:
    found = _caller(identity)
    if isinstance(found, Check):
        return found, None
    caller, how = found
    if caller.arn.endswith(":root"):
        return Check(
            BASE, "FAIL", f"{caller.arn}: the account root user; AWS refuses AssumeRole from it",
            side=BUILD, fix="use an IAM role or user of the BUILD account",
            exit_code=IdentityError.exit_code,
        ), None  # fmt: skip
    kind = next((said for part, said in _KINDS if part in caller.arn), "an IAM principal")
    detail = f"{caller.arn} (account {caller.account}, {kind}, from {how})"
    first_chained = 1 if identity.web_identity or caller.is_role_session else 2
    if first_chained <= len(identity.hops):
        detail += (
            f"\nAssumeRole from a role session is role chaining: AWS caps it at "
            f"{CHAINED_MAX_SECONDS} s (XACCT_DURATION_SECONDS is {identity.duration_seconds})"
        )
    try:
        check_chained_duration(identity, first_chained)
    except ConfigError as exc:
        return Check(
            BASE, "FAIL", f"{detail}\n{exc}", side=GITLAB,
            fix=f"set XACCT_DURATION_SECONDS to {CHAINED_MAX_SECONDS} or less",
            exit_code=ConfigError.exit_code,
        ), None  # fmt: skip
    return ok(BASE, detail), caller


def _caller(identity: IdentitySettings) -> tuple[Caller, str] | Check:
    """Who the job is before any AssumeRole: GitLab OIDC's role session, or the runner's own."""
    if identity.web_identity:
        web = identity.web_identity
        try:
            role = web_identity_role(identity)
        except IdentityError as exc:
            return _fail(BASE, exc, BUILD, f"fix role {web.role.name} or its OIDC provider in "
                         f"account {web.role.account} as said above")  # fmt: skip
        how = f"GitLab OIDC (token from {web.token_variable}) into {web.role}"
        return Caller(role.session, role.arn), how
    session = base_session()
    try:
        arn = client(session, "sts", identity.region).get_caller_identity()["Arn"]
    except NoCredentialsError:
        return Check(
            BASE, "FAIL", "no AWS credentials: boto3 found no instance or task role, no "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, no AWS_PROFILE, no "
            "AWS_WEB_IDENTITY_TOKEN_FILE", side=BUILD,
            fix="give the runner an instance profile or task role, set the AWS_* keys as "
            "masked variables, or use GitLab OIDC (XACCT_WEB_IDENTITY_ROLE_ARN)",
            exit_code=IdentityError.exit_code,
        )  # fmt: skip
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return Check(
            BASE, "FAIL", f"sts:GetCallerIdentity refused the runner's credentials "
            f"({error.get('Code')}: {mask(str(error.get('Message', '')))})",
            side=BUILD, fix="the runner's AWS credentials are invalid or expired: check its "
            "role or the AWS_* variables", exit_code=IdentityError.exit_code,
        )  # fmt: skip
    except BotoCoreError as exc:
        return Check(
            BASE, "FAIL", f"could not reach AWS STS: {mask(str(exc))}", side=BUILD,
            fix="check the network path to STS (proxy, VPC endpoint, AWS_ENDPOINT_URL)",
            exit_code=IdentityError.exit_code,
        )  # fmt: skip
    return Caller(session, arn), "the runner's own credentials"


def _fail(name: str, exc: Exception, side: str, fix: str, code: int = 3) -> Check:
    return Check(name, "FAIL", str(exc), side=side, fix=fix, exit_code=code)


def check_assume(identity: IdentitySettings, caller: Caller) -> tuple[Check, AssumedRole | None]:
    """Every hop as push makes it (push's own loop); the first refusal is diagnosed."""
    role: AssumedRole | None = None
    current = caller
    arns = []
    try:
        for role in assume_hops(identity, caller.session):
            arns.append(role.arn)
            current = Caller(role.session, role.arn)
    except AssumeRoleError as exc:
        return _diagnose(identity, len(arns) + 1, current, exc), None
    if role is None:  # settings always hold the target hop
        raise AssertionError("no role to assume")
    allowed = identity.allowed_account_ids
    if allowed is not None and role.account not in allowed:
        return Check(
            ASSUME, "FAIL", f"assumed {role.arn}, but XACCT_ALLOWED_ACCOUNT_IDS lists only "
            f"{', '.join(sorted(allowed))}", side=GITLAB,
            fix=f"correct {identity.target.origin} or XACCT_ALLOWED_ACCOUNT_IDS",
            exit_code=IdentityError.exit_code,
        ), None  # fmt: skip
    via = f" (through {', '.join(arns[:-1])})" if len(arns) > 1 else ""
    tagged = " with session tags" if identity.session_tags else ""
    return ok(ASSUME, f"assumed {role.arn}{via}{tagged}, for {identity.duration_seconds} s"), role


def _diagnose(
    identity: IdentitySettings, number: int, caller: Caller, exc: AssumeRoleError
) -> Check:
    hop = identity.hops[number - 1]
    summary = str(exc).splitlines()[0]
    code, message = exc.code, exc.aws_message
    if code is None:  # no answer from AWS: no credentials, or no connection to STS
        return _fail(ASSUME, IdentityError(summary), BUILD, "see above")
    if code in _BAD_CREDENTIALS:
        return _fail(ASSUME, exc, BUILD, "check the runner's role or the AWS_* variables")
    if code == "ValidationError" and "role chaining" in message:
        return _fail(
            ASSUME, exc, GITLAB, f"set XACCT_DURATION_SECONDS to {CHAINED_MAX_SECONDS} or less",
            ConfigError.exit_code,
        )  # fmt: skip
    if code == "ValidationError" and "MaxSessionDuration" in message:
        return _fail(
            ASSUME, exc, f"{GITLAB} or {OURTHING}", f"lower XACCT_DURATION_SECONDS, or raise "
            f"the MaxSessionDuration of role {hop.role.name} in account {hop.role.account}",
        )  # fmt: skip
    if code not in ("AccessDenied", "AccessDeniedException"):
        return _fail(ASSUME, exc, "", "see AWS's message above")

    tagged = bool(identity.session_tags)
    causes = _causes(identity, number, caller, hop, message)
    principal = principal_for(caller.arn)
    fix = (
        "correct the first cause that applies; the documents below are what each side "
        "needs, with the real ARNs (the External ID is a placeholder)"
    )
    named = reasons.found(message)
    if named is not None:  # AWS said which kind of policy refused: that goes first
        denial = reasons.Denial(
            principal=principal, principal_account=caller.account, principal_side=BUILD,
            action=iam.ASSUME, resource=str(hop.role), resource_account=hop.role.account,
            resource_policy=f"the trust policy of {hop.role}",
        )  # fmt: skip
        first, fix_first = reasons.cause(named, denial)
        # The identity-policy cause, restated by AWS's words, is not listed twice.
        same = named.kind == "identity-based policy"
        rest = [c for c in causes if not (same and c.text.startswith("the identity policy of"))]
        causes = (first, *rest)
        fix = f"{fix_first}; {fix}"
    policies = (
        (
            f"trust policy role {hop.role.name} needs ({OURTHING}, account {hop.role.account})",
            iam.trust_policy(
                principal_arns=[principal],
                external_id=f"<value of {hop.external_id_origin}>",
                tag_session=tagged,
            ),
        ),
        (
            f"identity policy {principal} needs (account {caller.account})",
            iam.build_policy(role_arns=[str(hop.role)], tag_session=tagged),
        ),
    )
    return Check(
        ASSUME,
        "FAIL",
        f"{summary}\n"
        + (
            "AWS names the kind of policy that refused: cause 1, in its words; the others are "
            "ranked by what this side can see"
            if named
            else "AWS answers the same AccessDenied whichever policy refused and whether the "
            "role exists; the causes below are ranked by what this side can see"
        ),
        side=causes[0].side,
        fix=fix,
        exit_code=IdentityError.exit_code,
        causes=causes,
        policies=policies,
    )


def _causes(
    identity: IdentitySettings, number: int, caller: Caller, hop: Hop, message: str
) -> tuple[Cause, ...]:
    role = hop.role
    principal = principal_for(caller.arn)
    root = f"arn:{role.partition}:iam::{caller.account}:root"
    region = identity.region
    reading = own_policy.verdict(caller.session, caller.arn, iam.ASSUME, str(role), region)
    build = reading.verdict
    lacks_assume = Cause(
        f"the identity policy of {principal} does not allow sts:AssumeRole on {role}"
        + (
            ""
            if build is Verdict.NOT_ALLOWED
            else f" (its policies could not be read to tell: {reading.error})"
        ),
        BUILD,
    )
    if build is Verdict.NOT_ALLOWED:
        return (lacks_assume,)

    tags_in_play = bool(identity.session_tags)
    if tags_in_play and number == 1 and _works_without_tags(identity, caller):
        tag_verdict = own_policy.verdict(
            caller.session, caller.arn, iam.TAG_SESSION, str(role), region
        ).verdict
        trust = Cause(
            f"the trust policy of {role} does not allow sts:TagSession for {principal} "
            "(AssumeRole without session tags works)",
            OURTHING,
        )
        identity_side = Cause(
            f"the identity policy of {principal} does not allow sts:TagSession on {role}",
            BUILD,
        )
        if tag_verdict is Verdict.NOT_ALLOWED:
            return (identity_side,)
        if tag_verdict is Verdict.ALLOWED:
            return (trust,)
        return trust, identity_side

    causes: list[Cause] = []
    if hop.external_id is None:
        causes.append(
            Cause(
                f"no External ID is sent ({hop.external_id_origin} is unset) and the trust policy "
                "demands one",
                GITLAB,
            )
        )
    else:
        causes.append(
            Cause(
                f"{hop.external_id_origin} differs from the sts:ExternalId in the trust policy of "
                f"{role} (compare them character by character; neither is printed)",
                f"{GITLAB} or {OURTHING}",
            )
        )
    causes.append(
        Cause(
            f"the trust policy of {role} does not name {principal} (nor {root}) for sts:AssumeRole",
            OURTHING,
        )
    )
    causes.append(
        Cause(
            f"role {role.name} does not exist in account {role.account}, or "
            f"{hop.origin} misspells its name or path",
            f"{OURTHING} or {GITLAB}",
        )
    )
    if tags_in_play:
        tag_cause = Cause(
            f"session tags are on (XACCT_SESSION_TAGS) and sts:TagSession is not allowed in "
            f"the trust policy of {role} or the identity policy of {principal}",
            f"{OURTHING} or {BUILD}",
        )
        # AWS names sts:TagSession when that was the refusal: then it comes first.
        causes.insert(0 if "TagSession" in message else len(causes), tag_cause)
    if build is Verdict.UNKNOWN:
        causes.append(lacks_assume)
    return tuple(causes)


def _works_without_tags(identity: IdentitySettings, caller: Caller) -> bool:
    """Tags are the difference when the same AssumeRole without them goes through."""
    try:
        assume_hop(identity, 1, caller.session, tags=())
    except IdentityError:
        return False
    return True
