"""One line per check, which side to fix, and the fix; as text for people or JSON for tools.

Every string passes `secrets.mask` on the way out, and the checks never put a secret in one:
External IDs appear as "set (N characters)" and as a placeholder in policy documents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from gitlab_xacct.secrets import mask

Status = Literal["ok", "FAIL", "warn", "skipped"]

# Where the fix belongs: the account that runs the job, the account that owns ECR, or the
# CI/CD variables of the GitLab project. A cause AWS cannot pin down names two sides.
BUILD = "BUILD"
OURTHING = "OURTHING"
GITLAB = "GitLab variables"
# Sides of their own when AWS names them as the refusal: neither account's usual owners.
ORGANIZATION = "the organization's administrators"  # a service (or resource) control policy
BOUNDARY = "whoever set the permissions boundary"


@dataclass(frozen=True, slots=True)
class Cause:
    """A likely reason for a failure, with the side that would fix it."""

    text: str
    side: str

    def as_json(self) -> dict[str, str]:
        return {"cause": mask(self.text), "side": self.side}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    side: str = ""  # for FAIL and warn: where to fix it
    fix: str = ""
    exit_code: int = 0  # for FAIL: the exit code of the failure's class (docs/doctor.md)
    causes: tuple[Cause, ...] = ()  # likely causes, most likely first
    policies: tuple[tuple[str, dict[str, Any]], ...] = field(default=())  # (title, document)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "side": self.side or None,
            "detail": mask(self.detail),
            "fix": mask(self.fix) or None,
            "exit_code": self.exit_code,
            "causes": [cause.as_json() for cause in self.causes],
            "policies": [
                {"title": title, "document": json.loads(mask(json.dumps(doc)))}
                for title, doc in self.policies
            ],
        }


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def skipped(name: str, reason: str = "an earlier check failed") -> Check:
    return Check(name, "skipped", reason)


def exit_code(checks: list[Check]) -> int:
    """0 when nothing failed, else the exit code of the first failure."""
    return next((c.exit_code for c in checks if c.status == "FAIL"), 0)


def as_json(checks: list[Check]) -> str:
    code = exit_code(checks)
    return (
        json.dumps(
            {"ok": code == 0, "exit_code": code, "checks": [c.as_json() for c in checks]}, indent=2
        )
        + "\n"
    )


_WIDTH = 20  # the check-name column


def as_text(checks: list[Check]) -> str:
    lines = ["gitlab-xacct doctor"]
    pad = " " * (9 + _WIDTH + 2)
    for check in checks:
        side = f"[{check.side}] " if check.side and check.status in ("FAIL", "warn") else ""
        detail_lines = mask(check.detail).splitlines() or [""]
        lines.append(f"  {check.status:<7} {check.name:<{_WIDTH}} {side}{detail_lines[0]}")
        lines += [pad + line for line in detail_lines[1:]]
        if check.causes:
            lines.append(pad + "likely causes, most likely first:")
            for number, cause in enumerate(check.causes, start=1):
                lines.append(f"{pad}  {number}. [{cause.side}] {mask(cause.text)}")
        if check.fix:
            fix_lines = mask(check.fix).splitlines()
            lines.append(f"{pad}fix: {fix_lines[0]}")
            lines += [f"{pad}     {line}" for line in fix_lines[1:]]
        for title, document in check.policies:
            lines.append(f"{pad}{title}:")
            lines += [
                pad + "  " + line for line in mask(json.dumps(document, indent=2)).split("\n")
            ]
    failed = [c for c in checks if c.status == "FAIL"]
    warned = [c for c in checks if c.status == "warn"]
    if failed:
        lines.append(
            f"{len(failed)} check(s) failed; fix the first one first (exit {exit_code(checks)})"
        )
    else:
        lines.append("every check passed" + (f" ({len(warned)} warning(s))" if warned else ""))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class DestinationRun:
    """One XACCT_DESTINATIONS entry's checklist."""

    origin: str  # "XACCT_DESTINATIONS entry 2"
    where: str  # "ROLE_ARN REGION REPOSITORY" (never the entry's External ID)
    checks: list[Check]


def destinations_exit_code(runs: list[DestinationRun]) -> int:
    """0 when every destination passed, else the first failing destination's code."""
    return next((code for run in runs if (code := exit_code(run.checks))), 0)


def destinations_as_json(runs: list[DestinationRun]) -> str:
    code = destinations_exit_code(runs)
    listed = [
        {
            "destination": run.origin,
            "where": run.where,
            "ok": exit_code(run.checks) == 0,
            "exit_code": exit_code(run.checks),
            "checks": [c.as_json() for c in run.checks],
        }
        for run in runs
    ]
    return json.dumps({"ok": code == 0, "exit_code": code, "destinations": listed}, indent=2) + "\n"


def destinations_as_text(runs: list[DestinationRun]) -> str:
    parts = []
    for number, run in enumerate(runs, start=1):
        where = f": {run.where}" if run.where else ""
        parts.append(f"== destination {number} of {len(runs)} ({run.origin}){where}\n")
        parts.append(as_text(run.checks))
    failed = [run.origin for run in runs if exit_code(run.checks)]
    if failed:
        parts.append(f"{len(failed)} of {len(runs)} destination(s) failed: {', '.join(failed)}\n")
    else:
        parts.append(f"every destination passed ({len(runs)})\n")
    return mask("".join(parts))
