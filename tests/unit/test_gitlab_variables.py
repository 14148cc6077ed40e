"""gitlab configure without a server: GitLab's masking rule, the plan, settings, error lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from gitlab_xacct.cli import main
from gitlab_xacct.commands.gitlab_configure import ConfigureSettings
from gitlab_xacct.config.validate import GITLAB_MASKABLE, gitlab_mask_problem
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.gitlab import Connection, Server, http_error
from gitlab_xacct.gitlab.variables import HIDDEN_SINCE, Change, Wanted, plan
from gitlab_xacct.secrets import Secret

# GitLab's Ci::Maskable::REGEX, as GitLab writes it (Ruby's \A and \z are Python's \A and \Z).
GITLAB_REGEX = re.compile(r"\A[a-zA-Z0-9_+=/@:.~-]{8,}\Z")
EXTERNAL_ID = "sentinel-ExtId-7f3a9c21e4b8d065"
TOKEN = "glpat-unit-sentinel-42"
BASE_ENV = {
    "CI_SERVER_URL": "https://gitlab.example.com",
    "CI_PROJECT_ID": "42",
    "GITLAB_TOKEN": TOKEN,
    "XACCT_EXTERNAL_ID": EXTERNAL_ID,
}


@pytest.mark.parametrize(
    "value",
    [
        "abcdefgh", "A1b2C3d4", "a+b/c=d_e-f", "user@host:port.x~y", "12345678",
        "abcdefg", "", "abc defgh", "abcdefgh\n", "abcd\nefgh", "tab\there1", "comma,is,out",
        "dollar$VAR1", "pipe|pipe|", "unicodé12", "quote'quote", "a" * 300,
    ],
)  # fmt: skip
def test_mask_rule_is_gitlabs_regex(value: str) -> None:
    assert (gitlab_mask_problem(value) is None) == bool(GITLAB_REGEX.match(value))
    assert (GITLAB_MASKABLE.fullmatch(value) is not None) == bool(GITLAB_REGEX.match(value))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("short12", "7 characters long"),
        ("two\nlines1", "several lines"),
        ("has space1", "whitespace at position 4"),
        ("Ext,Id,with,commas", "at position 4"),
    ],
)
def test_mask_problem_says_why_without_the_value(value: str, reason: str) -> None:
    problem = gitlab_mask_problem(value)
    assert problem is not None
    assert reason in problem
    assert value not in problem


def wanted() -> list[Wanted]:
    return [
        Wanted("XACCT_REGION", "eu-west-1"),
        Wanted("XACCT_EXTERNAL_ID", EXTERNAL_ID, secret=True),
    ]


def existing(key: str, value: str | None, scope: str = "*", **flags: object) -> dict[str, object]:
    return {"key": key, "value": value, "environment_scope": scope, "variable_type": "env_var",
            "masked": False, "protected": False, "hidden": False, **flags}  # fmt: skip


def test_plan_creates_what_is_missing_and_leaves_other_scopes_alone() -> None:
    other_scope = [existing("XACCT_REGION", "eu-west-1", "production")]
    changes = plan(other_scope, wanted(), "*", can_hide=True)
    assert [(c.key, c.action, c.hidden) for c in changes] == [
        ("XACCT_REGION", "create", False),
        ("XACCT_EXTERNAL_ID", "create", True),
    ]
    assert (
        changes[1].line(dry_run=False) == "XACCT_EXTERNAL_ID: created (masked, protected, hidden)"
    )


def test_plan_unchanged_and_updates_naming_fields_not_values() -> None:
    current = [
        existing("XACCT_REGION", "eu-west-1"),
        existing("XACCT_EXTERNAL_ID", "old-value-123", masked=True, protected=False),
    ]
    region, secret = plan(current, wanted(), "*", can_hide=False)
    assert region.line(dry_run=False) == "XACCT_REGION: unchanged"
    assert secret.action == "update"
    assert secret.fields == ("value", "protected")
    line = secret.line(dry_run=True)
    assert line == "XACCT_EXTERNAL_ID: would be updated (value differed; protected differed)"


def test_plan_file_type_variable_is_turned_into_env_var() -> None:
    current = [existing("XACCT_REGION", "eu-west-1", variable_type="file")]
    (change,) = plan(current, wanted()[:1], "*", can_hide=False)
    assert change.fields == ("variable_type",)


def test_plan_hidden_variable_is_written_again_and_visible_one_can_be_recreated() -> None:
    hidden = [existing("XACCT_EXTERNAL_ID", None, masked=True, protected=True, hidden=True)]
    (change,) = plan(hidden, wanted()[1:], "*", can_hide=True)
    assert (change.action, change.fields) == ("rewrite", ())

    visible = [existing("XACCT_EXTERNAL_ID", EXTERNAL_ID, masked=True, protected=True)]
    (kept,) = plan(visible, wanted()[1:], "*", can_hide=True)
    assert kept.action == "unchanged"
    assert "--recreate-hidden" in kept.line(dry_run=False)
    (recreated,) = plan(visible, wanted()[1:], "*", can_hide=True, recreate_hidden=True)
    assert (recreated.action, recreated.hidden) == ("recreate", True)


def test_change_line_for_every_action() -> None:
    assert (
        Change("K", "rewrite", notes=("n",)).line(dry_run=True) == "K: would be written again (n)"
    )
    assert Change("K", "recreate").line(dry_run=False) == "K: deleted and created again"


def settings(env: dict[str, str], **flags: object) -> ConfigureSettings:
    return ConfigureSettings.from_env(env, flags)


def test_settings_defaults_from_ci_variables() -> None:
    resolved = settings(BASE_ENV)
    assert (resolved.url, resolved.kind, resolved.ident, resolved.scope) == (
        "https://gitlab.example.com", "project", "42", "*",
    )  # fmt: skip
    assert resolved.values == (("XACCT_EXTERNAL_ID", EXTERNAL_ID, True),)
    assert resolved.token_origin == "GITLAB_TOKEN"
    assert TOKEN not in repr(resolved)
    assert EXTERNAL_ID not in repr(resolved)


def test_token_file_wins_and_is_stripped(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  file-token-123\n")
    resolved = settings(BASE_ENV, token_file=str(token_file))
    assert resolved.token == Secret("file-token-123")
    assert resolved.token_origin == f"--token-file {token_file}"


@pytest.mark.parametrize(
    ("env_change", "flags", "message"),
    [
        ({"GITLAB_TOKEN": ""}, {}, "GITLAB_TOKEN: not set; give an access token"),
        ({"GITLAB_TOKEN": "", "CI_JOB_TOKEN": "job-token-1"}, {}, "CI_JOB_TOKEN cannot write"),
        ({"CI_JOB_TOKEN": TOKEN}, {}, "GITLAB_TOKEN: this is the job's CI_JOB_TOKEN"),
        ({"CI_SERVER_URL": "http://gitlab.example.com"}, {}, "the token would travel"),
        ({"CI_SERVER_URL": "https://gitlab.example.com/api/v4"}, {}, "without /api/v4"),
        ({"CI_SERVER_URL": "https://u:p@gitlab.example.com"}, {}, "no credentials"),
        ({"CI_SERVER_URL": ""}, {}, "--gitlab-url: not set and no CI_SERVER_URL"),
        ({"CI_PROJECT_ID": ""}, {}, "--project: not set and no CI_PROJECT_ID"),
        ({}, {"project": "https://gitlab.example.com/team/app"}, "id or path (team/app)"),
        ({}, {"project": "team app"}, "is not a project id or path"),
        ({}, {"project": "a", "group": "b"}, "--group: give --project or --group, not both"),
        ({}, {"group": "team", "lint": True}, "--lint: CI lint checks a project's CI file"),
        ({}, {"environment_scope": "prod|uction"}, "--environment-scope: 'prod|uction' is not"),
        ({"XACCT_EXTERNAL_ID": ""}, {}, "nothing to do: set one of XACCT_ROLE_ARN"),
        ({"XACCT_REGION": "Europe"}, {}, "XACCT_REGION"),
        ({"XACCT_ROLE_ARN": "arn:aws:iam::12:role/x"}, {}, "XACCT_ROLE_ARN"),
        ({"XACCT_EXTERNAL_ID": "short12"}, {}, "XACCT_EXTERNAL_ID: GitLab could not mask this"),
        ({"XACCT_EXTERNAL_ID": "has space here"}, {}, "XACCT_EXTERNAL_ID: the External ID has a"),
        ({"XACCT_RGION": "eu-west-1"}, {}, "did you mean XACCT_REGION?"),
    ],
)  # fmt: skip
def test_bad_settings_are_one_config_error(
    env_change: dict[str, str], flags: dict[str, object], message: str
) -> None:
    env = {k: v for k, v in {**BASE_ENV, **env_change}.items() if v}
    with pytest.raises(ConfigError) as raised:
        settings(env, **flags)
    assert message in str(raised.value)


def test_unreadable_token_file_and_ci_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--token-file: cannot read .*FileNotFoundError"):
        settings(BASE_ENV, token_file=str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        settings(BASE_ENV, token_file=str(empty))
    with pytest.raises(ConfigError, match=r"--ci-file: cannot read"):
        settings(BASE_ENV, lint=True, ci_file=str(tmp_path / "nope.yml"))


EXPIRED = {"error": "invalid_token", "error_description": "Token has expired."}
TAKEN = {"message": {"key": ["(K) has already been taken"]}}
HIDDEN = {"message": {"base": ["The visibility setting cannot be changed for masked and hidden."]}}
SERVER = Server("https://gitlab.example.com", Secret(TOKEN), "GITLAB_TOKEN")


@pytest.mark.parametrize(
    ("status", "body", "code", "text"),
    [
        (401, {"message": "401 Unauthorized"}, 4, "GITLAB_TOKEN: GitLab at https://gitlab.exa"),
        (401, EXPIRED, 4, "(401 Unauthorized: Token has expired.)"),
        (403, {"error": "insufficient_scope", "scope": "api"}, 4, "lacks the api scope"),
        (403, {"message": "403 Forbidden"}, 4, "needs the Maintainer role on the project"),
        (404, {"message": "404 Project Not Found"}, 4, "X: not found (404 Project Not Found)"),
        (409, {"message": "There are multiple variables"}, 2, "--environment-scope"),
        (400, TAKEN, 2, "(400: key (K) has already been taken); someone"),
        (400, HIDDEN, 2, "keeps its visibility"),
        (422, {"message": {"value": ["is invalid"]}}, 2, "GitLab cannot mask this value"),
        (503, {"message": "503"}, 5, "failed (503); try again later"),
        (418, {"error": "teapot"}, 2, "GitLab answered 418: teapot"),
    ],
)  # fmt: skip
def test_http_errors_are_one_line_with_the_fix(
    status: int, body: dict[str, object], code: int, text: str
) -> None:
    error = http_error(SERVER, "X", "project", status, json.dumps(body).encode())
    assert error.exit_code == code
    assert text in str(error)
    assert "\n" not in str(error)


def test_http_error_with_a_body_that_is_not_json() -> None:
    error = http_error(SERVER, "X", "group", 404, b"<html>nope</html>")
    assert "X: not found (<html>nope</html>)" in str(error)
    assert "--group" in str(error)


def test_cli_error_never_prints_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    env = {**BASE_ENV, "CI_SERVER_URL": f"ftp://example.org/{TOKEN}"}
    assert main(["gitlab", "configure"], env=env) == 2
    err = capsys.readouterr().err
    assert err.startswith("gitlab-xacct: error: CI_SERVER_URL: ")
    assert "ftp://example.org/[MASKED]" in err  # echoed, with the registered token masked
    assert TOKEN not in err


def test_push_and_copy_do_not_import_python_gitlab() -> None:
    code = (
        "import sys; from gitlab_xacct import cli; import gitlab_xacct.jobs.copy; "
        "cli.build_parser(); print('gitlab' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("version", "hides"),
    [("17.4.0", True), ("17.10.1-ee", True), ("18.0.0", True), ("17.3.9", False),
     ("16.11.2-ee", False), ("unknown", False)],
)  # fmt: skip
def test_hidden_variables_from_17_4(version: str, hides: bool) -> None:
    conn = Connection(cast(Any, None), SERVER, "alice", version)
    assert conn.version_at_least(*HIDDEN_SINCE) is hides
