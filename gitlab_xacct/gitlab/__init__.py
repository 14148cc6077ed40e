"""GitLab's REST API through python-gitlab: one connection, one place where HTTP errors become
XacctErrors with a line that names the object and the fix.

python-gitlab is imported inside the functions: only the `gitlab` commands pay for it (`push` and
`copy` start without it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitlab_xacct.errors import ConfigError, PushError, RegistryAuthError, XacctError
from gitlab_xacct.secrets import Secret

if TYPE_CHECKING:
    import gitlab

TIMEOUT = 30.0
# What a token needs to write CI/CD variables, said in every refusal.
NEEDS = "a personal, project or group access token with the api scope, of a user with the "
NEEDS_ROLE = {"project": "Maintainer role on the project", "group": "Owner role on the group"}


class GitLabAuthError(RegistryAuthError):
    """GitLab refused the token or its user (401, 403, 404): exit 4, as for a registry."""


class GitLabUnavailable(PushError):
    """GitLab could not be reached or failed (5xx): exit 5, worth trying again later."""


@dataclass(frozen=True, slots=True)
class Server:
    url: str  # https://HOST[:PORT][/PATH], no trailing slash
    token: Secret
    token_origin: str  # GITLAB_TOKEN or --token-file PATH, for messages


@dataclass(frozen=True, slots=True)
class Connection:
    api: gitlab.Gitlab
    server: Server
    username: str
    version: str  # "17.5.0-ee", or "unknown"

    def version_at_least(self, major: int, minor: int) -> bool:
        numbers = [int(p) for p in self.version.split("-")[0].split(".")[:2] if p.isdigit()]
        return len(numbers) == 2 and (numbers[0], numbers[1]) >= (major, minor)


def connect(server: Server) -> Connection:
    """Authenticate (GET /user) and read the version (GET /version); a bad token fails here,
    before anything else is asked."""
    import gitlab as python_gitlab

    api = python_gitlab.Gitlab(
        server.url,
        private_token=server.token.reveal(),
        timeout=TIMEOUT,
        # 429 is waited out (python-gitlab's default); a 5xx is reported at once, exit 5: a
        # create retried blindly after a lost answer would only meet "already taken".
        retry_transient_errors=False,
        user_agent="gitlab-xacct",
    )
    with translate_errors(server, f"GitLab at {server.url}", "project"):
        api.auth()
        username = api.user.username if api.user is not None else "?"
        answer = api.http_get("/version")
    version = str(answer.get("version", "unknown")) if isinstance(answer, dict) else "unknown"
    return Connection(api, server, str(username), version)


@contextmanager
def translate_errors(server: Server, target: str, kind: str) -> Iterator[None]:
    """python-gitlab and requests errors -> one-line XacctErrors naming `target` and the fix."""
    import gitlab as python_gitlab
    import requests

    try:
        yield
    except python_gitlab.GitlabError as exc:
        raise http_error(server, target, kind, exc.response_code, exc.response_body) from None
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise GitLabUnavailable(
            f"could not reach GitLab at {server.url} ({reason}); check CI_SERVER_URL or "
            "--gitlab-url and the network"
        ) from None


def http_error(  # noqa: PLR0911 - one return per HTTP status, read as a table
    server: Server, target: str, kind: str, status: int | None, body: bytes | None
) -> XacctError:
    """One status, one line: what failed, about which object, and what to do."""
    error, detail = _parse(body)
    role = NEEDS_ROLE.get(kind, NEEDS_ROLE["project"])
    if status == 401:
        why = f": {detail}" if error == "invalid_token" else ""
        return GitLabAuthError(
            f"{server.token_origin}: GitLab at {server.url} refused the token (401 Unauthorized"
            f"{why}); it is wrong, expired or revoked: create {NEEDS}{role}"
        )
    if status == 403 and error == "insufficient_scope":
        return GitLabAuthError(
            f"{server.token_origin}: the token lacks the api scope needed for {target} "
            f"(403 insufficient_scope); create {NEEDS}{role}"
        )
    if status == 403:
        return GitLabAuthError(
            f"{target}: the token's user may not do this there (403 Forbidden); it needs the "
            f"{role} and a token with the api scope"
        )
    if status == 404 and "Variable" in detail:
        return ConfigError(
            f"{target}: gone ({detail}); someone deleted it meanwhile: run the command again"
        )
    if status == 404:
        return GitLabAuthError(
            f"{target}: not found ({detail or '404 Not Found'}), or not visible to the token's "
            f"user; check the id or path (--{kind}) and that the user is a member"
        )
    if status == 409:
        return ConfigError(
            f"{target}: GitLab has several variables with this key and cannot tell which to "
            "change (409 Conflict); pass --environment-scope with the scope to change"
        )
    if status in (400, 422):
        return ConfigError(
            f"{target}: GitLab refused the request ({status}: {detail}){_hint(detail)}"
        )
    if status is not None and status >= 500:
        return GitLabUnavailable(
            f"{target}: GitLab at {server.url} failed ({status}); try again later"
        )
    return ConfigError(f"{target}: GitLab answered {status}: {detail or 'no details'}")


def _parse(body: bytes | None) -> tuple[str, str]:
    """(error code, readable detail) from GitLab's error bodies: {"message": "..."},
    {"message": {FIELD: [...]}}, {"error": CODE, "error_description": "..."}."""
    try:
        doc = json.loads(body or b"")
    except ValueError:
        return "", (body or b"").decode(errors="replace").strip()[:200]
    if not isinstance(doc, dict):
        return "", str(doc)[:200]
    error = str(doc.get("error", ""))
    message = doc.get("message", doc.get("error_description", error))
    if isinstance(message, dict):
        parts = []
        for name, problems in message.items():
            text = " and ".join(map(str, problems)) if isinstance(problems, list) else str(problems)
            parts.append(text if name == "base" else f"{name} {text}")
        return error, "; ".join(parts)
    return error, str(message)


def _hint(detail: str) -> str:
    if "has already been taken" in detail:
        return "; someone created it meanwhile: run the command again to update it"
    if "value is invalid" in detail:
        return "; GitLab cannot mask this value (see docs/gitlab-variables.md)"
    if "visibility setting cannot be changed" in detail:
        return "; a hidden variable keeps its visibility: delete it in GitLab to change that"
    return ""
