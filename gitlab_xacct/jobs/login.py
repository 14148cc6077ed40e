"""`gitlab-xacct login`: ECR logins of the target role, merged into a Docker config.json.

For tools that read Docker's config (docker, buildah, podman, kaniko, skopeo) in later steps of
the same job. The config then holds registry passwords valid for 12 hours: it is as sensitive as
the role itself, hence 0600 and never printed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gitlab_xacct import docker_config
from gitlab_xacct import log as xlog
from gitlab_xacct.aws import ecr
from gitlab_xacct.aws.identity import assume_target
from gitlab_xacct.config.login import LoginSettings
from gitlab_xacct.config.validate import parse_ecr_host
from gitlab_xacct.docker_config import registry_host
from gitlab_xacct.secrets import Secret

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """One registry to log into; `host` is None when ECR's proxyEndpoint names it."""

    account: str
    region: str
    host: str | None


@dataclass(frozen=True, slots=True)
class LoggedIn:
    host: str
    account: str
    region: str
    expires_at: datetime

    def line(self) -> str:
        return f"logged in to {self.host} (expires {self.expires_at:%Y-%m-%dT%H:%M:%SZ})"


def targets(settings: LoginSettings) -> list[Target]:
    """The target account's registry first (at XACCT_REGISTRY_ENDPOINT's host when set), then
    each extra one: an account id is that account's ECR in the same region; an ECR host name
    carries its own account and region, and keeps its own spelling (a -fips host stays one).
    """
    identity = settings.identity
    endpoint = settings.registry_endpoint
    found = [
        Target(
            identity.target.role.account,
            identity.region,
            registry_host(endpoint) if endpoint else None,
        )
    ]
    for registry in settings.registries:
        parsed = parse_ecr_host(registry)
        if parsed:
            found.append(Target(parsed[0], parsed[1], registry_host(registry)))
        else:
            found.append(Target(registry, identity.region, None))
    return list(dict.fromkeys(found))


def login(settings: LoginSettings, env: Mapping[str, str]) -> list[LoggedIn]:
    """All logins or none: the config is written once, after every token was obtained."""
    path = settings.docker_config
    docker_config.load(path)  # a file we may not touch costs no AWS call
    log.info("gitlab-xacct login")
    for key, value in [*settings.identity.summary(), ("docker config", str(path))]:
        log.info("  %-18s %s", key + ":", value)

    with xlog.section("xacct_identity", "Assume role", env):
        role = assume_target(settings.identity)

    logins: dict[str, tuple[str, Secret]] = {}
    done: list[LoggedIn] = []
    with xlog.section("xacct_ecr", "ECR login", env):
        clients: dict[str, ECRClient] = {}  # one per region
        for target in targets(settings):
            if target.region not in clients:
                clients[target.region] = ecr.ecr_client(role, target.region)
            auth = ecr.authorize(
                clients[target.region], account=target.account, region=target.region, role=role.arn
            )
            host = target.host or registry_host(auth.login.endpoint)
            if host in logins:
                continue
            logins[host] = (auth.login.username, auth.login.password)
            done.append(LoggedIn(host, target.account, target.region, auth.expires_at))

    # Read again: another step may have changed the file while AWS answered.
    current = docker_config.load(path)
    docker_config.save(path, docker_config.merge(current, logins))
    log.info("wrote %s (mode 0600)", path)
    for host in logins:
        reason = docker_config.shadowing(current, host)
        if reason:
            log.warning("warning: %s: %s", path, reason)
    return done
