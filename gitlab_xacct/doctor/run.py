"""The checks in order; after a failure the rest are skipped (they would fail for its reason)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gitlab_xacct import records
from gitlab_xacct.doctor import config, ecr, identity, registry
from gitlab_xacct.doctor.report import GITLAB, Check, DestinationRun, skipped
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.options import Option, Resolver
from gitlab_xacct.settings import DestinationEntry, destination_entries

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
    runs = []
    for entry in entries:
        own = {
            "XACCT_ROLE_ARN": str(entry.role_arn),
            "XACCT_REGION": entry.region,
            "XACCT_REPOSITORY": entry.repository,
        }
        if entry.external_id:
            own["XACCT_EXTERNAL_ID"] = entry.external_id.reveal()
        if entry.registry_endpoint:
            own["XACCT_REGISTRY_ENDPOINT"] = entry.registry_endpoint
        where = f"{entry.role_arn} {entry.region} {entry.repository}"
        checks = diagnose(base | own, alone, options)
        runs.append(DestinationRun(entry.origin, where, _renamed(checks, entry, set(own))))
    return runs


def _renamed(checks: list[Check], entry: DestinationEntry, from_entry: set[str]) -> list[Check]:
    """The checks ran with the entry's values as XACCT_* variables; say where they came from,
    so a fix names the field of the entry to change, not a variable the job does not set."""
    fields = {
        "XACCT_ROLE_ARN": "the role ARN",
        "XACCT_REGION": "the region",
        "XACCT_REPOSITORY": "the repository",
        "XACCT_EXTERNAL_ID": "the External ID",
        "XACCT_REGISTRY_ENDPOINT": "the endpoint",
    }

    def said(text: str) -> str:
        for variable in sorted(from_entry, key=len, reverse=True):
            text = text.replace(variable, f"{fields[variable]} of {entry.origin}")
        return text

    return [
        records.replace(
            check,
            detail=said(check.detail),
            fix=said(check.fix),
            causes=tuple(records.replace(c, text=said(c.text)) for c in check.causes),
        )
        for check in checks
    ]


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
