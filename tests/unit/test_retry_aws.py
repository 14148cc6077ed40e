"""Past botocore's bound (4 attempts), the STS and ECR errors say how often they tried and what
the last answer was, and blame no policy for a throttled or failing service."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from gitlab_xacct.aws import ecr, explain
from gitlab_xacct.config.identity import WebIdentity
from gitlab_xacct.config.validate import role_arn
from gitlab_xacct.errors import RegistryAuthError
from gitlab_xacct.secrets import Secret

ROLE = "arn:aws:iam::222222222222:role/OurThingBuildRole"


def client_error(code: str, message: str, *, retried: int, operation: str) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"RetryAttempts": retried, "HTTPStatusCode": 503},
    }
    return ClientError(response, operation)


class _Ecr:
    def __init__(self, error: ClientError) -> None:
        self.error = error

    def get_authorization_token(self, **_kwargs: object) -> object:
        raise self.error


@pytest.mark.parametrize(
    ("code", "message"),
    [("ThrottlingException", "Rate exceeded"), ("ServerException", "Internal error")],
)
def test_ecr_past_the_bound_names_attempts_and_last_answer(code: str, message: str) -> None:
    error = client_error(code, message, retried=3, operation="GetAuthorizationToken")
    with pytest.raises(RegistryAuthError) as caught:
        ecr.login(_Ecr(error), account="222222222222", region="eu-west-1", role=ROLE)  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"ecr:GetAuthorizationToken failed after 4 attempts in account 222222222222 "
        f"(eu-west-1): {code}: {message}"
    )
    assert caught.value.exit_code == 4


def test_web_identity_throttled_past_the_bound_blames_no_trust_policy() -> None:
    web = WebIdentity(
        role=role_arn(
            "arn:aws:iam::111111111111:role/GitLabOidcRole", "XACCT_WEB_IDENTITY_ROLE_ARN"
        ),
        token=Secret("header.payload.signature"),
        token_variable="XACCT_ID_TOKEN",
    )
    error = client_error("Throttling", "Rate exceeded", retried=3,
                         operation="AssumeRoleWithWebIdentity")  # fmt: skip
    found = explain.web_identity_failure(error, web)
    assert str(found) == (
        "GitLab OIDC: sts:AssumeRoleWithWebIdentity into arn:aws:iam::111111111111:role/"
        "GitLabOidcRole failed after 4 attempts: Throttling: Rate exceeded; AWS STS is "
        "throttling or failing: rerun the job later"
    )
    assert found.exit_code == 3
    assert "trust" not in str(found)


def test_a_refusal_is_not_retried_and_says_no_attempts() -> None:
    error = client_error(
        "AccessDeniedException", "no", retried=0, operation="GetAuthorizationToken"
    )
    with pytest.raises(RegistryAuthError) as caught:
        ecr.login(_Ecr(error), account="222222222222", region="eu-west-1", role=ROLE)  # type: ignore[arg-type]
    assert "attempts" not in str(caught.value)
