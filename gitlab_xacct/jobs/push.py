"""`gitlab-xacct push`: assume each target role, log into its ECR, push the image, report."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace

from gitlab_xacct import log as xlog
from gitlab_xacct.aws import ecr
from gitlab_xacct.aws.identity import assume_target
from gitlab_xacct.config.push import Destination, PushSettings
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry import remote
from gitlab_xacct.registry.client import Credentials, Registry
from gitlab_xacct.registry.image import SourceImage
from gitlab_xacct.registry.platforms import choose_platforms
from gitlab_xacct.registry.push import PushResult, Target, push_many
from gitlab_xacct.registry.sources import open_source
from gitlab_xacct.report import annotations_report, dotenv_lines, ecr_console_url, write_atomically

log = logging.getLogger(__name__)


def push(settings: PushSettings, env: Mapping[str, str]) -> list[PushResult]:
    """The whole job as a library call; one result per destination, in order."""
    # The source is opened first: a bad archive is the user's to fix and costs no AWS call,
    # and all input is known good before the log says anything.
    with _open(settings, env) as image, ExitStack() as clients:
        xlog.preamble("push", settings.summary(), image)

        targets = []
        for number, destination in enumerate(settings.destinations, start=1):
            suffix = f" ({number}/{len(settings.destinations)})" if number > 1 else ""
            targets.append(_connect(settings, destination, env, suffix))
            clients.callback(targets[-1].registry.close)

        with xlog.section("xacct_push", "Push", env):
            for target in targets:
                target.registry.ping()
            results = push_many(targets, image, settings.tags, options=settings.engine)

    if settings.dotenv:
        write_atomically(settings.dotenv, dotenv_lines(results))
        log.info("wrote %s", settings.dotenv)
    if settings.annotations:
        write_atomically(
            settings.annotations, annotations_report(_console_links(settings, results))
        )
        log.info("wrote %s", settings.annotations)
    for result in results:
        log.info(
            "pushed %s (%d blobs uploaded, %d mounted, %d already present)",
            result.uri,
            result.blobs_uploaded,
            result.blobs_mounted,
            result.blobs_present,
        )
    return results


def _console_links(settings: PushSettings, results: list[PushResult]) -> list[tuple[str, str]]:
    """Each destination's image in the ECR console: the role's account and partition, the
    destination's region and repository (also when a registry endpoint stood in for ECR)."""
    links = []
    for destination, result in zip(settings.destinations, results, strict=True):
        identity = destination.identity
        role = identity.target.role
        url = ecr_console_url(
            role.partition, role.account, identity.region, destination.repository, result.digest
        )
        label = f"{destination.repository}@{result.digest[:19]} in {role.account} {identity.region}"
        links.append((f"ECR: {label}", url))
    return links


def _connect(
    settings: PushSettings, destination: Destination, env: Mapping[str, str], suffix: str
) -> Target:
    """Assume the destination's role, make sure its repository exists, log into its registry."""
    identity = destination.identity
    with xlog.section("xacct_identity", f"Assume role{suffix}", env):
        role = assume_target(identity)
    account = identity.target.role.account
    with xlog.section("xacct_ecr", f"ECR login{suffix}", env):
        client = ecr.ecr_client(role, identity.region)
        immutable = ecr.ensure_repository(
            client,
            repository=destination.repository,
            account=account,
            region=identity.region,
            create=settings.create_repository,
            role=role.arn,
        )
        login = ecr.login(client, account=account, region=identity.region, role=role.arn)
        endpoint = destination.registry_endpoint or login.endpoint
        if destination.registry_endpoint:
            log.info("registry endpoint %s (ECR names %s)", endpoint, login.endpoint)

    def relogin() -> Credentials:
        """A registry that stops taking the token mid-push gets one fresh token, once."""
        log.warning("registry %s refused the ECR token; asking ECR for a new one", endpoint)
        fresh = ecr.login(client, account=account, region=identity.region, role=role.arn)
        return Credentials(fresh.username, fresh.password)

    registry = Registry(
        endpoint,
        Credentials(login.username, login.password),
        refresh=relogin,
        network=settings.engine.network,
        env=env,
    )
    return Target(registry, destination.repository, immutable_tags=immutable)


@contextmanager
def _open(settings: PushSettings, env: Mapping[str, str]) -> Iterator[SourceImage]:
    """Open the source (naming its variable when unreadable) and apply XACCT_PLATFORMS.

    A docker:// source finds its credentials in `env` (XACCT_SRC_CREDS, the Docker config,
    CI_REGISTRY_*), as `copy` does.
    """
    access = None
    if settings.source.transport == "docker":  # the same timeouts and retries as the push
        found = remote.source_access(settings.source.image.api_host, env)
        access = replace(found, network=settings.engine.network)
    with ExitStack() as stack:
        try:
            image = stack.enter_context(open_source(settings.source, env=env, access=access))
        except ConfigError as exc:
            raise ConfigError(f"{settings.source_origin}: {exc}") from None
        yield choose_platforms(image, settings.platforms, settings.platforms_origin)
