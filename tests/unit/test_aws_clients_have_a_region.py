"""Every AWS client the tool makes has the settings' region: `credentials.client` is the only
place a botocore client is created, it refuses to make one without a region, and every call
of it names one. (An IAM client without a region signs nowhere behind an endpoint override,
NoRegionError, and outside one it lands in the aws partition whatever the region says.)"""

from __future__ import annotations

import ast
from pathlib import Path

import boto3
import pytest

from gitlab_xacct.aws.credentials import client, new_session

PACKAGE = Path(__file__).resolve().parents[2] / "gitlab_xacct"
FACTORY = PACKAGE / "aws" / "credentials.py"
# Names under which the factory (or its thin ECR wrapper) is called, and the region's position.
FACTORIES = {"client": 2, "ecr_client": 1}
MAKERS = {"client", "resource", "create_client"}  # boto3 / botocore ways to make a client


def _calls() -> list[tuple[Path, ast.Call]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [(path, node) for node in ast.walk(tree) if isinstance(node, ast.Call)]
    return found


def test_only_the_factory_makes_botocore_clients() -> None:
    elsewhere = [
        f"{path.relative_to(PACKAGE)}:{call.lineno}"
        for path, call in _calls()
        if isinstance(call.func, ast.Attribute)
        and call.func.attr in MAKERS
        and path != FACTORY
        and not (isinstance(call.func.value, ast.Name) and call.func.value.id == "ecr")
    ]
    assert not elsewhere, f"AWS clients made outside credentials.client: {elsewhere}"


def test_every_call_of_the_factory_names_a_region() -> None:
    missing = []
    seen = 0
    for path, call in _calls():
        name = call.func.id if isinstance(call.func, ast.Name) else ""
        if isinstance(call.func, ast.Attribute) and call.func.attr == "ecr_client":
            name = "ecr_client"
        if name not in FACTORIES:
            continue
        seen += 1
        position = FACTORIES[name]
        region = call.args[position] if len(call.args) > position else None
        region = region or next((k.value for k in call.keywords if k.arg == "region"), None)
        if region is None or (isinstance(region, ast.Constant) and not region.value):
            missing.append(f"{path.relative_to(PACKAGE)}:{call.lineno}")
    assert seen >= 10, "the scan found too few calls: has the factory been renamed?"
    assert not missing, f"AWS clients created without a region: {missing}"


@pytest.mark.parametrize("service", ["iam", "sts", "ecr"])
def test_the_factory_refuses_a_client_without_a_region(service: str) -> None:
    session = new_session(aws_access_key_id="AKID", aws_secret_access_key="sentinel-x")
    with pytest.raises(AssertionError, match="without a region"):
        client(session, service, "")  # type: ignore[call-overload]


def test_iam_follows_the_partition_of_the_region() -> None:
    session = new_session(aws_access_key_id="AKID", aws_secret_access_key="sentinel-x")
    assert client(session, "iam", "cn-north-1").meta.endpoint_url.endswith(".amazonaws.com.cn")
    assert isinstance(session, boto3.Session)


def test_every_client_of_a_doctor_run_has_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """At run time, through botocore itself: the doctor's own-policy reading (the IAM client
    that had none) is made with the settings' region even when only AWS_REGION is set."""
    from botocore.session import Session as BotocoreSession

    from gitlab_xacct.doctor import own_policy

    regions: list[tuple[str, str | None]] = []
    original = BotocoreSession.create_client

    def recording(self: BotocoreSession, service_name: str, *args: object, **kw: object) -> object:
        regions.append((service_name, kw.get("region_name")))  # type: ignore[arg-type]
        return original(self, service_name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(BotocoreSession, "create_client", recording)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # what boto3 does not read on its own
    session = new_session(aws_access_key_id="AKID", aws_secret_access_key="sentinel-x")
    reading = own_policy.verdict(
        session, "arn:aws:iam::111111111111:user/r", "sts:AssumeRole", "*", "eu-west-1"
    )
    assert regions == [("iam", "eu-west-1")]
    # The network is blocked here: the reading fails, and says what failed.
    assert reading.verdict is own_policy.Verdict.UNKNOWN
    assert reading.error.startswith("IAM could not be asked"), reading.error
