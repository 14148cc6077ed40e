"""A local stand-in of GitLab's REST API v4 for CI/CD variables and CI lint, strict like GitLab.

Served on 127.0.0.1 on a free port in a thread (socket timeouts, stopped by its context manager),
with the request and response shapes of GitLab's documented API and its Grape/Rails behaviour,
read from GitLab's API docs and request specs:

- auth: `PRIVATE-TOKEN: T` or `Authorization: Bearer T`; no or unknown token: 401
  `{"message": "401 Unauthorized"}`; an expired one: 401 `{"error": "invalid_token", ...}`; a
  token whose scopes do not cover the route (`read_api` only allows GET): 403
  `{"error": "insufficient_scope", ..., "scope": "api"}`;
- a project or group that does not exist, or is private and the user no member: 404
  `{"message": "404 Project Not Found"}`; variables need Maintainer (projects) or Owner (groups),
  CI lint Developer: else 403 `{"message": "403 Forbidden"}`;
- variables: list (paginated: `page`, `per_page`, `Link` and `X-*` headers), get/update/delete by
  key with `filter[environment_scope]` (several variables with the key and no filter: 409), create
  (the same key and scope again: 400 `{"message": {"key": ["(K) has already been taken"]}}`);
  model validations answer 400 `{"message": {FIELD: [...]}}`, parameter errors 400
  `{"error": "..."}`;
- masking: a masked value must match `\\A[a-zA-Z0-9_+=/@:.~-]{8,}\\z` (Ci::Maskable::REGEX), or,
  for a raw variable on 17.0+, `\\A\\S{8,}\\z`; else 400 `{"message": {"value": ["is invalid"]}}`;
- hidden variables (17.4+): `masked_and_hidden` on create only; their value reads as null;
  changing `masked` of a hidden variable is refused. Before 17.4 the parameter is ignored (Grape
  drops undeclared parameters) and responses have no `hidden` field;
- `POST /projects/:id/ci/lint` with `content`: YAML syntax, the top-level and job keywords,
  jobs without script/trigger/run, no visible job; `include:` is not resolved here.

Bodies may be JSON (python-gitlab) or form-encoded (curl). `fail_next` makes the next matching
request answer a chosen status and body, for errors a test cannot provoke otherwise (a 502, a
variable created by someone else between a list and a create).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import yaml

from tests.standins.loopback_server import LoopbackServer

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
MASKABLE = re.compile(r"\A[a-zA-Z0-9_+=/@:.~-]{8,}\Z")
MASKABLE_RAW = re.compile(r"\A\S{8,}\Z")
_KEY = re.compile(r"\A[a-zA-Z0-9_]+\Z")
_SCOPE = re.compile(r"\A[a-zA-Z0-9_\-/${}. *]+\Z")
_WRITE_ATTRS = ("value", "protected", "masked", "raw", "variable_type", "environment_scope")
Kind = Literal["project", "group"]

# GitLab CI keywords (top level and job level) the lint knows; anything else is an unknown key.
GLOBAL_KEYWORDS = frozenset(
    {"default", "include", "stages", "variables", "workflow", "image", "services", "cache",
     "before_script", "after_script", "spec"}
)  # fmt: skip
JOB_KEYWORDS = frozenset(
    {"after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage",
     "dast_configuration", "dependencies", "environment", "extends", "hooks", "id_tokens",
     "identity", "image", "inherit", "interruptible", "manual_confirmation", "needs", "pages",
     "parallel", "release", "resource_group", "retry", "rules", "run", "script", "secrets",
     "services", "stage", "tags", "timeout", "trigger", "variables", "when", "only", "except"}
)  # fmt: skip


@dataclass
class Token:
    username: str
    scopes: frozenset[str]
    expired: bool = False


@dataclass
class Container:
    """A project or a group: its members' access levels and its CI/CD variables."""

    id: int
    path: str
    kind: Kind
    members: dict[str, int]
    variables: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    body: Mapping[str, object]


