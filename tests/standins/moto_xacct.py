"""moto_server with sts:AssumeRole checked the way AWS checks it across accounts.

Run as ``python -m tests.standins.moto_xacct -H 127.0.0.1 -p PORT`` (moto_server's arguments).

Stock moto 5.2 in auth mode looks the target role up in the *caller's* account, so a role in
another account skips its trust policy entirely; it also accepts a missing ExternalId, only
admits exact principal ARNs (``:root`` is refused) and lets a non-existent role be assumed.
The patches below replace that one check, keep moto's identity-policy evaluation untouched,
and make two further fixes needed for cross-account tests (see ``_patch_default_account`` and
``_ecr_resource``). ``tests/standins/moto_sts_patches.py`` adds, on top of these,
sts:AssumeRoleWithWebIdentity (GitLab OIDC), sts:TagSession with session tags, and the rules
of role chaining; ``apply_patches`` installs both.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

from moto import server
from moto.core.exceptions import JsonRESTError
from moto.ecr.responses import ECRResponse
from moto.iam import access_control
from moto.iam import models as iam_models
from moto.iam.exceptions import NotFoundException
from moto.iam.responses import IamResponse
from moto.iam.utils import (
    EXTERNAL_CONDITION_SOURCES,
    REQUIRE_RESOURCE_ACCESS_POLICIES_CHECK,
    format_incoming_conditional_values,
)
from moto.utilities.utils import PARTITION_NAMES

log = logging.getLogger(__name__)

_ROLE_ARN = re.compile(
    r"arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):role/(?:.*/)?(?P<name>[^/]+)"
)
_ACCOUNT_ROOT = re.compile(r"(?:arn:[\w-]+:iam::)?(?P<account>\d{12})(?::root)?")
_SESSION = re.compile(r"arn:[\w-]+:sts::(\d{12}):assumed-role/([^/]+)/[^/]+")
_IAM_USER = re.compile(
    r"arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):user/(?:.*/)?(?P<name>[^/]+)"
)
_OIDC_PROVIDER = re.compile(r"arn:[\w-]+:iam::\d{12}:oidc-provider/.+")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _principal_matches(principal: Any, caller_arn: str) -> bool:
    """AWS principal matching for IAM callers (users, assumed-role sessions) and OIDC providers.

    For sts:AssumeRoleWithWebIdentity the caller is the OIDC provider's ARN, which only a
    ``{"Federated": ARN}`` principal names; an ``AWS`` principal never matches it.
    """
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if _OIDC_PROVIDER.fullmatch(caller_arn):
        return caller_arn in [str(value) for value in _as_list(principal.get("Federated", []))]
    expected = _as_list(principal.get("AWS", []))
    return any(_one_principal_matches(str(value), caller_arn) for value in expected)


def _one_principal_matches(expected: str, caller_arn: str) -> bool:
    caller_account = caller_arn.split(":")[4]
    session = _SESSION.fullmatch(caller_arn)
    user = _IAM_USER.fullmatch(caller_arn)
    root = _ACCOUNT_ROOT.fullmatch(expected)
    role = _ROLE_ARN.fullmatch(expected)
    named = _IAM_USER.fullmatch(expected)
    return (
        expected in ("*", caller_arn)
        # ":root" or a bare account id trusts every principal of that account.
        or bool(root and root["account"] == caller_account)
        # A role trusts its sessions: arn:aws:sts::A:assumed-role/R/S matches arn:aws:iam::A:role/R.
        or bool(role and session and (role["account"], role["name"]) == session.groups())
        # moto's caller ARN carries no user path; user names are unique within an account.
        or bool(
            named and user and (named["account"], named["name"]) == (user["account"], user["name"])
        )
    )


def _string_test(operator: str, expected: Any, actual: str) -> bool | None:
    """One condition operator; None when it is not one this stand-in understands."""
    candidates = [str(value) for value in _as_list(expected)]
    if operator == "StringEquals":
        return actual in candidates
    if operator == "StringNotEquals":
        return actual not in candidates
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() in [value.lower() for value in candidates]
    if operator == "StringLike":
        return any(_wildcard(value, actual) for value in candidates)
    if operator == "StringNotLike":
        return not any(_wildcard(value, actual) for value in candidates)
    return None


def _conditions_hold(
    conditions: dict[str, dict[str, Any]],
    context: dict[str, str],
    strict_prefixes: tuple[str, ...] = (),
) -> bool:
    """Every condition holds; keys under `strict_prefixes` come from the request (absent: fail)."""
    for operator, pairs in conditions.items():
        base = operator.removesuffix("IfExists")
        for key, expected in pairs.items():
            actual = context.get(key)
            if operator == "Null":
                if (actual is None) != (str(expected).lower() == "true"):
                    return False
                continue
            if actual is None:
                if operator.endswith("IfExists"):
                    continue
                if key in EXTERNAL_CONDITION_SOURCES or key.startswith(strict_prefixes):
                    return False  # AWS: an absent key fails the test (moto let it pass)
                continue  # a key moto never supplies (aws:PrincipalOrgID...): ignored, as moto does
            verdict = _string_test(base, expected, actual)
            if verdict is None:
                log.warning("trust condition %s unsupported here: denying", operator)
                return False  # fail closed rather than grant by accident
            if not verdict:
                return False
    return True


def trust_allows(
    document: dict[str, Any],
    caller_arn: str,
    context: dict[str, str],
    *,
    action: str = "sts:AssumeRole",
    strict_prefixes: tuple[str, ...] = (),
) -> bool:
    """Evaluate a role trust policy for `action`: an explicit Deny wins, else any Allow.

    `caller_arn` is the calling IAM principal, or the OIDC provider's ARN for web identity.
    Condition keys starting with one of `strict_prefixes` are supplied by the request, so one
    that is absent from `context` fails its condition (as in AWS) instead of being ignored.
    """
    allowed = False
    for statement in _as_list(document.get("Statement", [])):
        if "NotAction" in statement:
            concerned = not any(
                _wildcard(a, action, ignore_case=True) for a in _as_list(statement["NotAction"])
            )
        else:
            concerned = any(
                _wildcard(a, action, ignore_case=True)
                for a in _as_list(statement.get("Action", []))
            )
        if not concerned or not _principal_matches(statement.get("Principal"), caller_arn):
            continue
        if not _conditions_hold(statement.get("Condition", {}), context, strict_prefixes):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _is_assuming_role_operation(self: Any, resource_arn: str) -> bool:
    # Stock moto answers False when the role is not in the caller's account, which skipped the
    # trust check for every cross-account (and every non-existent) role. Always check it.
    return self._action in REQUIRE_RESOURCE_ACCESS_POLICIES_CHECK


def _check_role_trust_relationship(self: Any, role_arn: str) -> bool:
    # Look the role up in the account its ARN names, not in the caller's account.
    match = _ROLE_ARN.fullmatch(role_arn)
    if match is None:
        return False
    backend = iam_models.iam_backends[match["account"]][match["partition"]]
    try:
        role = backend.get_role_by_arn(role_arn)
    except NotFoundException:
        return False  # AWS refuses to assume a role that does not exist: AccessDenied
    document = json.loads(role.assume_role_policy_document)
    context = format_incoming_conditional_values(self._data)
    return trust_allows(document, self._access_key.arn, context)


def _ecr_resource(self: Any) -> str:
    # moto authorises every ECR call against Resource "*", so a policy scoped to repository ARNs
    # (as real ones are) never matched. Name the repository the call is about, as AWS does.
    if self._get_action() == "GetAuthorizationToken":
        return "*"
    account = self._get_param("registryId") or self.current_account
    prefix = f"arn:{self.partition}:ecr:{self.region}:{account}:repository/"
    names = _as_list(self._get_param("repositoryName") or self._get_param("repositoryNames"))
    # Several names (or none, as in a listing) need the account-wide grant; one ARN per call.
    return prefix + (names[0] if len(names) == 1 and names[0] else "*")


def _iam_resource(self: Any) -> str:
    # moto names the resource of role calls only; every user and group call was authorised
    # against "*", so a policy scoped to the caller's own ARN (iam:GetUserPolicy on
    # arn:aws:iam::A:user/NAME, as AWS evaluates it) never matched. Name them as AWS does.
    resource = _original_iam_resource(self)
    if resource != "*":
        return resource
    for key, kind in (("UserName", "user"), ("GroupName", "group")):
        names = self.data.get(key)
        if names:
            return f"arn:{self.partition}:iam::{self.current_account}:{kind}/{names[0]}"
    return resource


_original_iam_resource = IamResponse._determine_resource


def _raise_access_denied(self: Any) -> None:
    # moto words every denial as IAM's XML; ECR speaks JSON, so botocore saw Code "403" with the
    # XML as message. Answer as AWS ECR does: HTTP 400, {"__type": "AccessDeniedException"}.
    if self._service == "ecr":
        message = f"User: {self._access_key.arn} is not authorized to perform: {self._action}"
        raise JsonRESTError("AccessDeniedException", message)
    _original_raise_access_denied(self)


_original_raise_access_denied = access_control.IAMRequest._raise_access_denied


def _patch_default_account() -> None:
    # moto treats MOTO_ACCOUNT_ID as an override for *every* request, which pins the calls made
    # with assumed-role credentials to that account too (cross-account lands in the wrong
    # place). Make it only the fallback for access keys moto does not know, like its default.
    default_account = os.environ.pop("MOTO_ACCOUNT_ID", None)
    if default_account is None:
        return

    def get_account_id_from(access_key: str) -> str:
        for account_id, account in list(iam_models.iam_backends.items()):
            for partition in PARTITION_NAMES:
                if access_key in account[partition].access_keys:
                    return str(account_id)
        return default_account

    iam_models.get_account_id_from = get_account_id_from


def apply_patches() -> None:
    # Imported here: that module builds on this one's trust evaluator. (Run as __main__, this
    # file is then imported once more as tests.standins.moto_xacct; only functions are used.)
    from tests.standins.moto_sts_patches import apply_sts_patches

    _patch_default_account()
    # moto ships type hints; these assignments replace methods on purpose.
    request_base = access_control.IAMRequestBase
    request_base._is_assuming_role_operation = _is_assuming_role_operation  # type: ignore[method-assign]
    request_base._check_role_trust_relationship = _check_role_trust_relationship  # type: ignore[method-assign]
    ECRResponse._determine_resource = _ecr_resource  # type: ignore[attr-defined]
    IamResponse._determine_resource = _iam_resource  # type: ignore[method-assign]
    access_control.IAMRequest._raise_access_denied = _raise_access_denied  # type: ignore[method-assign]
    apply_sts_patches()  # wraps the trust check installed just above


def main(argv: list[str] | None = None) -> None:
    apply_patches()
    server.main(argv)


if __name__ == "__main__":
    main()
