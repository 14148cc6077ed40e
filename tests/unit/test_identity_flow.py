"""The hop order, the chaining limit and the account check, with STS replaced by a recorder."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from boto3.session import Session

from gitlab_xacct.aws import identity as flow
from gitlab_xacct.aws.credentials import AssumedRole, new_session
from gitlab_xacct.config.identity import Hop, IdentitySettings, WebIdentity
from gitlab_xacct.config.options import IDENTITY_OPTIONS
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.errors import ConfigError, IdentityError

TARGET = "arn:aws:iam::222222222222:role/OurThingBuildRole"
HUB = "arn:aws:iam::333333333333:role/HubRole"


def settings(**env: str) -> IdentitySettings:
    base = {"XACCT_ROLE_ARN": TARGET, "AWS_REGION": "eu-west-1", "CI_JOB_ID": "7"}
    return IdentitySettings.resolve(Resolver({**base, **env}, {}, IDENTITY_OPTIONS))


class Recorder:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, caller: str) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.caller = caller
        monkeypatch.setattr(flow, "base_session", self.base_session)
        monkeypatch.setattr(flow, "caller_arn", self.caller_arn)
        monkeypatch.setattr(flow, "assume_role", self.assume_role)
        monkeypatch.setattr(flow, "assume_with_web_identity", self.web)

    def base_session(self) -> Session:
        self.calls.append(("base", None))
        return new_session(region_name="eu-west-1")

    def caller_arn(self, _session: Session, _region: str) -> str:
        self.calls.append(("whoami", None))
        return self.caller

    def role(self, arn: str) -> AssumedRole:
        return AssumedRole(
            session=new_session(region_name="eu-west-1"),
            arn=arn,
            account=arn.split(":")[4],
            access_key_id="ASIA",
            expiration=datetime(2030, 1, 1, tzinfo=UTC),
        )

    def assume_role(self, _caller: Session, hop: Hop, **kw: Any) -> AssumedRole:
        self.calls.append(("assume", (str(hop.role), kw["label"], kw["tags"])))
        account, name = hop.role.account, hop.role.name
        return self.role(f"arn:aws:sts::{account}:assumed-role/{name}/s")

    def web(self, web: WebIdentity, **_kw: Any) -> AssumedRole:
        self.calls.append(("web", str(web.role)))
        return self.role("arn:aws:sts::111111111111:assumed-role/GitLabOidcRole/s")


def test_chain_in_order_with_tags_on_the_first_hop_only(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, caller="arn:aws:iam::111111111111:user/runner")
    role = flow.assume_target(
        settings(XACCT_ROLE_CHAIN=HUB, XACCT_SESSION_TAGS="true", CI_PROJECT_PATH="team/app")
    )
    assert role.account == "222222222222"
    assumes = [call[1] for call in rec.calls if call[0] == "assume"]
    assert [(arn, label) for arn, label, _ in assumes] == [
        (HUB, "hop 1 of 2 (XACCT_ROLE_CHAIN hop 1)"),
        (TARGET, "hop 2 of 2 (XACCT_ROLE_ARN)"),
    ]
    assert dict(assumes[0][2]) == {"GitLabProject": "team/app", "GitLabJobId": "7"}
    assert assumes[1][2] == ()
    assert ("whoami", None) not in rec.calls  # one hour or less: no need to ask


def test_long_duration_through_a_chain_is_refused_before_any_assume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder(monkeypatch, caller="arn:aws:iam::111111111111:user/runner")
    with pytest.raises(ConfigError, match=r"7200 s is more than AWS allows at hop 2 of 2"):
        flow.assume_target(settings(XACCT_ROLE_CHAIN=HUB, XACCT_DURATION_SECONDS="7200"))
    assert not [c for c in rec.calls if c[0] == "assume"]


def test_long_duration_from_a_user_is_fine_but_not_from_an_instance_role(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Recorder(monkeypatch, caller="arn:aws:iam::111111111111:user/runner")
    assert flow.assume_target(settings(XACCT_DURATION_SECONDS="7200")).account == "222222222222"

    rec = Recorder(monkeypatch, caller="arn:aws:sts::111111111111:assumed-role/runner/i-0abc")
    with pytest.raises(ConfigError, match=r"at XACCT_ROLE_ARN: it is assumed with role cred"):
        flow.assume_target(settings(XACCT_DURATION_SECONDS="7200"))
    assert [c[0] for c in rec.calls] == ["base", "whoami"]


def test_web_identity_comes_first_and_its_hop_is_chained(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, caller="unused")
    env = {"XACCT_WEB_IDENTITY_ROLE_ARN": "arn:aws:iam::111111111111:role/GitLabOidcRole",
           "XACCT_ID_TOKEN": "a.b.c"}  # fmt: skip
    flow.assume_target(settings(**env))
    assert [c[0] for c in rec.calls] == ["web", "assume"]
    with pytest.raises(ConfigError, match="role chaining"):
        flow.assume_target(settings(XACCT_DURATION_SECONDS="3601", **env))


def test_account_outside_the_allowed_list_is_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    Recorder(monkeypatch, caller="arn:aws:iam::111111111111:user/runner")
    with pytest.raises(IdentityError, match=r"account 222222222222 .* does not list") as info:
        flow.assume_target(settings(XACCT_ALLOWED_ACCOUNT_IDS="444444444444"))
    assert info.value.exit_code == 3
    assert flow.assume_target(settings(XACCT_ALLOWED_ACCOUNT_IDS="222222222222"))
