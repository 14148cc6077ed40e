"""Two AWS accounts in the patched moto: BUILD runs the GitLab job, OURTHING owns ECR.

Everything is created while moto's auth is off, then auth is turned on so that from there on
every call is checked: keys must exist, identity policies and the role's trust policy apply.
All clients get an explicit endpoint and explicit credentials; ambient AWS_* never leak in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
import requests

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

    ourthing = setup_session(moto_url, ourthing_account, region)
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
            "Resource": f"arn:aws:ecr:{region}:{ourthing_account}:repository/*",
        },
    )
    iam.put_role_policy(RoleName=role_name, PolicyName="ecr-push", PolicyDocument=permissions)
    ecr = ourthing.client("ecr", endpoint_url=moto_url)
    for repository in repositories:
        ecr.create_repository(repositoryName=repository)

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
