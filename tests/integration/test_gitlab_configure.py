"""`gitlab-xacct gitlab configure`, run as a subprocess against the GitLab REST stand-in.

Every test reads the stand-in's state (what GitLab would now hold) besides the CLI's output, and
every output is scanned for the sentinel token and External ID.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.standins.gitlab_api import DEVELOPER, MAINTAINER, OWNER, GitLabStandin
from tests.standins.servers import free_port

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("gitlab-xacct"))
TOKEN = "glpat-sentinel-Tok3n-5c1d9e"
EXTERNAL_ID = "sentinel-ExtId-7f3a9c21e4b8d065"
ROLE_ARN = "arn:aws:iam::222222222222:role/OurThingPush"
VALUES = {
    "XACCT_ROLE_ARN": ROLE_ARN,
    "XACCT_REGION": "eu-west-1",
    "XACCT_REPOSITORY": "team/app",
    "XACCT_EXTERNAL_ID": EXTERNAL_ID,
}


@dataclass
class Setup:
    gitlab: GitLabStandin
    project: int
    group: int
    workdir: Path
    outputs: list[str] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.workdir),
            "CI_SERVER_URL": self.gitlab.url,
            "CI_PROJECT_ID": str(self.project),
            "GITLAB_TOKEN": TOKEN,
            **VALUES,
        }
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CLI, "gitlab", "configure", *args],
            env=env if env is not None else self.env(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        return result

    def project_vars(self) -> dict[tuple[str, str], dict[str, Any]]:
        found = self.gitlab.variables("project", self.project)
        by_key = {(v["key"], v["environment_scope"]): v for v in found}
        assert len(by_key) == len(found), f"duplicate variables: {found}"
        return by_key

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.gitlab.requests if r[0] in ("POST", "PUT", "DELETE")]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with GitLabStandin(version="17.5.0") as gitlab:
        gitlab.add_token(TOKEN, "alice")
        project = gitlab.add("project", "team/app", {"alice": MAINTAINER})
        group = gitlab.add("group", "team", {"alice": OWNER})
        state = Setup(gitlab, project, group, tmp_path)
        yield state
    for text in state.outputs:
        assert TOKEN not in text, "the GitLab token reached the output"
        assert EXTERNAL_ID not in text, "the External ID reached the output"


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return result.stdout.splitlines()


def one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("gitlab-xacct: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_creates_from_scratch_then_changes_nothing(setup: Setup) -> None:
    first = setup.run()
    assert first.returncode == 0, first.stderr
    assert lines(first) == [
        "XACCT_ROLE_ARN: created",
        "XACCT_REGION: created",
        "XACCT_REPOSITORY: created",
        "XACCT_EXTERNAL_ID: created (masked, protected, hidden)",
    ]
    state = setup.project_vars()
    assert state[("XACCT_ROLE_ARN", "*")]["value"] == ROLE_ARN
    assert state[("XACCT_REGION", "*")]["value"] == "eu-west-1"
    secret = state[("XACCT_EXTERNAL_ID", "*")]
    assert (secret["value"], secret["masked"], secret["protected"], secret["hidden"]) == (
        EXTERNAL_ID, True, True, True,
    )  # fmt: skip
    assert not state[("XACCT_REGION", "*")]["masked"]

    writes_before = len(setup.writes())
    second = setup.run()
    assert second.returncode == 0, second.stderr
    assert lines(second)[:3] == [
        "XACCT_ROLE_ARN: unchanged",
        "XACCT_REGION: unchanged",
        "XACCT_REPOSITORY: unchanged",
    ]
    # A hidden value cannot be read back, so it is written again (and said so), never duplicated.
    assert lines(second)[3].startswith("XACCT_EXTERNAL_ID: written again (hidden:")
    assert setup.writes()[writes_before:] == [
        ("PUT", f"/api/v4/projects/{setup.project}/variables/XACCT_EXTERNAL_ID")
    ]
    assert len(setup.project_vars()) == 4


def test_second_run_on_a_server_without_hidden_variables_writes_nothing(setup: Setup) -> None:
    setup.gitlab.version = "17.3.2"
    first = setup.run()
    assert first.returncode == 0, first.stderr
    assert "XACCT_EXTERNAL_ID: created (masked, protected)" in lines(first)
    assert "hidden" not in first.stdout
    secret = setup.project_vars()[("XACCT_EXTERNAL_ID", "*")]
    assert (secret["masked"], secret["protected"], secret["hidden"]) == (True, True, False)

    writes_before = len(setup.writes())
    second = setup.run()
    assert second.returncode == 0, second.stderr
    assert all(line.endswith(": unchanged") for line in lines(second)), second.stdout
    assert len(lines(second)) == 4
    assert setup.writes()[writes_before:] == []
    assert len(setup.project_vars()) == 4


def test_updates_one_value_in_place(setup: Setup) -> None:
    assert setup.run().returncode == 0
    result = setup.run("--region", "eu-central-1")
    assert result.returncode == 0, result.stderr
    assert "XACCT_REGION: updated (value differed)" in lines(result)
    assert "XACCT_ROLE_ARN: unchanged" in lines(result)
    state = setup.project_vars()
    assert state[("XACCT_REGION", "*")]["value"] == "eu-central-1"
    assert len(state) == 4


def test_restores_flags_changed_by_hand(setup: Setup) -> None:
    setup.gitlab.version = "17.3.2"
    assert setup.run().returncode == 0
    setup.gitlab.containers[("project", setup.project)].variables[3]["protected"] = False
    result = setup.run()
    assert "XACCT_EXTERNAL_ID: updated (protected differed)" in lines(result)
    assert setup.project_vars()[("XACCT_EXTERNAL_ID", "*")]["protected"] is True


def test_environment_scopes_are_kept_apart(setup: Setup) -> None:
    assert setup.run().returncode == 0
    production = setup.run("--environment-scope", "production", "--region", "us-east-1")
    assert production.returncode == 0, production.stderr
    assert "XACCT_REGION: created" in lines(production)
    state = setup.project_vars()
    assert len(state) == 8
    assert state[("XACCT_REGION", "*")]["value"] == "eu-west-1"
    assert state[("XACCT_REGION", "production")]["value"] == "us-east-1"

    again = setup.run("--environment-scope", "production", "--region", "us-west-2")
    assert "XACCT_REGION: updated (value differed)" in lines(again)
    state = setup.project_vars()
    assert state[("XACCT_REGION", "*")]["value"] == "eu-west-1"
    assert state[("XACCT_REGION", "production")]["value"] == "us-west-2"


def test_group_variables(setup: Setup) -> None:
    result = setup.run("--group", "team")
    assert result.returncode == 0, result.stderr
    assert len(lines(result)) == 4
    assert {v["key"] for v in setup.gitlab.variables("group", setup.group)} == set(VALUES)
    assert setup.gitlab.variables("project", setup.project) == []
    assert "group team (id" in result.stderr


def test_group_needs_the_owner_role(setup: Setup) -> None:
    setup.gitlab.containers[("group", setup.group)].members["alice"] = MAINTAINER
    line = one_error_line(setup.run("--group", "team"), 4)
    assert "403 Forbidden" in line
    assert "Owner role on the group" in line


def test_existing_visible_external_id_is_kept_and_said_then_recreated_hidden(setup: Setup) -> None:
    setup.gitlab.version = "16.11.0"
    assert setup.run().returncode == 0
    setup.gitlab.version = "17.4.0"
    kept = setup.run()
    line = next(x for x in lines(kept) if x.startswith("XACCT_EXTERNAL_ID"))
    assert line.startswith("XACCT_EXTERNAL_ID: unchanged (not hidden:")
    assert "--recreate-hidden" in line
    assert setup.project_vars()[("XACCT_EXTERNAL_ID", "*")]["hidden"] is False

    recreated = setup.run("--recreate-hidden")
    assert recreated.returncode == 0, recreated.stderr
    assert "XACCT_EXTERNAL_ID: deleted and created again (masked, protected, hidden)" in lines(
        recreated
    )
    secret = setup.project_vars()[("XACCT_EXTERNAL_ID", "*")]
    assert (secret["hidden"], secret["value"]) == (True, EXTERNAL_ID)
    assert len(setup.project_vars()) == 4


def test_dry_run_writes_nothing(setup: Setup) -> None:
    result = setup.run("--dry-run")
    assert result.returncode == 0, result.stderr
    assert "XACCT_REGION: would be created" in lines(result)
    assert setup.writes() == []
    assert setup.project_vars() == {}


def test_token_from_a_file(setup: Setup) -> None:
    token_file = setup.workdir / "token"
    token_file.write_text(TOKEN + "\n")
    result = setup.run("--token-file", str(token_file), env=setup.env(GITLAB_TOKEN=""))
    assert result.returncode == 0, result.stderr
    assert len(setup.project_vars()) == 4


def test_unmaskable_external_id_is_refused_before_any_request(setup: Setup) -> None:
    for bad, reason in (
        ("Ext,Id,with,commas", "a character GitLab cannot mask at position 4"),
        ("short12", "7 characters long"),
    ):
        line = one_error_line(setup.run(env=setup.env(XACCT_EXTERNAL_ID=bad)), 2)
        assert line.startswith("gitlab-xacct: error: XACCT_EXTERNAL_ID: GitLab could not mask")
        assert reason in line
        assert bad not in line
    assert setup.gitlab.requests == []


def test_job_token_alone_is_refused_clearly(setup: Setup) -> None:
    result = setup.run(env=setup.env(GITLAB_TOKEN="", CI_JOB_TOKEN="job-token-sentinel-1"))
    line = one_error_line(result, 2)
    for needed in ("GITLAB_TOKEN", "--token-file", "CI_JOB_TOKEN", "api scope", "Maintainer"):
        assert needed in line
    assert "job-token-sentinel-1" not in result.stdout + result.stderr
    assert setup.gitlab.requests == []


@pytest.mark.parametrize(
    ("token_setup", "code", "expected"),
    [
        ("unknown", 4, "GITLAB_TOKEN: GitLab at http://127.0.0.1"),
        ("expired", 4, "(401 Unauthorized: Token has expired.)"),
        ("read_api", 4, "lacks the api scope needed for"),
        ("developer", 4, "needs the Maintainer role on the project"),
    ],
)
def test_token_and_role_errors(setup: Setup, token_setup: str, code: int, expected: str) -> None:
    if token_setup == "unknown":
        setup.gitlab.tokens.clear()
    elif token_setup == "expired":
        setup.gitlab.add_token(TOKEN, "alice", expired=True)
    elif token_setup == "read_api":
        setup.gitlab.add_token(TOKEN, "alice", scopes=("read_api",))
    else:
        setup.gitlab.containers[("project", setup.project)].members["alice"] = DEVELOPER
    line = one_error_line(setup.run(), code)
    assert expected in line
    assert setup.project_vars() == {}


def test_unknown_project_is_404_with_the_fix(setup: Setup) -> None:
    line = one_error_line(setup.run("--project", "team/nope"), 4)
    assert "project team/nope: not found (404 Project Not Found)" in line
    assert "--project" in line


@pytest.mark.parametrize(
    "case",
    [
        ("PUT", 409, {"message": "There are multiple variables with provided parameters. "
                      "Please use 'filter[environment_scope]'"}, 2, "409 Conflict"),
        ("POST", 400, {"message": {"key": ["(XACCT_REGION) has already been taken"]}}, 2,
         "someone created it meanwhile: run the command again"),
        ("POST", 400, {"message": {"value": ["is invalid"]}}, 2, "GitLab cannot mask this value"),
        ("POST", 422, {"message": {"value": ["is invalid"]}}, 2, "(422: value is invalid)"),
        ("POST", 502, {"message": "502 Bad Gateway"}, 5, "failed (502); try again later"),
        ("PUT", 404, {"message": "404 Variable Not Found"}, 2, "someone deleted it meanwhile"),
    ],
    ids=["409-ambiguous", "400-taken", "400-unmaskable", "422", "502", "404-deleted"],
)  # fmt: skip
def test_write_errors(setup: Setup, case: tuple[str, int, dict[str, object], int, str]) -> None:
    method, status, body, code, expected = case
    if method == "PUT":
        assert setup.run().returncode == 0
        env = setup.env(XACCT_REGION="ap-south-1")
    else:
        env = setup.env()
    setup.gitlab.fail_next(method, r"/variables", status, body)
    line = one_error_line(setup.run(env=env), code)
    assert expected in line
    assert "variable XACCT_" in line


def test_unreachable_gitlab_is_exit_5(setup: Setup) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    line = one_error_line(setup.run("--gitlab-url", closed), 5)
    assert f"could not reach GitLab at {closed}" in line


def test_lint_valid_and_invalid(setup: Setup) -> None:
    ci = setup.workdir / ".gitlab-ci.yml"
    ci.write_text("push:\n  script:\n    - gitlab-xacct push\n")
    valid = setup.run("--lint", env=setup.env(**dict.fromkeys(VALUES, "")))
    assert valid.returncode == 0, valid.stderr
    assert lines(valid) == [".gitlab-ci.yml: valid (GitLab CI lint)"]
    assert setup.project_vars() == {}

    broken = setup.workdir / "broken.yml"
    broken.write_text("push:\n  scirpt:\n    - gitlab-xacct push\n")
    invalid = setup.run("--lint", "--ci-file", str(broken))
    line = one_error_line(invalid, 2)
    assert "GitLab's CI lint found 2 errors" in line
    assert "  error: jobs:push config contains unknown keys: scirpt" in lines(invalid)
    assert len(setup.project_vars()) == 4  # the variables were set before the lint


def test_lint_of_a_missing_file_fails_before_any_request(setup: Setup) -> None:
    line = one_error_line(setup.run("--lint"), 2)
    assert "--ci-file: cannot read .gitlab-ci.yml" in line
    assert setup.gitlab.requests == []


@pytest.mark.parametrize("debug", ["false", "true"])
@pytest.mark.parametrize("outcome", ["ok", "refused"])
def test_no_secret_in_any_output(setup: Setup, outcome: str, debug: str) -> None:
    """Part of the sentinel scan of every command (tests/integration/test_no_secrets.py): the
    token and the External ID (scanned by the fixture), and a refused token, in both modes."""
    wrong = "glpat-sentinel-wrong-token-5d1e"
    token = TOKEN if outcome == "ok" else wrong
    result = setup.run(env=setup.env(GITLAB_TOKEN=token, XACCT_DEBUG=debug))
    if outcome == "ok":
        assert result.returncode == 0, result.stderr
    elif debug == "false":
        one_error_line(result, 4)
    else:  # --debug adds the traceback of a failure, by design; still one error line
        assert result.returncode == 4, result.stderr
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("gitlab-xacct: ")]
        assert len(errors) == 1, result.stderr
    assert all(wrong not in text for text in setup.outputs)
