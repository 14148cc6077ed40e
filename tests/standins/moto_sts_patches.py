"""STS rules that the launcher (moto_xacct.py) adds to moto's auth mode: web identity, session
tags, role chaining. ``moto_xacct.apply_patches`` installs them through ``apply_sts_patches``.

Everything here acts only once auth is on (``POST /moto-api/reset-auth``), like moto's own
checks: while auth is off, setup code can still do anything.

sts:AssumeRoleWithWebIdentity (GitLab OIDC)
    Unsigned, as on AWS. Stock moto 5.2 answers 500 to it in auth mode (its authorizer reads
    the missing ``Authorization`` header); now that one action skips the credential check and
    the token is checked instead. The token is a JWT whose payload is decoded; its signature is
    NOT verified (the stand-in has no issuer keys to check it against). ``exp`` in the past
    gives ExpiredTokenException, a token that is not a JWT InvalidIdentityToken. The OIDC
    provider ``arn:aws:iam::ACCOUNT:oidc-provider/HOST`` (HOST = ``iss`` without ``https://``)
    must exist in the role's account (else InvalidIdentityToken "No OpenIDConnect provider
    found ...") and list the token's ``aud`` as a client id (else InvalidIdentityToken
    "Incorrect token audience"), as AWS words them. The role must exist and its trust policy
    must allow sts:AssumeRoleWithWebIdentity to ``{"Federated": PROVIDER_ARN}`` with its
    conditions on ``HOST:sub`` / ``HOST:aud`` (``azp`` if the token has one, as AWS) /
    ``HOST:amr`` holding; a condition on any other ``HOST:`` key fails, since AWS supplies no
    such key. Otherwise AccessDenied (HTTP 403) "Not authorized to perform
    sts:AssumeRoleWithWebIdentity".
    Other unsigned STS calls (AssumeRole, GetCallerIdentity, GetSessionToken,
    GetFederationToken), which moto routed to its S3 mock, get STS's 403
    MissingAuthenticationToken as on AWS. Unsigned AssumeRoleWithSAML is left as moto has it.

Session tags (sts:AssumeRole with ``Tags`` / ``TransitiveTagKeys``)
    The target role's trust policy and the caller's identity policy must both allow
    sts:TagSession, else AccessDenied "User: ARN is not authorized to perform: sts:TagSession on
    resource: ROLE" (AWS's wording). The same holds when the caller is a session that carries
    transitive tags, since those are passed on to the new session. Request checks as recorded
    against AWS: duplicate keys (case-insensitive), a transitive key missing from ``Tags``, or a
    tag key that clashes with an inherited transitive tag give InvalidParameterValue.

Role chaining
    A session calling sts:AssumeRole is chaining: its identity policy is the role's, the next
    trust policy must name the role (or its account), and DurationSeconds > 3600 gives
    ValidationError "The requested DurationSeconds exceeds the 1 hour session limit for roles
    assumed by role chaining." DurationSeconds above the role's MaxSessionDuration gives
    ValidationError "... exceeds the MaxSessionDuration set for this role." (both calls).

What each session received, for assertions
    ``GET /xacct-standin/session-tags?session_arn=ARN`` (or ``?access_key_id=ASIA...``, or no
    filter for all) on the moto server answers ``{"sessions": [RECORD, ...]}``, oldest first,
    404 when a filter matches nothing. A RECORD names the session, role, caller and action, the
    ``tags`` and ``transitive_tag_keys`` of the request, the ``inherited_transitive_tags`` from
    the calling session, the ``effective_tags`` (both) and the ``transitive_tags`` it passes on.
    ``tests.standins.aws_world.session_tags`` reads it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.responses import ActionResult
from moto.iam import access_control
from moto.iam import models as iam_models
from moto.iam.exceptions import NotFoundException
from moto.iam.utils import format_incoming_conditional_values
from moto.moto_server import werkzeug_app
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sts.models import AssumedRole
from moto.sts.responses import TokenResponse
from werkzeug.exceptions import HTTPException

from tests.standins.moto_xacct import trust_allows

SESSION_TAGS_PATH = "/xacct-standin/session-tags"
CHAINING_LIMIT_SECONDS = 3600
CHAINING_MESSAGE = (
    "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role "
    "chaining."
)
MAX_SESSION_MESSAGE = (
    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
)
WEB_IDENTITY_DENIED = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
NOT_A_JWT = (
    "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)"
)

# STS actions that need a signature. moto routes an unsigned request by its Action only for
# the actions in werkzeug_app.UNSIGNED_ACTIONS (else to its S3 mock): these are added there.
_SIGNED = ("AssumeRole", "GetCallerIdentity", "GetSessionToken", "GetFederationToken")
_ROLE_ARN = re.compile(r"arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):role/.+")
_TAG = re.compile(r"Tags\.member\.(\d+)\.(Key|Value)")
_TRANSITIVE_KEY = re.compile(r"TransitiveTagKeys\.member\.(\d+)")


class StsError(HTTPException):
    """An error in STS's query-protocol XML, raised from an authorizer or an action handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>Sender</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
            "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        )
        super().__init__(description=body)
        self.code = status
        self.error_code = code

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("Content-Type", "text/xml")]


