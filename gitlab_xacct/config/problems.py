"""Every problem of a command's settings at once, through the command's own resolvers.

Every command refuses bad settings the same way: one line each, all of them in one run (exit 2).
Before a command's settings resolve, each resolver they use runs on its own here and its
ConfigError is kept (`Problems`); two or more are raised together (`ConfigErrors`), one is left
for the settings to raise as they resolve. A resolver that depends on another's result (the
partition of the role and the region) runs only when both resolved. The doctor's first check
lists push's problems through the same `settings_problems`, so it refuses what push refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeVar

from gitlab_xacct.config import validate
from gitlab_xacct.config.engine import engine_options, platform_list
from gitlab_xacct.config.identity import (
    resolve_chain,
    resolve_duration,
    resolve_region,
    resolve_web_identity,
)
from gitlab_xacct.config.push import PushSettings, registry_endpoint, repository, resolve_report
from gitlab_xacct.config.resolver import Resolver, check_unknown_variables
from gitlab_xacct.config.source import resolve_source, resolve_tags
from gitlab_xacct.errors import ConfigError, ConfigErrors

T = TypeVar("T")

_SINGLE_VALUES: tuple[tuple[str, Callable[[str, str], object]], ...] = (
    ("session_name", validate.session_name),
    ("allowed_account_ids", validate.account_ids),
)


class Problems:
    """The ConfigErrors of steps that do not depend on one another, in order."""

    def __init__(self, found: list[str] | None = None) -> None:
        self.found: list[str] = found or []

    def attempt(self, step: Callable[[], T]) -> T | None:
        try:
            return step()
        except ConfigError as exc:
            self.found.append(str(exc))
            return None

    def raise_several(self) -> None:
        """Two problems or more: all of them, a line each. One is the settings' to raise."""
        if len(self.found) > 1:
            raise ConfigErrors(tuple(self.found))


def unknown_variables(env: Mapping[str, str], problems: Problems) -> None:
    """Each misspelt XACCT_* variable as its own problem."""
    token_variable = env.get("XACCT_ID_TOKEN_VARIABLE", "")
    for name in sorted(env):
        if name.startswith("XACCT_"):
            single = {name: env[name], "XACCT_ID_TOKEN_VARIABLE": token_variable}
            problems.attempt(partial(check_unknown_variables, single))


def settings_problems(r: Resolver, *, push: Resolver, image: bool) -> list[str]:
    """What is wrong with the settings, each problem on its own.

    `r` resolves the destination and identity (push's or the doctor's flags), `push` what push
    alone reads (the engine, platforms, reports, source and tags). With `image` (push itself)
    the source and the tags are required and a given External ID checked; the doctor needs
    neither and checks the External ID on its own (`doctor.config.check_external_id`).
    """
    env = r.env
    problems = Problems()
    unknown_variables(env, problems)
    if not (image and push.list("destinations")):  # the entries are push's to check, below
        identity_problems(r, problems)
        problems.attempt(lambda: registry_endpoint(r))
        problems.attempt(lambda: repository(r))
    if image:
        given_external_id(r, problems)
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


def identity_problems(r: Resolver, problems: Problems) -> None:
    """The problems of `IdentitySettings.resolve`'s inputs, and of the common flags."""
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
        if flag in r:
            problems.attempt(partial(r.boolean, flag))


def push_settings(env: Mapping[str, str], flags: Mapping[str, object]) -> PushSettings:
    """PushSettings, or every problem at once: one problem is its ConfigError as before, several
    are a ConfigErrors that the CLI prints one line each."""
    r = Resolver(env, flags, PushSettings.OPTIONS)
    Problems(settings_problems(r, push=r, image=True)).raise_several()
    return PushSettings.from_env(env, flags)


def given_external_id(r: Resolver, problems: Problems) -> None:
    """A given External ID against the one rule (the doctor checks its own, with more words)."""
    found = r.get("external_id")
    if found:
        problems.attempt(partial(validate.external_id, *found))


def identity_command_problems(r: Resolver, *steps: Callable[[], object]) -> None:
    """Every problem of a command that assumes the role (login, credentials): the variables'
    names, the identity, a given External ID, then the command's own `steps`; two or more are
    raised together."""
    problems = Problems()
    unknown_variables(r.env, problems)
    identity_problems(r, problems)
    given_external_id(r, problems)
    for step in steps:
        problems.attempt(step)
    problems.raise_several()
