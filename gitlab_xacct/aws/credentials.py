"""The STS calls (base identity, AssumeRoleWithWebIdentity, AssumeRole), each made a session.

Sessions are boto3's, one per identity: the runner's own (boto3's default credential chain), or
an assumed role's credentials. Every AWS client of the tool is made by `client`, with its
botocore Config built in `client_config`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from boto3.session import Session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from gitlab_xacct import __version__, network
from gitlab_xacct.aws import explain
from gitlab_xacct.errors import IdentityError
from gitlab_xacct.secrets import mask, register

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

    from gitlab_xacct.config.identity import Hop, WebIdentity

log = logging.getLogger(__name__)


def client_config(*, unsigned: bool = False) -> Config:
    """Bounded retries in botocore's standard mode: throttling, 5xx and connection errors back off
    and retry (4 attempts in all); AccessDenied, InvalidClientTokenId, ExpiredToken and
    ValidationError are not retryable there, so they fail at once.
    """
    return Config(
        retries={"mode": "standard", "total_max_attempts": 4},
        connect_timeout=10,
        read_timeout=30,
        user_agent_extra=f"gitlab-xacct/{__version__}",
        **({"signature_version": UNSIGNED} if unsigned else {}),
    )


def probe_config() -> Config:
    """For the doctor's look into other regions: one attempt, short timeouts. A region that
    does not answer at once is reported as such; many of them must not add up to minutes."""
    return Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2,
                  read_timeout=4)  # fmt: skip


@overload
def client(
    session: Session, service: Literal["sts"], region: str, *, unsigned: bool = ...,
    config: Config | None = ...,
) -> STSClient: ...  # fmt: skip
@overload
def client(
    session: Session, service: Literal["ecr"], region: str, *, unsigned: bool = ...,
    config: Config | None = ...,
) -> ECRClient: ...  # fmt: skip
@overload
def client(
    session: Session, service: Literal["iam"], region: str, *, unsigned: bool = ...,
    config: Config | None = ...,
) -> IAMClient: ...  # fmt: skip
def client(
    session: Session, service: str, region: str, *, unsigned: bool = False,
    config: Config | None = None,
) -> Any:  # fmt: skip
    """The one place an AWS client is made: `session`'s identity (none when `unsigned`), in
    `region`, configured by `client_config` (`config` merged on top). Endpoints follow
    botocore's rules, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> included.

    The region is required, even for IAM: its endpoint and signing follow the partition of the
    region (aws-cn, aws-us-gov), and with an endpoint override botocore cannot sign without one
    (NoRegionError at the first call). It comes from the settings (XACCT_REGION, else AWS_REGION,
    else AWS_DEFAULT_REGION), never from boto3's own reading, which knows no AWS_REGION."""
    if not region:
        raise AssertionError(f"an AWS {service} client without a region")
    merged = client_config(unsigned=unsigned)
    if config is not None:
        merged = merged.merge(config)

    def create(**settings: Any) -> Any:  # config= and verify=, from the network policy
        return session.client(service, region_name=region, **settings)  # type: ignore[call-overload]

    return network.aws_client(create, merged)  # the run's trust, proxy


class AssumeRoleError(IdentityError):
    """An sts:AssumeRole that failed, explained in its message; `code` and `aws_message` are
    what AWS answered (`code` None: no answer, for want of credentials or of a connection)."""

    def __init__(self, message: str, *, code: str | None = None, aws_message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.aws_message = aws_message


@dataclass(frozen=True, slots=True)
class AssumedRole:
    """Credentials of a role session; every AWS call after a hop uses these only."""

    session: Session
    arn: str  # arn:PARTITION:sts::ACCOUNT:assumed-role/NAME/SESSION
    account: str
    access_key_id: str
    expiration: datetime


def new_session(
    *,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
    region_name: str | None = None,
) -> Session:
    """A boto3 session of its own for one identity: explicit credentials (an assumed role's),
    or none, so that boto3's default chain finds the runner's."""
    return boto3.Session(
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        aws_session_token=aws_session_token,
        region_name=region_name,
    )


def base_session() -> Session:
    """The runner's own identity: instance profile, task role, IRSA, AWS_PROFILE, static keys."""
    session = new_session()
    credentials = session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        for value in (frozen.secret_key, frozen.token):
            if value:
                register(value)
    return session


def caller_arn(session: Session, region: str) -> str | None:
    """Who a session is, for messages and the chaining check; None when even that is refused."""
    try:
        return client(session, "sts", region).get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError):
        return None