class ApiError(Exception):
    def __init__(self, status: int, body: Mapping[str, object]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


@dataclass
class GitLabStandin(LoopbackServer):
    version: str = "17.5.0"
    tokens: dict[str, Token] = field(default_factory=dict)
    containers: dict[tuple[Kind, int], Container] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path), no bodies
    faults: list[Fault] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(init=False, default=None, repr=False)
    _thread: threading.Thread | None = field(init=False, default=None, repr=False)
    lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

    # ---- the world ------------------------------------------------------------------------

    def add_token(
        self, token: str, username: str, scopes: tuple[str, ...] = ("api",), expired: bool = False
    ) -> None:
        self.tokens[token] = Token(username, frozenset(scopes), expired)

    def add(self, kind: Kind, path: str, members: Mapping[str, int]) -> int:
        new_id = 100 + len(self.containers)
        self.containers[(kind, new_id)] = Container(new_id, path, kind, dict(members))
        return new_id

    def variables(self, kind: Kind, ident: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(v) for v in self.containers[(kind, ident)].variables]

    def fail_next(
        self, method: str, path_pattern: str, status: int, body: Mapping[str, object]
    ) -> None:
        with self.lock:
            self.faults.append(Fault(method, re.compile(path_pattern), status, body))

    @property
    def hides(self) -> bool:
        return _version_tuple(self.version) >= (17, 4)

    @property
    def url(self) -> str:
        return self.base_url

    # ---- lifecycle ------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    # ---- the API --------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any], token: str | None
    ) -> tuple[int, object]:
        with self.lock:
            self.requests.append((method, path))
            for fault in self.faults:
                if fault.method == method and fault.path.search(path):
                    self.faults.remove(fault)
                    return fault.status, fault.body
            params = {**query, **body}
            segments = (
                [unquote(s) for s in path.split("/")[3:]] if path.startswith("/api/v4/") else []
            )
            return self._route(method, segments, params, token)

    def _route(
        self, method: str, seg: list[str], params: dict[str, Any], token: str | None
    ) -> tuple[int, object]:
        if not seg:
            return 404, {"error": "404 Not Found"}
        user = self._authenticate(method, token)
        answer: tuple[int, object] = (404, {"error": "404 Not Found"})
        if seg == ["version"] and method == "GET":
            answer = 200, {"version": self.version, "revision": "0123456789a", "enterprise": False}
        elif seg == ["user"] and method == "GET":
            answer = 200, {"id": 1, "username": user, "name": user, "state": "active"}
        elif len(seg) >= 2 and seg[0] in ("projects", "groups"):
            kind: Kind = "project" if seg[0] == "projects" else "group"
            container = self._find(kind, seg[1], user)
            rest = seg[2:]
            if not rest and method == "GET":
                answer = 200, self._describe(container)
            elif rest == ["ci", "lint"] and kind == "project" and method == "POST":
                self._authorize(container, user, DEVELOPER)
                answer = 200, _lint(params)
            elif rest[:1] == ["variables"] and len(rest) <= 2:
                self._authorize(container, user, MAINTAINER if kind == "project" else OWNER)
                answer = self._variables(method, container, rest[1:], params)
        return answer

    def _variables(
        self, method: str, container: Container, key: list[str], params: dict[str, Any]
    ) -> tuple[int, object]:
        if not key:
            if method == "GET":
                return 200, [self._present(v) for v in container.variables]
            if method == "POST":
                return 201, self._present(self._create(container, params))
            return 405, {"error": "405 Not Allowed"}
        variable = self._one(container, key[0], params)
        if method == "PUT":
            return 200, self._present(self._update(container, variable, params))
        if method == "DELETE":
            container.variables.remove(variable)
            return 204, None
        return 200, self._present(variable)

    def _authenticate(self, method: str, token: str | None) -> str:
        found = self.tokens.get(token or "")
        if found is None:
            raise ApiError(401, {"message": "401 Unauthorized"})
        if found.expired:
            raise ApiError(
                401, {"error": "invalid_token", "error_description": "Token has expired."}
            )
        allowed = {"api"} | ({"read_api"} if method == "GET" else set())
        if not found.scopes & allowed:
            raise ApiError(
                403,
                {
                    "error": "insufficient_scope",
                    "error_description": "The request requires higher privileges than "
                    "provided by the access token.",
                    "scope": "api",
                },
            )
        return found.username

    def _find(self, kind: Kind, ident: str, user: str) -> Container:
        for (k, number), container in self.containers.items():
            # Every container here is private: a non-member gets GitLab's 404, not a 403.
            if k == kind and ident in (str(number), container.path) and user in container.members:
                return container
        raise ApiError(404, {"message": f"404 {kind.capitalize()} Not Found"})

    @staticmethod
    def _authorize(container: Container, user: str, level: int) -> None:
        if container.members.get(user, 0) < level:
            raise ApiError(403, {"message": "403 Forbidden"})

    @staticmethod
    def _describe(container: Container) -> dict[str, object]:
        name = container.path.rsplit("/", 1)[-1]
        if container.kind == "group":
            return {"id": container.id, "name": name, "path": name, "full_path": container.path,
                    "visibility": "private"}  # fmt: skip
        return {
            "id": container.id,
            "name": name,
            "path": name,
            "path_with_namespace": container.path,
            "default_branch": "main",
            "visibility": "private",
        }

    def _present(self, variable: Mapping[str, Any]) -> dict[str, Any]:
        shown = {k: variable[k] for k in ("key", "variable_type", "value", "protected", "masked",
                                          "raw", "environment_scope", "description")}  # fmt: skip
        if self.hides:
            shown["hidden"] = variable["hidden"]
            if variable["hidden"]:
                shown["value"] = None
        return shown

    def _one(self, container: Container, key: str, params: Mapping[str, Any]) -> dict[str, Any]:
        scope = params.get("filter[environment_scope]")
        if isinstance(params.get("filter"), dict):
            scope = params["filter"].get("environment_scope", scope)
        found = [
            v for v in container.variables
            if v["key"] == key and (scope is None or v["environment_scope"] == scope)
        ]  # fmt: skip
        if not found:
            raise ApiError(404, {"message": "404 Variable Not Found"})
        if len(found) > 1:
            raise ApiError(
                409,
                {
                    "message": "There are multiple variables with provided parameters. Please "
                    "use 'filter[environment_scope]'"
                },
            )
        return found[0]

    def _create(self, container: Container, params: Mapping[str, Any]) -> dict[str, Any]:
        missing = [name for name in ("key", "value") if name not in params]
        if missing:
            raise ApiError(400, {"error": ", ".join(f"{m} is missing" for m in missing)})
        attrs = _coerce(params, ("key", *_WRITE_ATTRS, "description", "masked_and_hidden"))
        variable: dict[str, Any] = {
            "key": attrs["key"], "value": attrs["value"], "variable_type": "env_var",
            "protected": False, "masked": False, "raw": False, "hidden": False,
            "environment_scope": "*", "description": None,
        }  # fmt: skip
        variable.update({k: v for k, v in attrs.items() if k in (*_WRITE_ATTRS, "description")})
        if attrs.get("masked_and_hidden") and self.hides:
            variable["masked"] = variable["hidden"] = True
        self._validate(container, variable, None)
        container.variables.append(variable)
        return variable

    def _update(
        self, container: Container, variable: dict[str, Any], params: Mapping[str, Any]
    ) -> dict[str, Any]:
        attrs = _coerce(params, (*_WRITE_ATTRS, "description"))
        changed = {**variable, **attrs}
        if variable["hidden"] and changed["masked"] != variable["masked"]:
            message = "The visibility setting cannot be changed for masked and hidden variables."
            raise ApiError(400, {"message": {"base": [message]}})
        self._validate(container, changed, variable)
        variable.update(changed)
        return variable

    def _validate(
        self, container: Container, variable: Mapping[str, Any], current: Mapping[str, Any] | None
    ) -> None:
        errors: dict[str, list[str]] = {}
        key, scope, value = variable["key"], variable["environment_scope"], variable["value"]
        if not _KEY.match(key) or len(key) > 255:
            errors.setdefault("key", []).append("can contain only letters, digits and '_'.")
        if not _SCOPE.match(scope) or len(scope) > 255:
            errors.setdefault("environment_scope", []).append("is invalid")
        if variable["masked"]:
            raw_rule = variable["raw"] and _version_tuple(self.version) >= (17, 0)
            if not (MASKABLE_RAW if raw_rule else MASKABLE).match(value):
                errors.setdefault("value", []).append("is invalid")
        taken = any(
            v is not current and v["key"] == key and v["environment_scope"] == scope
            for v in container.variables
        )
        if taken:
            errors.setdefault("key", []).append(f"({key}) has already been taken")
        if errors:
            raise ApiError(400, {"message": errors})


