"""The stand-ins a benchmark runs against: one moto for AWS, a fresh docker-registry per run.

moto holds BUILD (111111111111, the runner's keys) and three OURTHING-like accounts, each with
OurThingBuildRole (trust: BUILD with the External ID; ECR push) and the repository bench/app.
Every docker-registry accepts its account's ECR token (moto's is `<account>-auth-token`), so
`--dest-creds`, the shell recipe's `aws ecr get-login-password` and `gitlab-xacct push` all log
into the same registries the same way.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path

from tests.standins.aws_world import (
    create_push_role,
    create_user,
    enable_auth,
    policy,
    setup_session,
)
from tests.standins.servers import BUILD_ACCOUNT, Registry, start_registry

ACCOUNTS = ("222222222222", "333333333333", "444444444444")
ROLE = "OurThingBuildRole"
REGION = "eu-west-1"
REPOSITORY = "bench/app"
EXTERNAL_ID = "bench-ExternalId-5c0ffee1"
USERNAME = "AWS"
# The venv running the benchmark: its gitlab-xacct and its aws (awscli from PyPI).
BIN = Path(sys.executable).parent


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/{ROLE}"


def token(account: str) -> str:
    """moto's fixed ECR password for `account`, which the stand-in registry's htpasswd holds."""
    return f"{account}-auth-token"


@dataclass(frozen=True)
class RunnerKeys:
    moto_url: str
    access_key_id: str
    secret_access_key: str


def build_accounts(moto_url: str) -> RunnerKeys:
    """Create BUILD's runner user and every OURTHING account, then turn moto's auth on."""
    build = setup_session(moto_url, BUILD_ACCOUNT, REGION)
    runner = create_user(
        build,
        moto_url,
        "gitlab-runner",
        policy(
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": [role_arn(a) for a in ACCOUNTS],
            }
        ),
    )
    for account in ACCOUNTS:
        create_push_role(
            moto_url, account, ROLE, build_account=BUILD_ACCOUNT, external_id=EXTERNAL_ID,
            region=REGION, repositories=(REPOSITORY,),
        )  # fmt: skip
    enable_auth(moto_url)
    return RunnerKeys(moto_url, runner.access_key_id, runner.secret_access_key)


class Registries:
    """docker-registry processes under one folder, each with storage of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._numbers = count(1)

    @contextmanager
    def fresh(self, account: str = ACCOUNTS[0]) -> Iterator[Registry]:
        """A new, empty registry; stopped by its pid and its storage deleted afterwards."""
        workdir = self.root / f"registry-{next(self._numbers)}"
        registry = start_registry(workdir, USERNAME, token(account))
        try:
            yield registry
        finally:
            registry.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def creds(registry: Registry) -> str:
    return f"{registry.username}:{registry.password}"


def base_env(home: Path) -> dict[str, str]:
    """What every measured process sees: no ambient AWS_*, proxies or Docker config."""
    return {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(home),
    }


def job_env(keys: RunnerKeys, home: Path, **extra: str) -> dict[str, str]:
    """A GitLab job in BUILD: the runner's keys, moto as AWS, GitLab's predefined variables."""
    return {
        **base_env(home),
        "AWS_ACCESS_KEY_ID": keys.access_key_id,
        "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": keys.moto_url,
        "CI": "true",
        "CI_PROJECT_ID": "4242",
        "CI_PROJECT_PATH": REPOSITORY,
        "CI_PIPELINE_ID": "1001",
        "CI_JOB_ID": "90001",
        "CI_COMMIT_SHORT_SHA": "a1b2c3d4",
        **extra,
    }