def _invalid_token(message: str) -> StsError:
    return StsError(400, "InvalidIdentityToken", message)


# ---- what each session received -------------------------------------------------------------


@dataclass(frozen=True)
class SessionRecord:
    session_arn: str
    role_arn: str
    caller_arn: str
    action: str
    access_key_id: str
    tags: dict[str, str]
    transitive_tag_keys: tuple[str, ...]
    inherited_transitive_tags: dict[str, str]

    @property
    def transitive_tags(self) -> dict[str, str]:
        """What the next hop inherits: inherited transitive tags stay transitive (AWS)."""
        keys = {key.lower() for key in self.transitive_tag_keys}
        own = {key: value for key, value in self.tags.items() if key.lower() in keys}
        return {**self.inherited_transitive_tags, **own}

    def as_json(self) -> dict[str, Any]:
        return {
            "session_arn": self.session_arn,
            "role_arn": self.role_arn,
            "caller_arn": self.caller_arn,
            "action": self.action,
            "access_key_id": self.access_key_id,
            "tags": self.tags,
            "transitive_tag_keys": list(self.transitive_tag_keys),
            "inherited_transitive_tags": self.inherited_transitive_tags,
            "effective_tags": {**self.inherited_transitive_tags, **self.tags},
            "transitive_tags": self.transitive_tags,
        }


_sessions: dict[str, SessionRecord] = {}  # by access key id, in creation order
_sessions_lock = threading.Lock()


def _record(record: SessionRecord) -> None:
    with _sessions_lock:
        _sessions[record.access_key_id] = record


def _transitive_tags_of(access_key_id: str) -> dict[str, str]:
    with _sessions_lock:
        record = _sessions.get(access_key_id)
    return record.transitive_tags if record else {}


