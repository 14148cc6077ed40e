"""Two AWS accounts in the patched moto: BUILD runs the GitLab job, OURTHING owns ECR.

Everything is created while moto's auth is off, then auth is turned on so that from there on
every call is checked: keys must exist, identity policies and the role's trust policy apply.
All clients get an explicit endpoint and explicit credentials; ambient AWS_* never leak in.

``build_world`` makes the single-hop world (runner keys -> OurThingBuildRole);
``build_chain_world`` adds GitLab OIDC and a hub account for role chains (see there).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import boto3
import botocore.session
import requests
from botocore import UNSIGNED
from botocore.config import Config
from mypy_boto3_sts import STSClient

# Any key works while auth is off; moto files calls made with it under its default account.
_SETUP_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
_SETUP_SECRET = "setup-only-secret"

ECR_PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
    "ecr:DescribeRepositories",
    "ecr:CreateRepository",
)


def boto_session(
    key_id: str, secret: str, token: str | None = None, region: str = "us-east-1"
) -> boto3.Session:
    """A boto3 session with exactly these credentials (clients still need endpoint_url).

    The profile is not read from the environment either: a stray AWS_PROFILE on the machine
    would otherwise make every session fail with ProfileNotFound.
    """
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    return boto3.Session(
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name=region,
        botocore_session=core,
    )


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class World:
    endpoint_url: str
    region: str
    build_account: str
    ourthing_account: str
    role_arn: str
    external_id: str
    repositories: tuple[str, ...]
    runner_access_key_id: str
    runner_secret_access_key: str
    no_assume_access_key_id: str
    no_assume_secret_access_key: str

    def runner_env(self) -> dict[str, str]:
        """Environment of the GitLab job in BUILD: the runner's own keys, moto as endpoint."""
        return {
            "AWS_ACCESS_KEY_ID": self.runner_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.runner_secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def session(self, key_id: str, secret: str, token: str | None = None) -> boto3.Session:
        """A boto3 session with exactly these credentials (clients still need endpoint_url)."""
        return boto_session(key_id, secret, token, self.region)


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def setup_session(moto_url: str, account_id: str, region: str = "us-east-1") -> boto3.Session:
    """Credentials that act in `account_id`; only valid while moto's auth is off.

    Assuming any role ARN in an account (it need not exist) is moto's way to switch accounts.
    """
    sts = boto_session(_SETUP_KEY_ID, _SETUP_SECRET, region=region).client(
        "sts", endpoint_url=moto_url
    )
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/standin-setup", RoleSessionName="setup"
    )["Credentials"]
    return boto_session(
        credentials["AccessKeyId"],
        credentials["SecretAccessKey"],
        credentials["SessionToken"],
        region,
    )


def create_user(
    session: boto3.Session, moto_url: str, name: str, identity_policy: str | None = None
) -> AccessKey:
    """An IAM user with one access key and, optionally, an inline identity policy."""
    iam = session.client("iam", endpoint_url=moto_url)
    iam.create_user(UserName=name)
    if identity_policy is not None:
        iam.put_user_policy(
            UserName=name, PolicyName=f"{name}-policy", PolicyDocument=identity_policy
        )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return AccessKey(key["AccessKeyId"], key["SecretAccessKey"])


def enable_auth(moto_url: str) -> None:
    """From the next request on, moto authenticates and authorises every call."""
    http = requests.Session()
    http.trust_env = False  # loopback: no proxy from the environment
    response = http.post(f"{moto_url}/moto-api/reset-auth", data=b"0", timeout=10)
    response.raise_for_status()


def create_push_role(
    moto_url: str,
    account: str,
    role_name: str,
    *,
    build_account: str,
    external_id: str,
    region: str,
    repositories: tuple[str, ...],
) -> None:
    """OURTHING's side of the classic recipe in `account`: a role trusting the BUILD account with
    the External ID, allowed to push to ECR, and the repositories."""
    ourthing = setup_session(moto_url, account, region)
    iam = ourthing.client("iam", endpoint_url=moto_url)
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{build_account}:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
        }
    )
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust)
    permissions = policy(
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": list(ECR_PUSH_ACTIONS),
            "Resource": f"arn:aws:ecr:{region}:{account}:repository/*",
        },
    )
    iam.put_role_policy(RoleName=role_name, PolicyName="ecr-push", PolicyDocument=permissions)
    ecr = ourthing.client("ecr", endpoint_url=moto_url)
    for repository in repositories:
        ecr.create_repository(repositoryName=repository)


