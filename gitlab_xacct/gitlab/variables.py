"""CI/CD variables of a project or a group, set idempotently; GitLab's masking rule; CI lint.

One list call reads every variable (all scopes), the plan compares each wanted variable with the
one of the same key *and* environment scope, and only then anything is written: a create when
there is none, an update in place (`filter[environment_scope]`, so another scope's variable of
the same key is never touched) when a value or a flag differs, nothing when all agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from gitlab_xacct.gitlab import Connection, translate_errors

if TYPE_CHECKING:
    from gitlab.v4.objects import Group, GroupVariableManager, Project, ProjectVariableManager

HIDDEN_SINCE = (17, 4)  # masked_and_hidden, settable at creation only

Action = Literal["create", "update", "rewrite", "recreate", "unchanged"]


@dataclass(frozen=True, slots=True)
class Wanted:
    """A variable as it should be. `secret` values are masked, protected, hidden where the
    server can, and never printed."""

    key: str
    value: str = field(repr=False)
    secret: bool = False

    @property
    def masked(self) -> bool:
        return self.secret

    @property
    def protected(self) -> bool:
        return self.secret


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    action: Action
    fields: tuple[str, ...] = ()  # what differs: value, masked, protected, variable_type
    notes: tuple[str, ...] = ()
    hidden: bool = False

    def line(self, *, dry_run: bool) -> str:
        verbs = {
            "create": ("created", "would be created"),
            "update": ("updated", "would be updated"),
            "rewrite": ("written again", "would be written again"),
            "recreate": ("deleted and created again", "would be deleted and created again"),
            "unchanged": ("unchanged", "unchanged"),
        }
        text = f"{self.key}: {verbs[self.action][dry_run]}"
        details = [*(f"{name} differed" for name in self.fields), *self.notes]
        return f"{text} ({'; '.join(details)})" if details else text


def plan(
    existing: Sequence[Mapping[str, Any]],
    wanted: Sequence[Wanted],
    scope: str,
    *,
    can_hide: bool,
    recreate_hidden: bool = False,
) -> list[Change]:
    """Compare without writing; `existing` is every variable of the project or group."""
    changes = []
    for want in wanted:
        same = [
            v for v in existing if v.get("key") == want.key and v.get("environment_scope") == scope
        ]
        hide = want.secret and can_hide
        if not same:
            changes.append(Change(want.key, "create", hidden=hide, notes=_flags(want, hide)))
            continue
        current = same[0]
        is_hidden = current.get("hidden") is True
        differ = tuple(
            name
            for name, ok in (
                ("value", is_hidden or current.get("value") == want.value),
                ("masked", is_hidden or bool(current.get("masked")) == want.masked),
                ("protected", bool(current.get("protected")) == want.protected),
                ("variable_type", current.get("variable_type", "env_var") == "env_var"),
            )
            if not ok
        )
        if hide and not is_hidden and recreate_hidden:
            changes.append(Change(want.key, "recreate", hidden=True, notes=_flags(want, True)))
        elif is_hidden:
            note = "hidden: GitLab never shows its value, so it cannot be compared"
            changes.append(Change(want.key, "rewrite", differ, (note,), hidden=True))
        else:
            notes = (
                ("not hidden: GitLab hides a variable only when it is created; run again with "
                 "--recreate-hidden to delete and create it hidden",)
                if hide else ()
            )  # fmt: skip
            changes.append(Change(want.key, "update" if differ else "unchanged", differ, notes))
    return changes


def _flags(want: Wanted, hidden: bool) -> tuple[str, ...]:
    flags = [name for name, on in (("masked", want.masked), ("protected", want.protected)) if on]
    if hidden:
        flags.append("hidden")
    return (", ".join(flags),) if flags else ()


@dataclass(frozen=True, slots=True)
class Target:
    """The project or group whose variables are set, as GitLab names it."""

    kind: Literal["project", "group"]
    ident: str  # numeric id or full path, as given
    label: str  # "project team/app (id 42)"
    owner: Project | Group

    @property
    def manager(self) -> ProjectVariableManager | GroupVariableManager:
        return self.owner.variables


def open_target(conn: Connection, kind: Literal["project", "group"], ident: str) -> Target:
    """GET /projects/:id (or /groups/:id): a missing or invisible one fails here, by name."""
    what = f"{kind} {ident}"
    with translate_errors(conn.server, what, kind):
        if kind == "project":
            project = conn.api.projects.get(ident)
            label = f"project {project.path_with_namespace} (id {project.id})"
            return Target(kind, ident, label, project)
        group = conn.api.groups.get(ident)
        label = f"group {group.full_path} (id {group.id})"
        return Target(kind, ident, label, group)


def read_all(conn: Connection, target: Target) -> list[dict[str, Any]]:
    with translate_errors(conn.server, f"the CI/CD variables of {target.label}", target.kind):
        return [dict(v.attributes) for v in target.manager.list(get_all=True, per_page=100)]


def apply(
    conn: Connection,
    target: Target,
    changes: Sequence[Change],
    wanted: Sequence[Wanted],
    scope: str,
) -> list[Change]:
    """Write the plan; returns it with what the server reported (hidden or not)."""
    by_key = {w.key: w for w in wanted}
    done = []
    for change in changes:
        want = by_key[change.key]
        what = f"{target.label}: variable {change.key} (environment scope {scope})"
        with translate_errors(conn.server, what, target.kind):
            if change.action == "recreate":
                target.manager.delete(change.key, filter={"environment_scope": scope})
            if change.action in ("create", "recreate"):
                done.append(_create(target, change, want, scope))
                continue
            if change.action in ("update", "rewrite"):
                data: dict[str, Any] = {
                    "value": want.value,
                    "protected": want.protected,
                    "variable_type": "env_var",
                }
                if change.action == "update":  # a hidden variable's visibility is fixed
                    data["masked"] = want.masked
                target.manager.update(change.key, data, filter={"environment_scope": scope})
        done.append(change)
    return done


def _create(target: Target, change: Change, want: Wanted, scope: str) -> Change:
    data: dict[str, Any] = {
        "key": want.key,
        "value": want.value,
        "environment_scope": scope,
        "masked": want.masked,
        "protected": want.protected,
        "variable_type": "env_var",
    }
    if change.hidden:
        data["masked_and_hidden"] = True
    created = target.manager.create(data)
    if change.hidden and created.attributes.get("hidden") is not True:
        # The server ignored masked_and_hidden (a version that predates it): say so.
        note = "masked, protected; not hidden: this GitLab does not hide variables"
        return Change(change.key, change.action, notes=(note,))
    return change


@dataclass(frozen=True, slots=True)
class LintResult:
    valid: bool
    errors: tuple[str, ...]
    warnings: tuple[str, ...]


def lint(conn: Connection, target: Target, content: str, ci_file: str) -> LintResult:
    """POST /projects/:id/ci/lint with the file's content."""
    from gitlab.v4.objects import Project

    if not isinstance(target.owner, Project):
        raise TypeError("CI lint is an API of projects")
    with translate_errors(conn.server, f"CI lint of {ci_file} in {target.label}", "project"):
        answer = target.owner.ci_lint.create({"content": content}).attributes
    return LintResult(
        bool(answer.get("valid")),
        tuple(str(e) for e in answer.get("errors") or ()),
        tuple(str(w) for w in answer.get("warnings") or ()),
    )
