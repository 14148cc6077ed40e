"""ECR with the assumed role: make sure the repository exists, turn the token into a login."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from gitlab_xacct.aws import explain
from gitlab_xacct.aws.credentials import AssumedRole, client
from gitlab_xacct.errors import RegistryAuthError
from gitlab_xacct.secrets import Secret, mask, register

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RegistryLogin:
    endpoint: str  # https://ACCOUNT.dkr.ecr.REGION.amazonaws.com, as ECR names it
    username: str
    password: Secret


def ecr_client(role: AssumedRole, region: str) -> ECRClient:
    return client(role.session, "ecr", region)


def ensure_repository(
    ecr: ECRClient, *, repository: str, account: str, region: str, create: bool, role: str
) -> bool:
    """Exit 4 with the fix when the repository is missing, unless asked to create it.

    Returns whether its tags are immutable (False when that cannot be read).
    """
    try:
        found = ecr.describe_repositories(registryId=account, repositoryNames=[repository])
    except ClientError as exc:
        code = _code(exc)
        if code in ("AccessDeniedException", "AccessDenied") and not create:
            # A least-privilege push policy may lack DescribeRepositories; the push will tell.
            log.warning(
                "could not check that repository %s exists (%s on ecr:DescribeRepositories); "
                "pushing anyway",
                repository,
                code,
            )
            return False
        if code != "RepositoryNotFoundException":
            raise _denied(exc, "ecr:DescribeRepositories", role, account, region) from None
    except BotoCoreError as exc:
        raise RegistryAuthError(f"could not reach ECR in {region}: {mask(str(exc))}") from None
    else:
        repositories = found["repositories"]
        return bool(repositories) and repositories[0].get("imageTagMutability") == "IMMUTABLE"

    if not create:
        raise RegistryAuthError(
            f"ECR repository {repository!r} does not exist in account {account} ({region}); "
            f"create it (aws ecr create-repository --repository-name {repository} --region "
            f"{region}) or set XACCT_CREATE_REPOSITORY=true"
        )
    try:
        # Tag mutability is left at the account's default; scanning on push costs nothing to ask.
        created = ecr.create_repository(
            repositoryName=repository,
            registryId=account,
            imageScanningConfiguration={"scanOnPush": True},
        )
        log.info("created ECR repository %s in %s (%s)", repository, account, region)
    except ClientError as exc:
        if _code(exc) != "RepositoryAlreadyExistsException":  # another job won the race
            raise _denied(exc, "ecr:CreateRepository", role, account, region) from None
        return False
    return created["repository"].get("imageTagMutability") == "IMMUTABLE"


def login(ecr: ECRClient, *, account: str, region: str, role: str) -> RegistryLogin:
    """A registry login for use right away; expiresAt is not checked (clocks, stand-ins differ)."""
    return authorize(ecr, account=account, region=region, role=role).login


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _denied(
    exc: ClientError, action: str, role: str, account: str, region: str
) -> RegistryAuthError:
    code = _code(exc)
    message = mask(str(exc.response.get("Error", {}).get("Message", "")))
    if code in ("AccessDeniedException", "AccessDenied"):
        return RegistryAuthError(
            f"{code}: {role} may not call {action} in account {account} ({region}); the role's "
            f"permission policy in that account must allow it ({message})"
        )
    # Throttling and 5xx were retried by botocore first: say how often, as for STS.
    return RegistryAuthError(
        f"{action} failed{explain.attempts(exc)} in account {account} ({region}): {code}: {message}"
    )


@dataclass(frozen=True, slots=True)
class Authorization:
    """A registry login and the moment ECR says its token stops working."""

    login: RegistryLogin
    expires_at: datetime  # aware, UTC


def authorize(ecr: ECRClient, *, account: str, region: str, role: str) -> Authorization:
    """What `login` does, keeping expiresAt: for callers that store the token (a Docker config,
    the credential helper's cache) and so must know when it goes stale.
    """
    try:
        response = ecr.get_authorization_token(registryIds=[account])
    except ClientError as exc:
        raise _denied(exc, "ecr:GetAuthorizationToken", role, account, region) from None
    except BotoCoreError as exc:
        raise RegistryAuthError(f"could not reach ECR in {region}: {mask(str(exc))}") from None
    data = response["authorizationData"][0]
    token = data["authorizationToken"]
    register(token)
    try:
        username, _, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise RegistryAuthError("ECR returned an authorization token that is not base64") from None
    if not password:
        raise RegistryAuthError("ECR returned an authorization token without a password")
    expires = data["expiresAt"]
    # botocore parses timestamps as aware datetimes; a naive one is read as UTC, not local time.
    expires = expires.astimezone(UTC) if expires.tzinfo else expires.replace(tzinfo=UTC)
    login = RegistryLogin(
        endpoint=data["proxyEndpoint"], username=username, password=Secret(password)
    )
    return Authorization(login=login, expires_at=expires)