def assume_with_web_identity(
    web: WebIdentity, *, session_name: str, region: str, duration_seconds: int
) -> AssumedRole:
    """GitLab OIDC: the ID token is the only proof; the call is unsigned, no AWS keys at all."""
    sts = client(new_session(), "sts", region, unsigned=True)
    log.debug("sts:AssumeRoleWithWebIdentity %s as session %s", web.role, session_name)
    try:
        response = sts.assume_role_with_web_identity(
            RoleArn=str(web.role),
            RoleSessionName=session_name,
            WebIdentityToken=web.token.reveal(),
            DurationSeconds=duration_seconds,
        )
    except ClientError as exc:
        raise explain.web_identity_failure(exc, web) from None
    except BotoCoreError as exc:
        raise IdentityError(f"could not reach AWS STS for {web.role}: {mask(str(exc))}") from None
    return _session(response["Credentials"], response["AssumedRoleUser"]["Arn"], region)


def assume_role(
    caller: Session,
    hop: Hop,
    *,
    label: str,
    session_name: str,
    region: str,
    duration_seconds: int,
    tags: tuple[tuple[str, str], ...] = (),
    tags_in_play: bool = False,
) -> AssumedRole:
    """`tags` are sent on this call; `tags_in_play` says a chain carries transitive tags into
    it, which AWS also checks against sts:TagSession (for the explanation only). A failure is
    an AssumeRoleError."""
    sts = client(caller, "sts", region)
    params: dict[str, object] = {
        "RoleArn": str(hop.role),
        "RoleSessionName": session_name,
        "DurationSeconds": duration_seconds,
    }
    if hop.external_id:
        params["ExternalId"] = hop.external_id.reveal()
    if tags:
        params["Tags"] = [{"Key": key, "Value": value} for key, value in tags]
        # Transitive: later hops of a chain keep them, so the target sees who pushed.
        params["TransitiveTagKeys"] = [key for key, _ in tags]
    log.debug("sts:AssumeRole %s as session %s", hop.role, session_name)
    try:
        response = sts.assume_role(**params)  # type: ignore[arg-type]
    except NoCredentialsError:
        raise AssumeRoleError(
            "no AWS credentials for the base identity: the runner has no instance or task role "
            "that boto3 can find, and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and "
            "AWS_WEB_IDENTITY_TOKEN_FILE are unset; or use GitLab OIDC "
            "(XACCT_WEB_IDENTITY_ROLE_ARN)"
        ) from None
    except ClientError as exc:
        caller_name = caller_arn(caller, region)
        explained = explain.assume_role_failure(
            exc, hop, label=label, caller=caller_name, tagged=bool(tags) or tags_in_play
        )
        error = exc.response.get("Error", {})
        raise AssumeRoleError(
            str(explained),
            code=str(error.get("Code", "")),
            aws_message=mask(str(error.get("Message", ""))),
        ) from None
    except BotoCoreError as exc:
        raise AssumeRoleError(
            f"could not reach AWS STS to assume {hop.role}: {mask(str(exc))}"
        ) from None
    return _session(response["Credentials"], response["AssumedRoleUser"]["Arn"], region)


def _session(creds: CredentialsTypeDef, arn: str, region: str) -> AssumedRole:
    for value in (creds["SecretAccessKey"], creds["SessionToken"]):
        register(value)
    log.info("assumed %s (credentials expire %s)", arn, creds["Expiration"].isoformat())
    session = new_session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )
    return AssumedRole(
        session=session,
        arn=arn,
        account=arn.split(":")[4],
        access_key_id=creds["AccessKeyId"],
        expiration=creds["Expiration"],
    )
