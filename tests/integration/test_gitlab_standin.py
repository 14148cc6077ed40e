"""The GitLab REST stand-in answers as GitLab does: each test pins one documented status and body,
so a stand-in that let everything through, or refused everything, would fail here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gitlab
import pytest
import requests

from tests.standins.gitlab_api import DEVELOPER, MAINTAINER, OWNER, GitLabStandin

pytestmark = pytest.mark.integration
TOKEN = "standin-token-1234"


@pytest.fixture
def standin() -> Iterator[GitLabStandin]:
    with GitLabStandin(version="17.5.0") as server:
        server.add_token(TOKEN, "alice")
        server.add_token("dev-token-1234", "dave")
        server.add_token("read-token-1234", "alice", scopes=("read_api",))
        server.add("project", "team/app", {"alice": MAINTAINER, "dave": DEVELOPER})
        server.add("group", "team", {"alice": OWNER})
        yield server


def call(
    standin: GitLabStandin, method: str, path: str, token: str | None = TOKEN, **kwargs: Any
) -> requests.Response:
    headers = {"PRIVATE-TOKEN": token} if token else {}
    return requests.request(
        method, f"{standin.url}/api/v4{path}", headers=headers, timeout=10, **kwargs
    )


def test_authentication_and_scopes(standin: GitLabStandin) -> None:
    assert call(standin, "GET", "/user", token=None).json() == {"message": "401 Unauthorized"}
    assert call(standin, "GET", "/user", token="nope").status_code == 401
    bearer = requests.get(
        f"{standin.url}/api/v4/user", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert bearer.json()["username"] == "alice"
    read_only = "read-token-1234"
    assert (
        call(standin, "GET", "/projects/team%2Fapp/variables", token=read_only).status_code == 200
    )
    refused = call(standin, "POST", "/projects/team%2Fapp/variables", token=read_only, json={})
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"


def test_projects_by_id_or_encoded_path_and_roles(standin: GitLabStandin) -> None:
    assert call(standin, "GET", "/projects/team%2Fapp").json()["path_with_namespace"] == "team/app"
    assert call(standin, "GET", "/projects/100").json()["id"] == 100
    assert call(standin, "GET", "/projects/team/app").status_code == 404  # an unencoded path
    missing = call(standin, "GET", "/projects/team%2Fnope")
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Project Not Found"})
    developer = call(standin, "GET", "/projects/100/variables", token="dev-token-1234")
    assert (developer.status_code, developer.json()) == (403, {"message": "403 Forbidden"})
    assert call(standin, "GET", "/groups/team/variables").status_code == 200  # one segment
    assert call(standin, "GET", "/groups/101/variables").status_code == 200
    assert call(standin, "GET", "/groups/nope").json() == {"message": "404 Group Not Found"}


def test_variables_crud_scopes_conflicts_and_form_bodies(standin: GitLabStandin) -> None:
    path = "/projects/100/variables"
    created = call(standin, "POST", path, data={"key": "K", "value": "one", "protected": "true"})
    assert created.status_code == 201
    assert created.json() == {
        "key": "K", "variable_type": "env_var", "value": "one", "protected": True,
        "masked": False, "raw": False, "environment_scope": "*", "description": None,
        "hidden": False,
    }  # fmt: skip
    again = call(standin, "POST", path, json={"key": "K", "value": "two"})
    assert (again.status_code, again.json()) == (
        400, {"message": {"key": ["(K) has already been taken"]}},
    )  # fmt: skip
    assert call(standin, "POST", path, json={"key": "K", "value": "p", "environment_scope": "prod"})
    ambiguous = call(standin, "PUT", f"{path}/K", json={"value": "x"})
    assert ambiguous.status_code == 409
    filtered = call(standin, "PUT", f"{path}/K?filter[environment_scope]=prod", json={"value": "x"})
    assert filtered.json()["value"] == "x"
    assert [v["value"] for v in standin.variables("project", 100)] == ["one", "x"]
    assert call(standin, "GET", f"{path}/K?filter[environment_scope]=dev").status_code == 404
    assert call(standin, "DELETE", f"{path}/K?filter[environment_scope]=prod").status_code == 204
    assert call(standin, "GET", f"{path}/K").json()["value"] == "one"
    assert call(standin, "POST", path, json={"key": "bad-key", "value": "v"}).json() == {
        "message": {"key": ["can contain only letters, digits and '_'."]}
    }
    assert call(standin, "POST", path, json={"key": "V"}).json() == {"error": "value is missing"}
    assert call(
        standin, "POST", path, json={"key": "V", "value": "v", "masked": "maybe"}
    ).json() == {"error": "masked is invalid"}


@pytest.mark.parametrize(
    ("value", "raw", "ok"),
    [("abcdefgh", False, True), ("abcdefg", False, False), ("a,b,c,d,e", False, False),
     ("a,b,c,d,e", True, True), ("with space", True, False)],
)  # fmt: skip
def test_masking_rule(standin: GitLabStandin, value: str, raw: bool, ok: bool) -> None:
    body = {"key": "M", "value": value, "masked": True, "raw": raw}
    answer = call(standin, "POST", "/projects/100/variables", json=body)
    if ok:
        assert answer.status_code == 201
    else:
        assert (answer.status_code, answer.json()) == (400, {"message": {"value": ["is invalid"]}})


def test_hidden_variables_by_version(standin: GitLabStandin) -> None:
    body = {"key": "H", "value": "abcdefgh", "masked_and_hidden": True}
    hidden = call(standin, "POST", "/projects/100/variables", json=body).json()
    assert (hidden["hidden"], hidden["masked"], hidden["value"]) == (True, True, None)
    unmask = call(standin, "PUT", "/projects/100/variables/H", json={"masked": False})
    assert unmask.json() == {"message": {"base": [
        "The visibility setting cannot be changed for masked and hidden variables."]}}  # fmt: skip
    assert call(standin, "PUT", "/projects/100/variables/H", json={"value": "newvalue1"}).ok

    standin.version = "17.3.0"
    old = call(standin, "POST", "/groups/101/variables", json={**body, "key": "G"}).json()
    assert "hidden" not in old
    assert (old["masked"], old["value"]) == (False, "abcdefgh")  # the parameter was ignored


def test_python_gitlab_pages_through_long_lists(standin: GitLabStandin) -> None:
    api = gitlab.Gitlab(standin.url, private_token=TOKEN, timeout=10)
    project = api.projects.get("team/app")
    for number in range(45):
        project.variables.create({"key": f"K{number}", "value": "v"})
    listed = project.variables.list(get_all=True)
    assert sorted(v.key for v in listed) == sorted(f"K{n}" for n in range(45))
    pages = [p for m, p in standin.requests if m == "GET" and p.endswith("/variables")]
    assert len(pages) == 3  # 20 + 20 + 5


def test_lint(standin: GitLabStandin) -> None:
    def lint(content: str) -> dict[str, Any]:
        answer = call(standin, "POST", "/projects/100/ci/lint", json={"content": content})
        assert answer.status_code == 200
        result: dict[str, Any] = answer.json()
        return result

    assert lint("job:\n  script: [true]\n")["valid"] is True
    assert lint("job: [\n")["errors"][0].startswith("(<unknown>): ")
    assert lint("- a\n")["errors"] == ["Invalid configuration format"]
    assert lint(".hidden:\n  script: [true]\n")["errors"] == [
        "jobs config should contain at least one visible job"
    ]
    warned = lint("job:\n  script: [true]\n  rules:\n    - when: always\n")
    assert warned["valid"] is True
    assert warned["warnings"][0].startswith("jobs:job may allow multiple pipelines")
    assert call(standin, "POST", "/projects/100/ci/lint", json={}).json() == {
        "error": "content is missing"
    }
    assert (
        call(standin, "POST", "/projects/100/ci/lint", token="read-token-1234").status_code == 403
    )


def test_fail_next_answers_once(standin: GitLabStandin) -> None:
    standin.fail_next("GET", r"/version$", 502, {"message": "502 Bad Gateway"})
    assert call(standin, "GET", "/version").status_code == 502
    assert call(standin, "GET", "/version").json()["version"] == "17.5.0"
