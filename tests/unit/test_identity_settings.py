"""Identity settings: chains, GitLab OIDC, partitions, durations, session tags, allowed accounts."""

from __future__ import annotations

import pytest

from gitlab_xacct.config.identity import IdentitySettings, session_tags
from gitlab_xacct.config.options import IDENTITY_OPTIONS
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.errors import ConfigError

TARGET = "arn:aws:iam::222222222222:role/OurThingBuildRole"
HUB = "arn:aws:iam::333333333333:role/HubRole"


def identity(**env: str) -> IdentitySettings:
    base = {"XACCT_ROLE_ARN": TARGET, "AWS_REGION": "eu-west-1"}
    return IdentitySettings.resolve(Resolver({**base, **env}, {}, IDENTITY_OPTIONS))


def test_plain_target_is_one_hop_from_the_runner() -> None:
    s = identity(XACCT_EXTERNAL_ID="target-id")
    assert s.web_identity is None
    assert [str(h.role) for h in s.hops] == [TARGET]
    assert s.target.external_id is not None
    assert s.target.external_id.reveal() == "target-id"
    assert s.target.external_id_origin == "XACCT_EXTERNAL_ID"
    assert (s.duration_seconds, s.session_tags, s.allowed_account_ids) == (3600, (), None)


def test_chain_hops_come_first_each_with_its_own_external_id() -> None:
    s = identity(XACCT_ROLE_CHAIN=f" {HUB}|hub-id , arn:aws:iam::444444444444:role/Spoke",
                 XACCT_EXTERNAL_ID="target-id")  # fmt: skip
    assert [h.role.account for h in s.hops] == ["333333333333", "444444444444", "222222222222"]
    assert [h.external_id.reveal() if h.external_id else None for h in s.hops] == [
        "hub-id",
        None,
        "target-id",
    ]
    assert s.hops[0].origin == "XACCT_ROLE_CHAIN hop 1"
    assert "XACCT_ROLE_CHAIN hop 1" in s.hops[0].external_id_origin
    text = str(s.summary())
    assert "hub-id" not in text
    assert "target-id" not in text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"XACCT_ROLE_CHAIN": f"{HUB},,{TARGET}"}, r"^XACCT_ROLE_CHAIN: hop 2 is empty"),
        ({"XACCT_ROLE_CHAIN": "HubRole"}, r"^XACCT_ROLE_CHAIN hop 1: 'HubRole' is not an ARN"),
        ({"XACCT_ROLE_CHAIN": f"{HUB}|x"}, r"^XACCT_ROLE_CHAIN hop 1: the External ID is 1 char"),
        ({"XACCT_DURATION_SECONDS": "600"}, r"^XACCT_DURATION_SECONDS: '600' is not a session"),
        ({"XACCT_DURATION_SECONDS": "1h"}, r"900 to 43200"),
        ({"XACCT_ALLOWED_ACCOUNT_IDS": "2222"}, r"^XACCT_ALLOWED_ACCOUNT_IDS: '2222' is not an"),
        ({"XACCT_ROLE_ARN": "arn:aws-cn:iam::222222222222:role/R"}, r"aws, but .* is in aws-cn"),
        ({"AWS_REGION": "cn-north-1"}, r"^AWS_REGION: region cn-north-1 is in partition aws-cn"),
        ({"XACCT_WEB_IDENTITY_ROLE_ARN": HUB}, r"^XACCT_ID_TOKEN: empty, but XACCT_WEB_IDENTITY"),
        (
            {"XACCT_WEB_IDENTITY_ROLE_ARN": HUB, "XACCT_ID_TOKEN_VARIABLE": "MY-TOKEN"},
            r"'MY-TOKEN' is not a variable name",
        ),
    ],
)  # fmt: skip
def test_bad_identity_input_names_its_origin(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        identity(**env)
    assert "\n" not in str(info.value)


def test_partitions_pair_with_their_regions() -> None:
    cn = identity(XACCT_ROLE_ARN="arn:aws-cn:iam::222222222222:role/R", AWS_REGION="cn-north-1")
    assert cn.target.role.partition == "aws-cn"
    gov = identity(XACCT_ROLE_ARN="arn:aws-us-gov:iam::222222222222:role/R",
                   AWS_REGION="us-gov-west-1")  # fmt: skip
    assert gov.region == "us-gov-west-1"


def test_sts_endpoint_follows_the_partition() -> None:
    from gitlab_xacct.aws.credentials import client, new_session

    session = new_session(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
    for region, host in (
        ("cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn"),
        ("us-gov-west-1", "https://sts.us-gov-west-1.amazonaws.com"),
        ("eu-west-1", "https://sts.eu-west-1.amazonaws.com"),
    ):
        assert client(session, "sts", region).meta.endpoint_url == host


def test_web_identity_reads_the_named_token_variable() -> None:
    s = identity(XACCT_WEB_IDENTITY_ROLE_ARN=HUB, XACCT_ID_TOKEN_VARIABLE="GITLAB_OIDC_TOKEN",
                 GITLAB_OIDC_TOKEN="header.payload.signature")  # fmt: skip
    assert s.web_identity is not None
    assert s.web_identity.token.reveal() == "header.payload.signature"
    assert s.web_identity.token_variable == "GITLAB_OIDC_TOKEN"
    assert "header.payload" not in str(s.summary()) + repr(s)


def test_session_tags_follow_gitlab_and_are_cleaned() -> None:
    env = {
        "CI_PROJECT_PATH": "team/app",
        "CI_PIPELINE_ID": "1001",
        "CI_JOB_ID": "90001",
        "CI_COMMIT_REF_NAME": "feature/ünïcode#1",
        "CI_COMMIT_SHA": "a" * 40,
        "GITLAB_USER_LOGIN": "alice" * 100,
    }
    tags = dict(session_tags(env))
    assert tags["GitLabProject"] == "team/app"
    assert tags["GitLabRef"] == "feature/ünïcode_1"  # letters stay (AWS allows Unicode letters)
    assert len(tags["GitLabUser"]) == 256
    assert set(tags) == {"GitLabProject", "GitLabPipelineId", "GitLabJobId", "GitLabRef",
                         "GitLabCommitSha", "GitLabUser"}  # fmt: skip
    assert identity(XACCT_SESSION_TAGS="true", **env).session_tags == session_tags(env)
    assert dict(session_tags({"CI_JOB_ID": "1"})) == {"GitLabJobId": "1"}  # empty ones left out


def test_allowed_accounts() -> None:
    s = identity(XACCT_ALLOWED_ACCOUNT_IDS="222222222222, 444444444444")
    assert s.allowed_account_ids == frozenset({"222222222222", "444444444444"})