def requested_tags(data: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """Tags and TransitiveTagKeys of a query-protocol request (``Tags.member.N.Key`` ...)."""
    pairs: dict[int, dict[str, str]] = {}
    transitive: dict[int, str] = {}
    for name, raw in data.items():
        value = str(raw[0] if isinstance(raw, list) else raw)
        if tag := _TAG.fullmatch(name):
            pairs.setdefault(int(tag[1]), {})[tag[2]] = value
        elif key := _TRANSITIVE_KEY.fullmatch(name):
            transitive[int(key[1])] = value
    tags = [(pair.get("Key", ""), pair.get("Value", "")) for _, pair in sorted(pairs.items())]
    return tags, [key for _, key in sorted(transitive.items())]


# ---- checks ----------------------------------------------------------------------------------


def _auth_active() -> bool:
    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


def _role(role_arn: str) -> iam_models.Role | None:
    """The role in the account its ARN names (not the caller's)."""
    match = _ROLE_ARN.fullmatch(role_arn)
    if match is None:
        return None
    try:
        return iam_models.iam_backends[match["account"]][match["partition"]].get_role_by_arn(
            role_arn
        )
    except NotFoundException:
        return None


def _identity_allows(request: Any, action: str, resource: str) -> bool:
    """The caller's identity policies (a session's are its role's) allow `action` on it."""
    permitted = False
    for document in request._access_key.collect_policies():
        verdict = access_control.IAMPolicy(document).is_action_permitted(action, resource)
        if verdict == access_control.PermissionResult.DENIED:
            return False
        permitted = permitted or verdict == access_control.PermissionResult.PERMITTED
    return permitted


def _with_tag_session(base: Callable[[Any, str], bool]) -> Callable[[Any, str], bool]:
    """Wrap the AssumeRole trust check: tagging a session also needs sts:TagSession."""

    def check(self: Any, role_arn: str) -> bool:
        if not base(self, role_arn):
            return False
        if self._action != "sts:AssumeRole":
            return True
        tags, transitive_keys = requested_tags(self._data)
        inherited = _transitive_tags_of(str(getattr(self._access_key, "_access_key_id", "")))
        if not (tags or transitive_keys or inherited):
            return True
        caller = str(self._access_key.arn)
        role = _role(role_arn)
        context = format_incoming_conditional_values(self._data)
        context |= {f"aws:RequestTag/{k}": v for k, v in [*inherited.items(), *tags]}
        trusted = role is not None and trust_allows(
            json.loads(role.assume_role_policy_document),
            caller,
            context,
            action="sts:TagSession",
            strict_prefixes=("aws:RequestTag/",),
        )
        if not (trusted and _identity_allows(self, "sts:TagSession", role_arn)):
            message = f"User: {caller} is not authorized to perform: sts:TagSession"
            raise StsError(403, "AccessDenied", f"{message} on resource: {role_arn}")
        return True

    return check


def _check_tags(
    tags: list[tuple[str, str]], transitive_keys: Iterable[str], inherited: Mapping[str, str]
) -> None:
    keys = [key.lower() for key, _ in tags]
    if len(set(keys)) != len(keys):
        raise StsError(
            400,
            "InvalidParameterValue",
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
        )
    if any(key.lower() not in keys for key in transitive_keys):
        raise StsError(
            400,
            "InvalidParameterValue",
            "The specified transitive tag key must be included in the requested tags.",
        )
    if {key.lower() for key in inherited} & set(keys):
        raise StsError(
            400,
            "InvalidParameterValue",
            "One of the specified transitive tag keys can't be set because it conflicts with a "
            "transitive tag key from the calling session.",
        )


def _check_duration(role_arn: str, duration: int, *, chained: bool) -> None:
    if chained and duration > CHAINING_LIMIT_SECONDS:
        raise StsError(400, "ValidationError", CHAINING_MESSAGE)
    role = _role(role_arn)
    if role is not None and duration > int(role.max_session_duration or 3600):
        raise StsError(400, "ValidationError", MAX_SESSION_MESSAGE)


def _b64url_json(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.b64decode(padded, altchars=b"-_", validate=True))


def decode_jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT: header.payload.signature, each base64url.

    The signature is NOT verified (the stand-in knows no issuer keys); the shape, a signing
    algorithm other than "none", and JSON objects in header and payload are required.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise _invalid_token(NOT_A_JWT)
    try:
        header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _invalid_token(NOT_A_JWT) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _invalid_token(NOT_A_JWT)
    if str(header.get("alg", "none")).lower() == "none":
        raise _invalid_token("The ID Token is not signed")
    return claims


@dataclass(frozen=True)
class WebIdentity:
    """A token that passed every check for one role."""

    claims: dict[str, Any]
    issuer: str
    provider_arn: str
    audience: str


def check_web_identity(role_arn: str, token: str, *, now: float | None = None) -> WebIdentity:
    """What AWS checks for sts:AssumeRoleWithWebIdentity, in the order of its answers."""
    claims = decode_jwt_claims(token)
    now = time.time() if now is None else now
    expires, issuer, subject = claims.get("exp"), claims.get("iss"), claims.get("sub")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise _invalid_token("The token has no valid exp claim")
    if not (isinstance(issuer, str) and issuer.startswith("https://") and len(issuer) > 8):
        raise _invalid_token("The token's iss claim is not an https URL")
    if not (isinstance(subject, str) and subject and isinstance(audiences, list) and audiences):
        raise _invalid_token("The token lacks a sub or aud claim")
    if expires <= now:
        raise StsError(
            400,
            "ExpiredTokenException",
            f"Token expired: current date/time {int(now)} must be before the expiration "
            f"date/time{int(expires)}",
        )
    match = _ROLE_ARN.fullmatch(role_arn)
    if match is None:
        raise StsError(400, "ValidationError", f"{role_arn} is invalid")
    host = issuer.removeprefix("https://").rstrip("/")
    provider_arn = f"arn:{match['partition']}:iam::{match['account']}:oidc-provider/{host}"
    iam = iam_models.iam_backends[match["account"]][match["partition"]]
    provider = iam.open_id_providers.get(provider_arn)
    if provider is None:
        raise _invalid_token(f"No OpenIDConnect provider found in your account for {issuer}")
    accepted = [str(aud) for aud in audiences if str(aud) in provider.client_id_list]
    if not accepted:
        raise _invalid_token("Incorrect token audience")
    role = _role(role_arn)
    if role is None:
        raise StsError(403, "AccessDenied", WEB_IDENTITY_DENIED)
    azp = claims.get("azp")
    context = {f"{host}:sub": subject, f"{host}:aud": azp if isinstance(azp, str) else accepted[0]}
    if isinstance(claims.get("amr"), str):
        context[f"{host}:amr"] = claims["amr"]
    document = json.loads(role.assume_role_policy_document)
    if not trust_allows(
        document,
        provider_arn,
        context,
        action="sts:AssumeRoleWithWebIdentity",
        strict_prefixes=(f"{host}:",),
    ):
        raise StsError(403, "AccessDenied", WEB_IDENTITY_DENIED)
    return WebIdentity(claims, issuer, provider_arn, accepted[0])


# ---- the patched STS handlers -------------------------------------------------------------


_original_authorize = TokenResponse._authenticate_and_authorize_normal_action
_original_assume_role = TokenResponse.assume_role
_original_web_identity = TokenResponse.assume_role_with_web_identity
_original_dispatch = DomainDispatcherApplication.__call__


def _authorize(self: Any, resource: str = "*") -> None:
    self._xacct_auth = _auth_active()  # decided before moto counts this request
    if self._xacct_auth and self._get_action() == "AssumeRoleWithWebIdentity":
        return  # AWS takes no credentials for this call: the token is the proof, checked below
    if self._xacct_auth and "Authorization" not in self.headers and self._get_action() in _SIGNED:
        # Stock moto fails with a 500 (KeyError on the header); AWS answers this.
        raise StsError(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
    _original_authorize(self, resource)


def _assume_role(self: Any) -> ActionResult:
    if not getattr(self, "_xacct_auth", False):
        return _original_assume_role(self)
    role_arn = str(self._get_param("RoleArn"))
    caller_key = self.get_access_key()
    tags, transitive_keys = requested_tags(self.querystring)
    inherited = _transitive_tags_of(caller_key)
    _check_tags(tags, transitive_keys, inherited)
    chained = self.backend.get_assumed_role_from_access_key(caller_key) is not None
    _check_duration(role_arn, self._get_int_param("DurationSeconds", 3600), chained=chained)
    caller_arn = self.backend.get_caller_identity(caller_key, self.region)[1]
    result = _original_assume_role(self)
    session = _session_of(result)
    _record(
        SessionRecord(
            session_arn=session.arn,
            role_arn=role_arn,
            caller_arn=caller_arn,
            action="AssumeRole",
            access_key_id=session.access_key_id,
            tags=dict(tags),
            transitive_tag_keys=tuple(transitive_keys),
            inherited_transitive_tags=inherited,
        )
    )
    return result


def _session_of(result: ActionResult) -> AssumedRole:
    body = result.result
    session = body.get("Credentials") if isinstance(body, dict) else None
    if not isinstance(session, AssumedRole):
        raise TypeError(f"moto's AssumeRole answered {body!r}; this stand-in needs updating")
    return session


def _assume_role_with_web_identity(self: Any) -> ActionResult:
    if not getattr(self, "_xacct_auth", False):
        return _original_web_identity(self)
    role_arn = str(self._get_param("RoleArn"))
    web = check_web_identity(role_arn, str(self._get_param("WebIdentityToken") or ""))
    _check_duration(role_arn, self._get_int_param("DurationSeconds", 3600), chained=False)
    session = self.backend.assume_role_with_web_identity(
        region_name=self.region,
        role_session_name=self._get_param("RoleSessionName"),
        role_arn=role_arn,
        policy=self._get_param("Policy"),
        duration=self._get_int_param("DurationSeconds", 3600),
        external_id=None,
    )
    _record(
        SessionRecord(
            session_arn=session.arn,
            role_arn=role_arn,
            caller_arn=web.provider_arn,
            action="AssumeRoleWithWebIdentity",
            access_key_id=session.access_key_id,
            tags={},
            transitive_tag_keys=(),
            inherited_transitive_tags={},
        )
    )
    return ActionResult(
        {
            "Credentials": session,
            "SubjectFromWebIdentityToken": web.claims["sub"],
            "AssumedRoleUser": {"AssumedRoleId": session.user_id, "Arn": session.arn},
            "Provider": web.issuer,
            "Audience": web.audience,
        }
    )


# ---- GET /xacct-standin/session-tags ------------------------------------------------------


def _json_response(start_response: Any, status: str, payload: object) -> list[bytes]:
    body = json.dumps(payload, indent=1).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _standin_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = str(environ.get("PATH_INFO", ""))
    if path != SESSION_TAGS_PATH or environ.get("REQUEST_METHOD") != "GET":
        return _json_response(start_response, "404 Not Found", {"error": f"no route {path}"})
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    arn = query.get("session_arn", [None])[0]
    key = query.get("access_key_id", [None])[0]
    with _sessions_lock:
        records = [
            record.as_json()
            for record in _sessions.values()
            if arn in (None, record.session_arn) and key in (None, record.access_key_id)
        ]
    if not records and (arn or key):
        return _json_response(start_response, "404 Not Found", {"sessions": []})
    return _json_response(start_response, "200 OK", {"sessions": records})


def _dispatch(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
    if str(environ.get("PATH_INFO", "")).startswith("/xacct-standin/"):
        return _standin_app(environ, start_response)
    return _original_dispatch(self, environ, start_response)


_applied = False


def apply_sts_patches() -> None:
    """Install the above; once per process (moto_xacct.apply_patches calls it)."""
    global _applied  # noqa: PLW0603 - patches are process-wide by nature
    if _applied:
        return
    _applied = True
    request_base = access_control.IAMRequestBase
    trust_check = _with_tag_session(request_base._check_role_trust_relationship)
    request_base._check_role_trust_relationship = trust_check  # type: ignore[method-assign,assignment]
    TokenResponse._authenticate_and_authorize_normal_action = _authorize  # type: ignore[method-assign]
    TokenResponse.assume_role = _assume_role  # type: ignore[method-assign]
    TokenResponse.assume_role_with_web_identity = _assume_role_with_web_identity  # type: ignore[method-assign]
    DomainDispatcherApplication.__call__ = _dispatch  # type: ignore[method-assign]
    werkzeug_app.UNSIGNED_ACTIONS.update(dict.fromkeys(_SIGNED, ("sts", "us-east-1")))
