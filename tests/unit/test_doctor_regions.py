"""The doctor's look into other regions: in parallel, within one deadline, each answer sorted
(there, not there, refused or not enabled, no answer)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError

from gitlab_xacct.aws.credentials import AssumedRole, new_session
from gitlab_xacct.doctor import regions

ACCOUNT = "222222222222"
RELEASE = threading.Event()


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "DescribeRepositories")


class _Ecr:
    def __init__(self, region: str) -> None:
        self.region = region

    def describe_repositories(self, **_kw: Any) -> dict[str, Any]:
        answers: dict[str, BaseException | None] = {
            "us-east-1": None,
            "eu-west-1": _error("RepositoryNotFoundException"),
            "af-south-1": _error("UnrecognizedClientException"),  # not enabled
            "eu-west-2": _error("AccessDeniedException"),
            "sa-east-1": ConnectTimeoutError(endpoint_url="https://x"),
        }
        if self.region == "ap-east-2":  # never answers in time
            RELEASE.wait(5)
        answer = answers.get(self.region)
        if answer is not None:
            raise answer
        return {"repositories": [{"repositoryName": "team/app"}]}


def test_each_region_answered_sorted_and_the_deadline_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(regions, "client", lambda _s, _svc, region, **_k: _Ecr(region))
    role = AssumedRole(
        session=new_session(aws_access_key_id="AKID", aws_secret_access_key="sentinel-x"),
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/R/s",
        account=ACCOUNT,
        access_key_id="AKID",
        expiration=datetime(2030, 1, 1, tzinfo=UTC),
    )
    asked = ["us-east-1", "eu-west-1", "af-south-1", "eu-west-2", "sa-east-1", "ap-east-2"]
    started = time.monotonic()
    try:
        found = regions.search(role, "team/app", asked, deadline=0.5)
        # The one still asking does not hold the process's exit: its thread is a daemon.
        late = [t for t in threading.enumerate() if t.name.startswith("doctor-region-")]
        assert late
        assert all(t.daemon for t in late)
    finally:
        RELEASE.set()
    assert time.monotonic() - started < 2
    assert found.holding == ("us-east-1",)
    assert found.missing == ("eu-west-1",)
    assert found.refused == ("af-south-1", "eu-west-2")
    assert found.unanswered == ("sa-east-1", "ap-east-2")
    assert found.looked == 2


def test_candidates_put_the_hints_first_and_leave_out_the_own_region() -> None:
    session = new_session(aws_access_key_id="AKID", aws_secret_access_key="sentinel-x")
    role = AssumedRole(session, f"arn:aws:sts::{ACCOUNT}:assumed-role/R/s", ACCOUNT, "AKID",
                       datetime(2030, 1, 1, tzinfo=UTC))  # fmt: skip
    listed = regions.candidates(role, "aws", "eu-west-1", ["us-west-2", "", "eu-west-1"])
    assert listed[0] == "us-west-2"
    assert "eu-west-1" not in listed
    assert "us-east-1" in listed
    assert len(listed) == len(set(listed))
    assert all(r.startswith("cn-") for r in regions.candidates(role, "aws-cn", "x", []))
