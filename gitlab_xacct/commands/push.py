"""`gitlab-xacct push`: assume the target role, log into ECR, push the image, report the digest."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from gitlab_xacct import log as xlog
from gitlab_xacct.aws import ecr
from gitlab_xacct.aws.identity import assume_target
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.client import Credentials, Registry
from gitlab_xacct.registry.image import ImageIndex, SourceImage
from gitlab_xacct.registry.push import PushResult, push_image
from gitlab_xacct.registry.sources import open_source
from gitlab_xacct.report import dotenv_lines, write_atomically
from gitlab_xacct.settings import PushSettings

log = logging.getLogger(__name__)


def push(settings: PushSettings, env: Mapping[str, str]) -> PushResult:
    """The whole job as a library call; `env` only decides how the log looks (GitLab or not)."""
    # The source is opened first: a bad archive is the user's to fix and costs no AWS call,
    # and all input is known good before the log says anything.
    with _open(settings) as image:
        log.info("gitlab-xacct push")
        for key, value in settings.summary():
            log.info("  %-18s %s", key + ":", value)
        kind = (
            f"index of {len(image.children)} images" if isinstance(image, ImageIndex) else "image"
        )
        log.info("source: %s %s", kind, image.digest)

        with xlog.section("xacct_identity", "Assume role", env):
            role = assume_target(settings.identity)

        identity = settings.identity
        target = identity.target.role
        with xlog.section("xacct_ecr", "ECR login", env):
            client = ecr.ecr_client(role, identity.region)
            ecr.ensure_repository(
                client,
                repository=settings.repository,
                account=target.account,
                region=identity.region,
                create=settings.create_repository,
                role=role.arn,
            )
            login = ecr.login(client, account=target.account, region=identity.region, role=role.arn)
            endpoint = settings.registry_endpoint or login.endpoint
            if settings.registry_endpoint:
                log.info("registry endpoint %s (ECR names %s)", endpoint, login.endpoint)

        with (
            xlog.section("xacct_push", "Push", env),
            Registry(endpoint, Credentials(login.username, login.password)) as registry,
        ):
            registry.ping()
            result = push_image(registry, settings.repository, image, settings.tags)

    if settings.dotenv:
        write_atomically(settings.dotenv, dotenv_lines(result))
        log.info("wrote %s", settings.dotenv)
    log.info(
        "pushed %s (%d blobs uploaded, %d already present)",
        result.uri,
        result.blobs_uploaded,
        result.blobs_present,
    )
    return result


@contextmanager
def _open(settings: PushSettings) -> Iterator[SourceImage]:
    """Open the source, naming the variable or flag it came from when it is unreadable."""
    try:
        opened = open_source(settings.source)
        image = opened.__enter__()
    except ConfigError as exc:
        raise ConfigError(f"{settings.source_origin}: {exc}") from None
    try:
        yield image
    finally:
        opened.__exit__(None, None, None)
