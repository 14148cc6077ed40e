"""The STS calls (base identity, AssumeRoleWithWebIdentity, AssumeRole), each made a session.

Sessions are botocore's, not boto3's: boto3 adds nothing the job uses and imports s3transfer and
its resource machinery (about 0.1 s of every push). One botocore session serves every identity
of the process, so its data files and handlers are set up once; an assumed role's clients get
that role's credentials explicitly.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, overload

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from gitlab_xacct import __version__, network
from gitlab_xacct.aws import explain
from gitlab_xacct.errors import IdentityError
from gitlab_xacct.records import record
from gitlab_xacct.secrets import mask, register

if TYPE_CHECKING:
    from botocore.credentials import Credentials
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

    from gitlab_xacct.settings import Hop, WebIdentity

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


@record(frozen=True)
class AssumedRole:
    """Credentials of a role session; every AWS call after a hop uses these only."""

    session: Session
    arn: str  # arn:PARTITION:sts::ACCOUNT:assumed-role/NAME/SESSION
    account: str
    access_key_id: str
    expiration: datetime


class Session:
    """One AWS identity: the runner's own (botocore's default chain), or explicit credentials
    (an assumed role). The part of boto3.Session the tool uses."""

    def __init__(
        self,
        core: botocore.session.Session,
        *,
        credentials: tuple[str, str, str | None] | None = None,  # key id, secret, token
        region_name: str | None = None,
    ) -> None:
        self._core = core
        self._credentials = credentials
        self._region = region_name

    @property
    def region_name(self) -> str | None:
        return self._region or self._core.get_config_variable("region")

    def get_credentials(self) -> Credentials | None:
        if self._credentials is None:
            return self._core.get_credentials()
        from botocore.credentials import Credentials

        return Credentials(*self._credentials)

    @overload
    def client(
        self, service_name: Literal["sts"], *, region_name: str | None = ..., config: Config
    ) -> STSClient: ...
    @overload
    def client(
        self, service_name: Literal["ecr"], *, region_name: str | None = ..., config: Config
    ) -> ECRClient: ...
    @overload
    def client(
        self, service_name: Literal["iam"], *, region_name: str | None = ..., config: Config
    ) -> IAMClient: ...
    def client(self, service_name: str, *, region_name: str | None = None, config: Config) -> Any:
        key, secret, token = self._credentials or (None, None, None)
        create = partial(
            self._core.create_client,
            service_name,
            region_name=region_name or self._region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
        )
        return network.aws_client(create, config)  # the run's trust store and proxy


_core: botocore.session.Session | None = None


def new_session(
    *,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
    region_name: str | None = None,
) -> Session:
    """A session on the process's one botocore session: botocore's data files (endpoints,
    partitions, service models) and event handlers are set up once, not per identity (about
    0.1 s apiece; a push has one identity per hop and the runner's)."""
    global _core  # noqa: PLW0603 - one per process, made by the first session
    if _core is None:
        _core = botocore.session.get_session()
    credentials = None
    if aws_access_key_id and aws_secret_access_key:
        credentials = (aws_access_key_id, aws_secret_access_key, aws_session_token)
    return Session(_core, credentials=credentials, region_name=region_name)


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
        sts = session.client("sts", region_name=region, config=client_config())
        return sts.get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError):
        return None


def assume_with_web_identity(
    web: WebIdentity, *, session_name: str, region: str, duration_seconds: int
) -> AssumedRole:
    """GitLab OIDC: the ID token is the only proof; the call is unsigned, no AWS keys at all."""
    sts = new_session().client("sts", region_name=region, config=client_config(unsigned=True))
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
    it, which AWS also checks against sts:TagSession (for the explanation only)."""
    sts = caller.client("sts", region_name=region, config=client_config())
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
        raise IdentityError(
            "no AWS credentials for the base identity: the runner has no instance or task role "
            "that boto3 can find, and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and "
            "AWS_WEB_IDENTITY_TOKEN_FILE are unset; or use GitLab OIDC "
            "(XACCT_WEB_IDENTITY_ROLE_ARN)"
        ) from None
    except ClientError as exc:
        caller_name = caller_arn(caller, region)
        raise explain.assume_role_failure(
            exc, hop, label=label, caller=caller_name, tagged=bool(tags) or tags_in_play
        ) from None
    except BotoCoreError as exc:
        raise IdentityError(
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
