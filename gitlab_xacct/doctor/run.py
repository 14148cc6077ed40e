"""The checks in order; after a failure the rest are skipped (they would fail for its reason)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gitlab_xacct.config.options import Option
from gitlab_xacct.config.push import DestinationEntry, destination_entries, entry_values
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.doctor import config, ecr, identity, registry
from gitlab_xacct.doctor.report import GITLAB, Check, DestinationRun, skipped
from gitlab_xacct.errors import ConfigError

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


def per_destination(
    env: Mapping[str, str], flags: Mapping[str, object], options: tuple[Option, ...]
) -> list[DestinationRun] | None:
    """With XACCT_DESTINATIONS (or --destination): each entry diagnosed as the single
    destination it is (its role, region, repository, and its own External ID or endpoint when
    the entry has them). None without entries; entries that cannot be read are one failed
    settings check."""
    r = Resolver(env, flags, options)
    try:
        entries = destination_entries(r)
    except ConfigError as exc:
        failed = Check(
            config.SETTINGS, "FAIL", str(exc), side=GITLAB,
            fix="correct that entry of XACCT_DESTINATIONS", exit_code=ConfigError.exit_code,
        )  # fmt: skip
        checks = [failed, *(skipped(name) for name in NAMES[1:])]
        return [DestinationRun("XACCT_DESTINATIONS", "", checks)]
    if not entries:
        return None
    base = {k: v for k, v in env.items() if k != "XACCT_DESTINATIONS"}
    alone = {k: v for k, v in flags.items() if k != "destinations"}
    shared = Resolver(base, alone, options)
    runs = []
    for entry in entries:
        # Its fields in place of XACCT_ROLE_ARN and friends, named as the entry's in messages.
        checks = diagnose(shared.pinned(entry_values(entry)), entry)
        where = f"{entry.role_arn} {entry.region} {entry.repository}"
        runs.append(DestinationRun(entry.origin, where, checks))
    return runs


def diagnose(r: Resolver, entry: DestinationEntry | None = None) -> list[Check]:
    """The checklist for the one destination of the variables, or for `entry`."""
    checks: list[Check] = []
    try:
        _run(r, entry, checks)
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


def _run(r: Resolver, entry: DestinationEntry | None, checks: list[Check]) -> None:
    def add(check: Check) -> bool:
        checks.append(check)
        return check.status != "FAIL"

    settings_ok = add(config.check_settings(r))
    if not (add(config.check_external_id(r)) and settings_ok):
        return
    settings = config.build_settings(r, entry)
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
    if not add(ecr.check_repository(settings, role, found.client, r.env)):
        return
    with registry.connect(settings, found.login, r.env) as client:
        if add(registry.check_reachable(settings, client)):
            add(registry.check_push(settings, client))