def _coerce(params: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Grape's parameter types: booleans from true/false (or their strings), strings from
    scalars; a wrong type is a 400 naming the parameter, as Grape answers."""
    out: dict[str, Any] = {}
    for name in names:
        if name not in params:
            continue
        value = params[name]
        if name in ("protected", "masked", "raw", "masked_and_hidden"):
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                value = value.lower() in ("true", "1")
            if not isinstance(value, bool):
                raise ApiError(400, {"error": f"{name} is invalid"})
        elif isinstance(value, bool) or not isinstance(value, str | int | float):
            if not (name == "description" and value is None):
                raise ApiError(400, {"error": f"{name} is invalid"})
        else:
            value = str(value)
        if name == "variable_type" and value not in ("env_var", "file"):
            raise ApiError(400, {"error": "variable_type does not have a valid value"})
        out[name] = value
    return out


def _lint(params: Mapping[str, Any]) -> dict[str, object]:
    content = params.get("content")
    if not isinstance(content, str):
        raise ApiError(400, {"error": "content is missing"})
    errors: list[str] = []
    warnings: list[str] = []
    try:
        doc = yaml.safe_load(content)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        errors.append(f"(<unknown>): {exc.problem}{where}")
        doc = None
    if not errors and not isinstance(doc, dict):
        errors.append("Invalid configuration format")
    elif isinstance(doc, dict):
        _lint_config(doc, errors, warnings)
    valid = not errors
    return {
        "valid": valid,
        "errors": errors,
        "warnings": warnings,
        "merged_yaml": content if valid else None,
        "includes": [] if valid else None,
    }


def _lint_config(doc: dict[Any, Any], errors: list[str], warnings: list[str]) -> None:
    jobs = {k: v for k, v in doc.items() if k not in GLOBAL_KEYWORDS}
    has_workflow_rules = isinstance(doc.get("workflow"), dict) and "rules" in doc["workflow"]
    visible = 0
    for name, job in jobs.items():
        if not isinstance(job, dict):
            errors.append(f"jobs:{name} config should be a hash")
            continue
        hidden = str(name).startswith(".")
        visible += not hidden
        unknown = sorted(str(k) for k in job if k not in JOB_KEYWORDS)
        if unknown:
            errors.append(f"jobs:{name} config contains unknown keys: {', '.join(unknown)}")
        if not hidden and not {"script", "trigger", "run", "extends"} & job.keys():
            errors.append(
                f"jobs:{name} config should implement the script:, run:, or trigger: keyword"
            )
        rules = job.get("rules")
        if (
            not hidden and not has_workflow_rules and isinstance(rules, list)
            and any(isinstance(r, dict) and r.get("when") not in (None, "never") for r in rules)
        ):  # fmt: skip
            warnings.append(
                f"jobs:{name} may allow multiple pipelines to run for a single action due to "
                "`rules:when` clause with no `workflow:rules` - read more: "
                "https://docs.gitlab.com/ee/ci/troubleshooting.html#pipeline-warnings"
            )
    if not errors and visible == 0:
        errors.append("jobs config should contain at least one visible job")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: ClassVar[GitLabStandin]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests read `requests`, not a log

    def _serve(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        token = self.headers.get("PRIVATE-TOKEN")
        bearer = self.headers.get("Authorization", "")
        if token is None and bearer.lower().startswith("bearer "):
            token = bearer[7:].strip()
        try:
            body = self._body()
            status, doc = self.owner.handle(self.command, url.path, query, body, token)
        except ApiError as exc:
            status, doc = exc.status, exc.body
        headers: dict[str, str] = {}
        if isinstance(doc, list):
            doc, headers = self._page(url.path, query, doc)
        self._answer(status, doc, headers)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1024 * 1024:
            raise ApiError(413, {"error": "413 Request Entity Too Large"})
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                doc = json.loads(raw)
            except ValueError:
                message = "The provided content-type 'application/json' does not match"
                raise ApiError(400, {"error": message}) from None
            if not isinstance(doc, dict):
                raise ApiError(400, {"error": "body must be a JSON object"})
            return doc
        if kind == "application/x-www-form-urlencoded":
            return dict(parse_qsl(raw.decode(), keep_blank_values=True))
        raise ApiError(415, {"error": f"The provided content-type '{kind}' is not supported."})

    def _page(
        self, path: str, query: dict[str, str], items: list[Any]
    ) -> tuple[list[Any], dict[str, str]]:
        try:
            page = max(1, int(query.get("page", "1")))
            per_page = min(100, max(1, int(query.get("per_page", "20"))))
        except ValueError:
            raise ApiError(400, {"error": "page is invalid"}) from None
        total_pages = max(1, -(-len(items) // per_page))
        headers = {
            "X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
            "X-Total-Pages": str(total_pages),
            "X-Next-Page": str(page + 1) if page < total_pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }  # fmt: skip
        if page < total_pages:
            next_query = urlencode({**query, "page": page + 1, "per_page": per_page})
            host = self.headers.get("Host", "127.0.0.1")
            headers["Link"] = f'<http://{host}{quote(path, safe="/%")}?{next_query}>; rel="next"'
        return items[(page - 1) * per_page : page * per_page], headers

    def _answer(self, status: int, doc: object, headers: Mapping[str, str]) -> None:
        data = b"" if status == 204 else json.dumps(doc).encode()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
