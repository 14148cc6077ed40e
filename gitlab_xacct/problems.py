"""Every problem of push's settings at once, through push's own resolvers.

`push` refuses bad settings one line each, all of them in one run (exit 2), and the doctor's
first check lists the same problems in the same words: both call `settings_problems`, so the
doctor refuses exactly what push refuses. Each resolver runs on its own; one that depends on
another's result (the partition of the role and the region) runs only when both resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeVar

from gitlab_xacct import validate
from gitlab_xacct.engine_settings import engine_options, platform_list
from gitlab_xacct.errors import ConfigError, ConfigErrors
from gitlab_xacct.options import Resolver, check_unknown_variables
from gitlab_xacct.settings import (
    PushSettings,
    registry_endpoint,
    repository,
    resolve_chain,
    resolve_duration,
    resolve_region,
    resolve_report,
    resolve_source,
    resolve_tags,
    resolve_web_identity,
)

T = TypeVar("T")

_SINGLE_VALUES: tuple[tuple[str, Callable[[str, str], object]], ...] = (
    ("session_name", validate.session_name),
    ("allowed_account_ids", validate.account_ids),
)


class Problems:
    """The ConfigErrors of steps that do not depend on one another, in order."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def attempt(self, step: Callable[[], T]) -> T | None:
        try:
            return step()
        except ConfigError as exc:
            self.found.append(str(exc))
            return None


def settings_problems(r: Resolver, *, push: Resolver, image: bool) -> list[str]:
    """What is wrong with the settings, each problem on its own.

    `r` resolves the destination and identity (push's or the doctor's flags), `push` what push
    alone reads (the engine, platforms, reports, source and tags). With `image` (push itself)
    the source and the tags are required and a given External ID checked; the doctor needs
    neither and checks the External ID on its own (`doctor.config.check_external_id`).
    """
    env = r.env
    problems = Problems()
    token_variable = env.get("XACCT_ID_TOKEN_VARIABLE", "")
    for name in sorted(env):
        if name.startswith("XACCT_"):
            single = {name: env[name], "XACCT_ID_TOKEN_VARIABLE": token_variable}
            problems.attempt(partial(check_unknown_variables, single))
    if not (image and push.list("destinations")):  # the entries are push's to check, below
        _identity_and_destination(r, problems)
    if image:
        found = r.get("external_id")
        if found:
            problems.attempt(partial(validate.external_id, *found))
    problems.attempt(lambda: engine_options(push))
    problems.attempt(lambda: platform_list(push))
    problems.attempt(lambda: resolve_report(push, "dotenv"))
    problems.attempt(lambda: resolve_report(push, "annotations"))
    env_tags = env.get("CI_COMMIT_SHORT_SHA") or env.get("CI_COMMIT_TAG")
    if image or push.get("source"):
        problems.attempt(lambda: resolve_source(push))
    if image or push.list("tags") or env_tags:
        problems.attempt(lambda: resolve_tags(push))
    return problems.found


def _identity_and_destination(r: Resolver, problems: Problems) -> None:
    role = problems.attempt(
        lambda: validate.role_arn(*r.required("role_arn", "the ARN of the role to assume"))
    )
    region = problems.attempt(lambda: resolve_region(r))
    chain = problems.attempt(lambda: resolve_chain(r)) or []
    web = problems.attempt(lambda: resolve_web_identity(r))
    # Its format, and over an hour where a hop is known to be chained (OIDC, XACCT_ROLE_CHAIN).
    problems.attempt(lambda: resolve_duration(r.get("duration_seconds"), tuple(chain), web))
    for arn in [*([role] if role else []), *(hop.role for hop in chain)]:
        if region:
            problems.attempt(partial(validate.same_partition, arn, *region))
    for dest, check in _SINGLE_VALUES:
        found = r.get(dest)
        if found:
            problems.attempt(partial(check, *found))
    for flag in ("session_tags", "create_repository", "debug"):
        problems.attempt(partial(r.boolean, flag))
    problems.attempt(lambda: registry_endpoint(r))
    problems.attempt(lambda: repository(r))


def push_settings(env: Mapping[str, str], flags: Mapping[str, object]) -> PushSettings:
    """PushSettings, or every problem at once: one problem is its ConfigError as before, several
    are a ConfigErrors that the CLI prints one line each."""
    r = Resolver(env, flags, PushSettings.OPTIONS)
    found = settings_problems(r, push=r, image=True)
    if len(found) > 1:
        raise ConfigErrors(tuple(found))
    return PushSettings.from_env(env, flags)