def build_world(
    moto_url: str,
    *,
    external_id: str,
    build_account: str = "111111111111",
    ourthing_account: str = "222222222222",
    role_name: str = "OurThingBuildRole",
    repositories: tuple[str, ...] = ("team/app",),
    region: str = "us-east-1",
) -> World:
    """Create both accounts' IAM and ECR resources, then turn moto's auth on."""
    role_arn = f"arn:aws:iam::{ourthing_account}:role/{role_name}"

    build = setup_session(moto_url, build_account, region)
    runner = create_user(
        build,
        moto_url,
        "gitlab-runner",
        policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}),
    )
    no_assume = create_user(build, moto_url, "no-assume")

    create_push_role(
        moto_url, ourthing_account, role_name, build_account=build_account,
        external_id=external_id, region=region, repositories=repositories,
    )  # fmt: skip

    enable_auth(moto_url)
    return World(
        endpoint_url=moto_url,
        region=region,
        build_account=build_account,
        ourthing_account=ourthing_account,
        role_arn=role_arn,
        external_id=external_id,
        repositories=tuple(repositories),
        runner_access_key_id=runner.access_key_id,
        runner_secret_access_key=runner.secret_access_key,
        no_assume_access_key_id=no_assume.access_key_id,
        no_assume_secret_access_key=no_assume.secret_access_key,
    )


# ---- GitLab OIDC and a role chain: BUILD -> HUB -> OURTHING ---------------------------------

WEB_IDENTITY_ROLE = "GitLabOidcRole"
HUB_ROLE = "HubRole"
OURTHING_ROLE = "OurThingBuildRole"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_gitlab_id_token(
    *, host: str, sub: str, aud: str, exp_offset: int = 300, **claims: object
) -> str:
    """A JWT-shaped GitLab CI ID token (``id_tokens:`` in .gitlab-ci.yml) with a dummy signature.

    Claims follow GitLab's: iss ``https://HOST``, sub ``project_path:G/P:ref_type:T:ref:R``
    (project_path, ref_type and ref are read back from it), aud, exp = now + `exp_offset`
    (negative: already expired), iat, nbf, and the CI claims (project_path, ref, pipeline_id,
    job_id, user_login...). `claims` override or add claims; a claim given as None is left out.
    The stand-in STS decodes it without checking the signature.
    """
    now = int(time.time())
    parts = sub.split(":")
    fields = dict(zip(parts[::2], parts[1::2], strict=False)) if len(parts) % 2 == 0 else {}
    project_path = fields.get("project_path", "team/app")
    ref_type = fields.get("ref_type", "branch")
    ref = fields.get("ref", "main")
    ref_path = f"refs/{'tags' if ref_type == 'tag' else 'heads'}/{ref}"
    sha = "0123456789abcdef0123456789abcdef01234567"
    payload: dict[str, object] = {
        "iss": f"https://{host}",
        "sub": sub,
        "aud": aud,
        "exp": now + exp_offset,
        "iat": now,
        "nbf": now - 5,
        "jti": str(uuid.uuid4()),
        "namespace_id": "42",
        "namespace_path": project_path.rsplit("/", 1)[0],
        "project_id": "101",
        "project_path": project_path,
        "project_visibility": "private",
        "user_id": "7",
        "user_login": "gitlab-user",
        "user_email": "gitlab-user@example.test",
        "user_access_level": "developer",
        "pipeline_id": "9001",
        "pipeline_source": "push",
        "job_id": "424242",
        "ref": ref,
        "ref_type": ref_type,
        "ref_path": ref_path,
        "ref_protected": "true",
        "environment_protected": "false",
        "runner_id": 1,
        "runner_environment": "self-hosted",
        "sha": sha,
        "ci_config_ref_uri": f"{host}/{project_path}//.gitlab-ci.yml@{ref_path}",
        "ci_config_sha": sha,
    }
    payload.update(claims)
    payload = {key: value for key, value in payload.items() if value is not None}
    header = {"alg": "RS256", "typ": "JWT", "kid": "standin-signature-not-verified"}
    return ".".join(
        [
            _b64url(json.dumps(header).encode()),
            _b64url(json.dumps(payload).encode()),
            _b64url(b"standin-signature-not-verified"),
        ]
    )


def gitlab_subject(project_path: str, ref: str = "main", ref_type: str = "branch") -> str:
    """GitLab's sub claim: ``project_path:{group}/{project}:ref_type:{type}:ref:{branch_name}``."""
    return f"project_path:{project_path}:ref_type:{ref_type}:ref:{ref}"


def unsigned_sts(moto_url: str, region: str = "us-east-1") -> STSClient:
    """An STS client that signs nothing, as for sts:AssumeRoleWithWebIdentity on AWS."""
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session = boto3.Session(region_name=region, botocore_session=core)
    return session.client("sts", endpoint_url=moto_url, config=Config(signature_version=UNSIGNED))


