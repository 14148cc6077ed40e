"""The checks in order; after a failure the rest are skipped (they would fail for its reason)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gitlab_xacct.doctor import config, ecr, identity, registry
from gitlab_xacct.doctor.report import Check, skipped
from gitlab_xacct.options import Option, Resolver

log = logging.getLogger(__name__)

# Every check's name, in the order they run (the JSON report lists each, whatever happened).
NAMES = (
    config.SETTINGS,
    config.EXTERNAL_ID,
    identity.BASE,
    identity.ASSUME,
    ecr.TOKEN,
    ecr.REPOSITORY,
    # /v2/ before the upload probe: an unreachable registry would otherwise read as a refusal.
    registry.REACHABLE,
    registry.PUSH,
)


def diagnose(
    env: Mapping[str, str], flags: Mapping[str, object], options: tuple[Option, ...]
) -> list[Check]:
    checks: list[Check] = []
    try:
        _run(env, flags, options, checks)
    except Exception as exc:  # a doctor reports: even the unforeseen becomes a FAIL line
        log.debug("unexpected error", exc_info=True)
        name = NAMES[len(checks)] if len(checks) < len(NAMES) else "doctor"
        checks.append(
            Check(
                name,
                "FAIL",
                f"unexpected error: {type(exc).__name__}: {exc}",
                fix="rerun with --debug and report it",
                exit_code=1,
            )
        )
    checks += [skipped(name) for name in NAMES[len(checks) :]]
    return checks


def _run(
    env: Mapping[str, str],
    flags: Mapping[str, object],
    options: tuple[Option, ...],
    checks: list[Check],
) -> None:
    def add(check: Check) -> bool:
        checks.append(check)
        return check.status != "FAIL"

    r = Resolver(env, flags, options)
    settings_ok = add(config.check_settings(r))
    if not (add(config.check_external_id(r)) and settings_ok):
        return
    settings = config.build_settings(r)
    ident = settings.identity

    check, caller = identity.check_base_identity(ident)
    if not add(check) or caller is None:
        return
    check, role = identity.check_assume(ident, caller)
    if not add(check) or role is None:
        return
    check, found = ecr.check_token(settings, role)
    if not add(check) or found is None:
        return
    if not add(ecr.check_repository(settings, role, found.client, env)):
        return
    with registry.connect(settings, found.login) as client:
        if add(registry.check_reachable(settings, client)):
            add(registry.check_push(settings, client))
