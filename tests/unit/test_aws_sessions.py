"""AWS through boto3: one session per identity, every client made by `credentials.client` with
the one Config, credentials masked before anything can log them, and a refused AssumeRole
carrying what AWS answered to the doctor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.stub import Stubber

from gitlab_xacct.aws import credentials
from gitlab_xacct.aws.credentials import AssumeRoleError, base_session, client, new_session
from gitlab_xacct.config.identity import IdentitySettings
from gitlab_xacct.config.options import IDENTITY_OPTIONS
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.doctor import identity as doctor_identity
from gitlab_xacct.doctor.identity import Caller
from gitlab_xacct.secrets import mask

TARGET = "arn:aws:iam::222222222222:role/OurThingBuildRole"
CALLER = "arn:aws:iam::111111111111:user/runner"


def settings(**env: str) -> IdentitySettings:
    base = {"XACCT_ROLE_ARN": TARGET, "AWS_REGION": "eu-west-1", "CI_JOB_ID": "7"}
    return IdentitySettings.resolve(Resolver({**base, **env}, {}, IDENTITY_OPTIONS))


def test_each_identity_has_a_boto3_session_of_its_own() -> None:
    one = new_session(aws_access_key_id="AKIDONE", aws_secret_access_key="s1", region_name="a")
    two = new_session(aws_access_key_id="AKIDTWO", aws_secret_access_key="s2", region_name="b")
    assert isinstance(one, boto3.Session)
    assert one is not two
    assert (one.region_name, two.region_name) == ("a", "b")
    first, second = one.get_credentials(), two.get_credentials()
    assert first is not None
    assert second is not None
    assert (first.access_key, second.access_key) == ("AKIDONE", "AKIDTWO")


def test_clients_get_standard_retries_four_attempts_and_the_tool_in_the_user_agent() -> None:
    session = new_session(aws_access_key_id="AKID", aws_secret_access_key="x")
    sts = client(session, "sts", "eu-west-1")
    config = vars(sts.meta.config)  # botocore's Config keeps its options as attributes
    assert config["retries"] == {"mode": "standard", "total_max_attempts": 4}
    assert (config["connect_timeout"], config["read_timeout"]) == (10, 30)
    assert "gitlab-xacct/" in config["user_agent_extra"]
    assert config["signature_version"] is not UNSIGNED
    assert sts.meta.region_name == "eu-west-1"


def test_the_web_identity_client_is_unsigned_and_needs_no_credentials() -> None:
    sts = client(new_session(), "sts", "eu-west-1", unsigned=True)  # no AWS_* keys at all
    assert vars(sts.meta.config)["signature_version"] is UNSIGNED


def test_aws_endpoint_url_per_service_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:2")
    session = new_session(aws_access_key_id="AKID", aws_secret_access_key="x")
    assert client(session, "sts", "eu-west-1").meta.endpoint_url == "http://127.0.0.1:1"
    assert client(session, "ecr", "eu-west-1").meta.endpoint_url == "http://127.0.0.1:2"


def test_the_base_identity_is_the_default_chain_and_its_secrets_are_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDBASEEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel-base-secret-7f3e")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "sentinel-base-token-0b9d")
    found = base_session().get_credentials()
    assert found is not None
    assert found.access_key == "AKIDBASEEXAMPLE"
    text = mask("sentinel-base-secret-7f3e sentinel-base-token-0b9d")
    assert "sentinel" not in text


class _Sts:
    """The STS client `credentials.client` hands out, answered by botocore's Stubber."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        session = new_session(aws_access_key_id="AKID", aws_secret_access_key="x")
        self.sts = client(session, "sts", "eu-west-1")
        self.stub = Stubber(self.sts)
        self.stub.activate()
        monkeypatch.setattr(credentials, "client", lambda *_a, **_k: self.sts)


def test_an_assumed_role_is_a_session_with_its_credentials_masked_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _Sts(monkeypatch)
    creds: dict[str, Any] = {
        "AccessKeyId": "ASIAEXAMPLEROLE1",
        "SecretAccessKey": "sentinel-role-secret-41aa",
        "SessionToken": "sentinel-role-token-9c1d",
        "Expiration": datetime(2030, 1, 1, tzinfo=UTC),
    }
    arn = "arn:aws:sts::222222222222:assumed-role/OurThingBuildRole/s"
    fake.stub.add_response(
        "assume_role",
        {"Credentials": creds, "AssumedRoleUser": {"Arn": arn, "AssumedRoleId": "AROA:s"}},
    )
    identity = settings()
    role = credentials.assume_role(
        new_session(), identity.target, label="XACCT_ROLE_ARN", session_name="job-7",
        region="eu-west-1", duration_seconds=900,
    )  # fmt: skip
    assert (role.arn, role.account, role.access_key_id) == (arn, "222222222222", "ASIAEXAMPLEROLE1")
    assert isinstance(role.session, boto3.Session)
    got = role.session.get_credentials()
    assert got is not None
    assert got.secret_key == "sentinel-role-secret-41aa"
    assert "sentinel" not in mask("sentinel-role-secret-41aa sentinel-role-token-9c1d")


def test_a_refused_assume_role_carries_what_aws_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _Sts(monkeypatch)
    fake.stub.add_client_error(
        "assume_role", "AccessDenied", f"User: {CALLER} is not authorized", http_status_code=403
    )
    fake.stub.add_response(
        "get_caller_identity", {"Arn": CALLER, "Account": "111111111111", "UserId": "AIDA"}
    )
    with pytest.raises(AssumeRoleError) as caught:
        credentials.assume_role(
            new_session(), settings().target, label="XACCT_ROLE_ARN", session_name="job-7",
            region="eu-west-1", duration_seconds=900,
        )  # fmt: skip
    assert caught.value.exit_code == 3
    assert (caught.value.code, caught.value.aws_message) == (
        "AccessDenied",
        f"User: {CALLER} is not authorized",
    )
    assert str(caught.value).startswith(f"AccessDenied at XACCT_ROLE_ARN: {CALLER} may not")


def test_the_doctor_reads_the_code_from_the_error_not_its_context() -> None:
    """An AssumeRoleError raised on its own (no botocore error behind it) is diagnosed by its
    code: role chaining is the GitLab side's duration, exit 2."""
    refused = AssumeRoleError(
        "XACCT_ROLE_ARN: sts:AssumeRole on ... failed: ValidationError: ...",
        code="ValidationError",
        aws_message="The requested DurationSeconds exceeds the 1 hour session limit for roles "
        "assumed by role chaining.",
    )
    assert refused.__context__ is None
    caller = Caller(new_session(), CALLER)
    check = doctor_identity._diagnose(settings(), 1, caller, refused)
    assert (check.status, check.side, check.exit_code) == ("FAIL", "GitLab variables", 2)
    assert check.fix == "set XACCT_DURATION_SECONDS to 3600 or less"
    unreached = AssumeRoleError("could not reach AWS STS to assume ...: timeout")
    check = doctor_identity._diagnose(settings(), 1, caller, unreached)
    assert (check.side, check.exit_code, check.fix) == ("BUILD", 3, "see above")
