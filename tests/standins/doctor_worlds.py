"""One moto world holding every misconfiguration `gitlab-xacct doctor` must name.

BUILD (111111111111): IAM user gitlab-runner (may assume and tag any OURTHING role and the BUILD
role RunnerInstanceRole), IAM user no-assume (no sts:AssumeRole at all), IAM user no-self-read
(may assume OURTHING roles, may not read its own policies), role RunnerInstanceRole (as an
instance profile would be: its sessions make AssumeRole a role chain). The others may read
their own identity policies, as docs/doctor.md suggests granting to runners.
OURTHING (222222222222), every role trusting BUILD's root with the External ID, no TagSession:
OurThingBuildRole (push, no create), CreatorRole (push and create), both on team/* in us-east-1
only (least privilege, as bootstrap writes it), AnyRegionRole (push on team/* in every region),
NoEcrRole (no permission policy). ECR: team/app in us-east-1. The policies come from
gitlab_xacct.aws.iam, as bootstrap writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from gitlab_xacct.aws import iam
from tests.standins.aws_world import (
    AccessKey,
    boto_session,
    create_user,
    enable_auth,
    policy,
    setup_session,
)

BUILD_ACCOUNT = "111111111111"
OURTHING_ACCOUNT = "222222222222"
REGION = "us-east-1"
REPOSITORY = "team/app"
INSTANCE_ROLE = "RunnerInstanceRole"
SELF_READ = (
    "iam:GetUserPolicy",
    "iam:ListUserPolicies",
    "iam:ListAttachedUserPolicies",
    "iam:ListGroupsForUser",
    "iam:GetRolePolicy",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
)


def role_arn(name: str, account: str = OURTHING_ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


@dataclass(frozen=True)
class DoctorWorld:
    endpoint_url: str
    external_id: str = field(repr=False)
    runner: AccessKey = field(repr=False)
    no_assume: AccessKey = field(repr=False)
    blind: AccessKey = field(repr=False)  # may assume, may not read its own policies

    def keys_env(self, key: AccessKey, token: str | None = None) -> dict[str, str]:
        env = {
            "AWS_ACCESS_KEY_ID": key.access_key_id,
            "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }
        return {**env, "AWS_SESSION_TOKEN": token} if token else env

    def instance_role_env(self) -> dict[str, str]:
        """Credentials of a RunnerInstanceRole session, as an EC2 instance profile hands out."""
        sts = boto_session(
            self.runner.access_key_id, self.runner.secret_access_key, region=REGION
        ).client("sts", endpoint_url=self.endpoint_url)
        creds = sts.assume_role(
            RoleArn=role_arn(INSTANCE_ROLE, BUILD_ACCOUNT), RoleSessionName="i-0123456789abcdef"
        )["Credentials"]
        key = AccessKey(creds["AccessKeyId"], creds["SecretAccessKey"])
        return self.keys_env(key, creds["SessionToken"])

    def repository_exists(self, name: str, region: str = REGION) -> bool:
        """Whether ECR holds `name`, asked as CreatorRole (auth is on from setup's end)."""
        sts = boto_session(
            self.runner.access_key_id, self.runner.secret_access_key, region=region
        ).client("sts", endpoint_url=self.endpoint_url)
        creds = sts.assume_role(
            RoleArn=role_arn("CreatorRole"), RoleSessionName="check", ExternalId=self.external_id
        )["Credentials"]
        ecr = boto_session(
            creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"], region
        ).client("ecr", endpoint_url=self.endpoint_url)
        try:
            ecr.describe_repositories(registryId=OURTHING_ACCOUNT, repositoryNames=[name])
        except ecr.exceptions.RepositoryNotFoundException:
            return False
        return True


def _self_read(arn: str) -> dict[str, object]:
    return {"Effect": "Allow", "Action": list(SELF_READ), "Resource": arn}


def build_doctor_world(moto_url: str, *, external_id: str) -> DoctorWorld:
    ourthing_roles = role_arn("*")
    instance_role = role_arn(INSTANCE_ROLE, BUILD_ACCOUNT)
    build = setup_session(moto_url, BUILD_ACCOUNT, REGION)
    runner_arn = f"arn:aws:iam::{BUILD_ACCOUNT}:user/gitlab-runner"
    runner = create_user(
        build,
        moto_url,
        "gitlab-runner",
        policy(
            {
                "Effect": "Allow",
                "Action": [iam.ASSUME, iam.TAG_SESSION],
                "Resource": [ourthing_roles, instance_role],
            },
            _self_read(runner_arn),
        ),
    )
    no_assume = create_user(
        build,
        moto_url,
        "no-assume",
        policy(_self_read(f"arn:aws:iam::{BUILD_ACCOUNT}:user/no-assume")),
    )
    blind = create_user(
        build,
        moto_url,
        "no-self-read",
        policy({"Effect": "Allow", "Action": iam.ASSUME, "Resource": ourthing_roles}),
    )
    build_iam = build.client("iam", endpoint_url=moto_url)
    build_iam.create_role(
        RoleName=INSTANCE_ROLE,
        AssumeRolePolicyDocument=policy(
            {"Effect": "Allow", "Principal": {"AWS": runner_arn}, "Action": iam.ASSUME}
        ),
    )
    build_iam.put_role_policy(
        RoleName=INSTANCE_ROLE,
        PolicyName="assume-ourthing",
        PolicyDocument=policy(
            {"Effect": "Allow", "Action": iam.ASSUME, "Resource": ourthing_roles},
            _self_read(instance_role),
        ),
    )

    ourthing = setup_session(moto_url, OURTHING_ACCOUNT, REGION)
    ourthing_iam = ourthing.client("iam", endpoint_url=moto_url)
    trust = iam.trust_policy(
        principal_arns=[f"arn:aws:iam::{BUILD_ACCOUNT}:root"], external_id=external_id
    )
    repositories = [iam.repository_arn("aws", REGION, OURTHING_ACCOUNT, "team/*")]
    any_region = [iam.repository_arn("aws", "*", OURTHING_ACCOUNT, "team/*")]
    permissions = {
        "OurThingBuildRole": iam.push_policy(repository_arns=repositories, allow_create=False),
        "AnyRegionRole": iam.push_policy(repository_arns=any_region, allow_create=False),
        "CreatorRole": iam.push_policy(repository_arns=repositories, allow_create=True),
        "NoEcrRole": None,
    }
    for name, document in permissions.items():
        ourthing_iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=7200
        )
        if document is not None:
            ourthing_iam.put_role_policy(
                RoleName=name, PolicyName="ecr-push", PolicyDocument=json.dumps(document)
            )
    ourthing.client("ecr", endpoint_url=moto_url).create_repository(repositoryName=REPOSITORY)

    enable_auth(moto_url)
    return DoctorWorld(moto_url, external_id, runner, no_assume, blind)