@dataclass(frozen=True)
class ChainWorld:
    """GitLab OIDC in BUILD, a hub account, ECR in OURTHING; made by ``build_chain_world``."""

    endpoint_url: str
    region: str
    build_account: str
    hub_account: str
    ourthing_account: str
    oidc_host: str
    oidc_provider_arn: str
    audience: str
    project_path: str
    web_identity_role_arn: str
    hub_role_arn: str
    ourthing_role_arn: str
    external_ids: tuple[str, str] = field(repr=False)
    repositories: tuple[str, ...]
    runner_access_key_id: str
    runner_secret_access_key: str = field(repr=False)

    def session(self, key_id: str, secret: str, token: str | None = None) -> boto3.Session:
        return boto_session(key_id, secret, token, self.region)

    def runner_session(self) -> boto3.Session:
        """The BUILD IAM user gitlab-runner (may assume HubRole and OurThingBuildRole)."""
        return self.session(self.runner_access_key_id, self.runner_secret_access_key)

    def subject(self, ref: str = "main", ref_type: str = "branch") -> str:
        return gitlab_subject(self.project_path, ref, ref_type)

    def id_token(
        self,
        *,
        ref: str = "main",
        ref_type: str = "branch",
        aud: str | None = None,
        exp_offset: int = 300,
        **claims: object,
    ) -> str:
        """A GitLab ID token of this world's project (sub built from ref, ref_type)."""
        return make_gitlab_id_token(
            host=self.oidc_host,
            sub=self.subject(ref, ref_type),
            aud=self.audience if aud is None else aud,
            exp_offset=exp_offset,
            **claims,
        )

    def unsigned_sts(self) -> STSClient:
        return unsigned_sts(self.endpoint_url, self.region)


