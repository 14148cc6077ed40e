"""What two policy documents grant, compared grant by grant, never showing an External ID.

IAM hands documents back in its own shape (a one-element list becomes a string, statements
are reordered, Sids change), so documents are compared as sets of grants: one per effect,
principal, action and resource, with the statement's conditions. The External ID inside a
condition becomes a marker, so a grant's text can be printed; the values are compared apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gitlab_xacct.aws.iam import EXTERNAL_ID_KEY, PolicyDocument

EXTERNAL_ID_MARK = "(External ID)"

Condition = tuple[tuple[str, str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True, order=True)
class Grant:
    effect: str
    principal: str  # an ARN (AWS, Federated), a service name, "*"; "" in an identity policy
    action: str
    resource: str  # "" in a trust policy
    condition: Condition


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal is None:
        return [""]
    if principal == "*":
        return ["*"]
    if not isinstance(principal, dict):
        return [str(principal)]
    # ARNs, service names and canonical ids cannot be mistaken for each other: no kind prefix.
    return [str(value) for values in principal.values() for value in _as_list(values)]


def _condition(statement: dict[str, Any]) -> Condition:
    items = []
    for operator, pairs in (statement.get("Condition") or {}).items():
        for key, values in pairs.items():
            listed = [str(v) for v in _as_list(values)]
            if key.lower() == EXTERNAL_ID_KEY.lower():
                listed = [EXTERNAL_ID_MARK]
            items.append((operator, key, tuple(sorted(listed))))
    return tuple(sorted(items))


def grants(document: PolicyDocument | None) -> set[Grant]:
    found: set[Grant] = set()
    for statement in _as_list((document or {}).get("Statement", [])):
        condition = _condition(statement)
        # NotAction/NotResource are kept as text: a document of ours never has them, so any
        # such statement shows up as a difference instead of being misread.
        actions = _as_list(statement.get("Action", [f"NOT {statement.get('NotAction')}"]))
        resources = _as_list(statement.get("Resource", statement.get("NotResource", "")))
        for principal in _principals(statement):
            for action in actions:
                for resource in resources:
                    found.add(
                        Grant(
                            str(statement.get("Effect", "")),
                            principal,
                            str(action),
                            str(resource),
                            condition,
                        )
                    )
    return found


def external_ids(document: PolicyDocument | None) -> set[str]:
    """Every External ID a trust policy accepts (for comparison only: never print these)."""
    values: set[str] = set()
    for statement in _as_list((document or {}).get("Statement", [])):
        for pairs in (statement.get("Condition") or {}).values():
            for key, value in pairs.items():
                if key.lower() == EXTERNAL_ID_KEY.lower():
                    values.update(str(v) for v in _as_list(value))
    return values


def same(desired: PolicyDocument, current: PolicyDocument | None) -> bool:
    """Whether the documents grant the same, External ID values included."""
    return grants(desired) == grants(current) and external_ids(desired) == external_ids(current)


def _describe(condition: Condition) -> str:
    if not condition:
        return "no condition"
    return "; ".join(f"{op} {key} = {', '.join(values)}" for op, key, values in condition)


def trust_differences(desired: PolicyDocument, current: PolicyDocument) -> list[str]:
    """One line per difference of two trust policies, naming principals and actions."""
    lines = _grant_differences(
        grants(desired), grants(current), subject=lambda g: g.principal, what="trust"
    )
    wanted, found = external_ids(desired), external_ids(current)
    if wanted and found and wanted != found:
        lines.append(
            "trust: the External ID in the role's trust policy differs from the one given "
            "(neither is shown)"
        )
    return lines


def permission_differences(desired: PolicyDocument, current: PolicyDocument) -> list[str]:
    return _grant_differences(
        grants(desired), grants(current), subject=lambda g: g.resource, what="permissions"
    )


def _grant_differences(
    desired: set[Grant], current: set[Grant], *, subject: Any, what: str
) -> list[str]:
    missing, extra = desired - current, current - desired
    lines: list[str] = []

    # The same effect/principal/action/resource on both sides: only its conditions differ.
    def key(g: Grant) -> tuple[str, str, str, str]:
        return (g.effect, g.principal, g.action, g.resource)

    extra_by_key = {key(g): g for g in extra}
    changed = [(g, extra_by_key[key(g)]) for g in sorted(missing) if key(g) in extra_by_key]
    for want, have in changed:
        target = f" on {want.resource}" if want.resource else ""
        lines.append(
            f"{what}: {subject(want) or 'the policy'} {want.action}{target}: conditions differ "
            f"(expected {_describe(want.condition)}; found {_describe(have.condition)})"
        )
    done = {key(w) for w, _ in changed}
    for label, group in (
        ("is not allowed", [g for g in missing if key(g) not in done]),
        ("is also allowed (not asked for)", [g for g in extra if key(g) not in done]),
    ):
        for name, actions in _by_subject(group, subject).items():
            lines.append(f"{what}: {name} {label}: {', '.join(actions)}")
    return lines


def _by_subject(group: Iterable[Grant], subject: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for g in sorted(group):
        effect = "" if g.effect == "Allow" else f"{g.effect} "
        found[str(subject(g)) or "*"].append(f"{effect}{g.action}")
    return dict(sorted(found.items()))