def build_chain_world(
    moto_url: str,
    *,
    external_ids: tuple[str, str],
    oidc_host: str = "gitlab.example.test",
    project_path: str = "team/app",
    audience: str = "sts.amazonaws.com",
    build_account: str = "111111111111",
    hub_account: str = "333333333333",
    ourthing_account: str = "222222222222",
    repositories: tuple[str, ...] = ("team/app",),
    max_session_duration: int = 7200,
    region: str = "us-east-1",
) -> ChainWorld:
    """Create the chain's IAM and ECR resources, then turn moto's auth on.

    BUILD: OIDC provider ``https://oidc_host`` (client id `audience`); role GitLabOidcRole
    trusting it for ``oidc_host:sub`` StringLike ``project_path:P:ref_type:branch:ref:*`` and
    ``oidc_host:aud`` StringEquals `audience`, allowed sts:AssumeRole + sts:TagSession on
    HubRole; IAM user gitlab-runner (keys) allowed both actions on HubRole and OurThingBuildRole.
    HUB: HubRole trusting BUILD's root with ExternalId ``external_ids[0]`` (sts:TagSession
    without condition), allowed both actions on OurThingBuildRole.
    OURTHING: OurThingBuildRole trusting HubRole, and gitlab-runner directly, with ExternalId
    ``external_ids[1]`` (sts:TagSession for both), with ECR push rights on `repositories`.
    HubRole and OurThingBuildRole allow `max_session_duration` seconds (a chained hop is held
    to 3600 whatever this says); GitLabOidcRole keeps the default 3600.
    """
    provider_arn = f"arn:aws:iam::{build_account}:oidc-provider/{oidc_host}"
    web_role_arn = f"arn:aws:iam::{build_account}:role/{WEB_IDENTITY_ROLE}"
    hub_role_arn = f"arn:aws:iam::{hub_account}:role/{HUB_ROLE}"
    ourthing_role_arn = f"arn:aws:iam::{ourthing_account}:role/{OURTHING_ROLE}"
    runner_arn = f"arn:aws:iam::{build_account}:user/gitlab-runner"
    assume_and_tag = ["sts:AssumeRole", "sts:TagSession"]

    build = setup_session(moto_url, build_account, region)
    build_iam = build.client("iam", endpoint_url=moto_url)
    build_iam.create_open_id_connect_provider(
        Url=f"https://{oidc_host}", ClientIDList=[audience], ThumbprintList=["0" * 40]
    )
    web_trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {f"{oidc_host}:aud": audience},
                "StringLike": {f"{oidc_host}:sub": gitlab_subject(project_path, "*")},
            },
        }
    )
    build_iam.create_role(RoleName=WEB_IDENTITY_ROLE, AssumeRolePolicyDocument=web_trust)
    build_iam.put_role_policy(
        RoleName=WEB_IDENTITY_ROLE,
        PolicyName="assume-hub",
        PolicyDocument=policy(
            {"Effect": "Allow", "Action": assume_and_tag, "Resource": hub_role_arn}
        ),
    )
    runner = create_user(
        build,
        moto_url,
        "gitlab-runner",
        policy(
            {
                "Effect": "Allow",
                "Action": assume_and_tag,
                "Resource": [hub_role_arn, ourthing_role_arn],
            }
        ),
    )

    hub_iam = setup_session(moto_url, hub_account, region).client("iam", endpoint_url=moto_url)
    build_root = {"AWS": f"arn:aws:iam::{build_account}:root"}
    hub_trust = policy(
        {
            "Effect": "Allow",
            "Principal": build_root,
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_ids[0]}},
        },
        {"Effect": "Allow", "Principal": build_root, "Action": "sts:TagSession"},
    )
    hub_iam.create_role(
        RoleName=HUB_ROLE,
        AssumeRolePolicyDocument=hub_trust,
        MaxSessionDuration=max_session_duration,
    )
    hub_iam.put_role_policy(
        RoleName=HUB_ROLE,
        PolicyName="assume-ourthing",
        PolicyDocument=policy(
            {"Effect": "Allow", "Action": assume_and_tag, "Resource": ourthing_role_arn}
        ),
    )

    ourthing = setup_session(moto_url, ourthing_account, region)
    ourthing_iam = ourthing.client("iam", endpoint_url=moto_url)
    callers = {"AWS": [hub_role_arn, runner_arn]}
    ourthing_trust = policy(
        {
            "Effect": "Allow",
            "Principal": callers,
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_ids[1]}},
        },
        {"Effect": "Allow", "Principal": callers, "Action": "sts:TagSession"},
    )
    ourthing_iam.create_role(
        RoleName=OURTHING_ROLE,
        AssumeRolePolicyDocument=ourthing_trust,
        MaxSessionDuration=max_session_duration,
    )
    ecr_push = policy(
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": list(ECR_PUSH_ACTIONS),
            "Resource": f"arn:aws:ecr:{region}:{ourthing_account}:repository/*",
        },
    )
    ourthing_iam.put_role_policy(
        RoleName=OURTHING_ROLE, PolicyName="ecr-push", PolicyDocument=ecr_push
    )
    ecr = ourthing.client("ecr", endpoint_url=moto_url)
    for repository in repositories:
        ecr.create_repository(repositoryName=repository)

    enable_auth(moto_url)
    return ChainWorld(
        endpoint_url=moto_url,
        region=region,
        build_account=build_account,
        hub_account=hub_account,
        ourthing_account=ourthing_account,
        oidc_host=oidc_host,
        oidc_provider_arn=provider_arn,
        audience=audience,
        project_path=project_path,
        web_identity_role_arn=web_role_arn,
        hub_role_arn=hub_role_arn,
        ourthing_role_arn=ourthing_role_arn,
        external_ids=external_ids,
        repositories=tuple(repositories),
        runner_access_key_id=runner.access_key_id,
        runner_secret_access_key=runner.secret_access_key,
    )


# ---- what moto recorded for a session (tests/standins/moto_sts_patches.py) ------------------


@dataclass(frozen=True)
class SessionTags:
    """The tags an assumed-role session received, as the patched moto recorded them."""

    session_arn: str
    role_arn: str
    caller_arn: str
    action: str
    tags: dict[str, str]
    transitive_tag_keys: tuple[str, ...]
    inherited_transitive_tags: dict[str, str]
    effective_tags: dict[str, str]
    transitive_tags: dict[str, str]


def session_tags(moto_url: str, session_arn: str) -> SessionTags:
    """The latest session with this ARN (GET /xacct-standin/session-tags); LookupError if none."""
    http = requests.Session()
    http.trust_env = False
    url = f"{moto_url}/xacct-standin/session-tags?session_arn={quote(session_arn, safe='')}"
    response = http.get(url, timeout=10)
    if response.status_code == 404:
        raise LookupError(f"moto recorded no session {session_arn}")
    response.raise_for_status()
    record = response.json()["sessions"][-1]
    return SessionTags(
        session_arn=record["session_arn"],
        role_arn=record["role_arn"],
        caller_arn=record["caller_arn"],
        action=record["action"],
        tags=dict(record["tags"]),
        transitive_tag_keys=tuple(record["transitive_tag_keys"]),
        inherited_transitive_tags=dict(record["inherited_transitive_tags"]),
        effective_tags=dict(record["effective_tags"]),
        transitive_tags=dict(record["transitive_tags"]),
    )
