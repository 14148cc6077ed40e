"""The stand-ins behave like AWS and ECR where the project depends on it.

Each test asserts one specific outcome (an identity, an account, an error code, a status), so a
stand-in that let everything through, or refused everything, would fail here.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from mypy_boto3_sts.type_defs import CredentialsTypeDef

from tests.standins.aws_world import (
    AccessKey,
    World,
    build_world,
    create_user,
    policy,
    setup_session,
)
from tests.standins.moto_xacct import trust_allows
from tests.standins.servers import (
    MotoServer,
    Registry,
    loopback_http,
    start_moto,
    start_registry,
)

pytestmark = pytest.mark.integration

EXTERNAL_ID = "ext-5f0c1d"
BUILD = "111111111111"
OURTHING = "222222222222"
OUTSIDER = "333333333333"
BARE_ROLE_ARN = f"arn:aws:iam::{OURTHING}:role/NoEcrRole"


# Own servers and world (not the conftest's session ones): the extra principals below must be
# created before build_world switches auth on. Named own_* so as not to shadow conftest fixtures.
@pytest.fixture(scope="module")
def own_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with start_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module")
def extra_users(own_moto: MotoServer) -> dict[str, AccessKey]:
    """Callers allowed to assume any role, to reach the trust check past their own policy.

    Also creates NoEcrRole in OURTHING: trusted by BUILD like the real role, but no permissions.
    """
    anything = policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})
    trust = policy({"Effect": "Allow", "Principal": {"AWS": BUILD}, "Action": "sts:AssumeRole"})
    iam = setup_session(own_moto.url, OURTHING).client("iam", endpoint_url=own_moto.url)
    iam.create_role(RoleName="NoEcrRole", AssumeRolePolicyDocument=trust)
    return {  # all created before build_world turns auth on
        "build": create_user(
            setup_session(own_moto.url, BUILD), own_moto.url, "assume-any", anything
        ),
        "outsider": create_user(
            setup_session(own_moto.url, OUTSIDER), own_moto.url, "outsider", anything
        ),
    }


@pytest.fixture(scope="module")
def own_world(own_moto: MotoServer, extra_users: dict[str, AccessKey]) -> World:
    return build_world(own_moto.url, external_id=EXTERNAL_ID)


@pytest.fixture(scope="module")
def own_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


def _session(world: World, key: AccessKey) -> boto3.Session:
    return world.session(key.access_key_id, key.secret_access_key)


def _runner(world: World) -> boto3.Session:
    return world.session(world.runner_access_key_id, world.runner_secret_access_key)


def _assume(
    world: World, caller: boto3.Session, external_id: str | None, role_arn: str = ""
) -> CredentialsTypeDef:
    sts = caller.client("sts", endpoint_url=world.endpoint_url)
    role = role_arn or world.role_arn
    if external_id is None:
        return sts.assume_role(RoleArn=role, RoleSessionName="standin-test")["Credentials"]
    return sts.assume_role(RoleArn=role, RoleSessionName="standin-test", ExternalId=external_id)[
        "Credentials"
    ]


def _as_role(world: World, credentials: CredentialsTypeDef) -> boto3.Session:
    return world.session(
        credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
    )


def _error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response.get("Error", {}).get("Code"))


def test_right_external_id_lands_in_ourthing(own_world: World) -> None:
    role = _as_role(own_world, _assume(own_world, _runner(own_world), EXTERNAL_ID))
    identity = role.client("sts", endpoint_url=own_world.endpoint_url).get_caller_identity()
    assert identity["Account"] == OURTHING
    assert identity["Arn"] == f"arn:aws:sts::{OURTHING}:assumed-role/OurThingBuildRole/standin-test"
    repositories = role.client("ecr", endpoint_url=own_world.endpoint_url).describe_repositories()
    found = {(r.get("registryId"), r.get("repositoryName")) for r in repositories["repositories"]}
    assert (OURTHING, "team/app") in found


def test_root_principal_admits_another_principal_of_build(
    own_world: World, extra_users: dict[str, AccessKey]
) -> None:
    credentials = _assume(own_world, _session(own_world, extra_users["build"]), EXTERNAL_ID)
    role = _as_role(own_world, credentials)
    identity = role.client("sts", endpoint_url=own_world.endpoint_url).get_caller_identity()
    assert identity["Account"] == OURTHING


@pytest.mark.parametrize(
    ("caller", "external_id", "role_name"),
    [
        pytest.param("runner", "wrong-id", "OurThingBuildRole", id="wrong-external-id"),
        pytest.param("runner", None, "OurThingBuildRole", id="missing-external-id"),
        pytest.param("build", None, "OurThingBuildRole", id="missing-external-id-other-user"),
        pytest.param("runner", EXTERNAL_ID, "NoSuchRole", id="no-such-role-runner"),
        pytest.param("build", EXTERNAL_ID, "NoSuchRole", id="no-such-role-trust-path"),
        pytest.param("no-assume", EXTERNAL_ID, "OurThingBuildRole", id="caller-lacks-assume"),
        pytest.param("outsider", EXTERNAL_ID, "OurThingBuildRole", id="untrusted-account"),
    ],
)
def test_assume_role_denied(
    own_world: World,
    extra_users: dict[str, AccessKey],
    caller: str,
    external_id: str | None,
    role_name: str,
) -> None:
    sessions = {
        "runner": _runner(own_world),
        "no-assume": own_world.session(
            own_world.no_assume_access_key_id, own_world.no_assume_secret_access_key
        ),
        **{name: _session(own_world, key) for name, key in extra_users.items()},
    }
    role_arn = f"arn:aws:iam::{OURTHING}:role/{role_name}"
    with pytest.raises(ClientError) as error:
        _assume(own_world, sessions[caller], external_id, role_arn)
    assert _error_code(error) == "AccessDenied"


def test_assumed_role_gets_ecr_token_for_ourthing(own_world: World) -> None:
    role = _as_role(own_world, _assume(own_world, _runner(own_world), EXTERNAL_ID))
    token = role.client("ecr", endpoint_url=own_world.endpoint_url).get_authorization_token()
    data = token["authorizationData"][0]
    assert base64.b64decode(data.get("authorizationToken", "")) == b"AWS:222222222222-auth-token"


def test_assumed_role_policy_is_enforced(own_world: World) -> None:
    role = _as_role(own_world, _assume(own_world, _runner(own_world), EXTERNAL_ID))
    ecr = role.client("ecr", endpoint_url=own_world.endpoint_url)
    created = ecr.create_repository(repositoryName="team/created-by-role")["repository"]
    assert created.get("registryId") == OURTHING
    with pytest.raises(ClientError) as not_granted:
        ecr.delete_repository(repositoryName="team/created-by-role")
    assert _error_code(not_granted) == "AccessDeniedException"
    with pytest.raises(ClientError) as other_account:
        ecr.describe_repositories(registryId=BUILD)
    assert _error_code(other_account) == "AccessDeniedException"
    with pytest.raises(ClientError) as not_ecr:
        role.client("iam", endpoint_url=own_world.endpoint_url).list_roles()
    assert _error_code(not_ecr) == "AccessDenied"


def test_role_without_policy_gets_no_ecr(
    own_world: World, extra_users: dict[str, AccessKey]
) -> None:
    caller = _session(own_world, extra_users["build"])
    role = _as_role(own_world, _assume(own_world, caller, None, BARE_ROLE_ARN))
    ecr = role.client("ecr", endpoint_url=own_world.endpoint_url)
    denied = []
    for call in (
        ecr.get_authorization_token,
        ecr.describe_repositories,
        lambda: ecr.create_repository(repositoryName="team/not-allowed"),
    ):
        with pytest.raises(ClientError) as error:
            call()
        denied.append(_error_code(error))
    assert denied == ["AccessDeniedException"] * 3


def test_caller_identity_needs_no_permission(own_world: World) -> None:
    no_assume = own_world.session(
        own_world.no_assume_access_key_id, own_world.no_assume_secret_access_key
    )
    identity = no_assume.client("sts", endpoint_url=own_world.endpoint_url).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:iam::{BUILD}:user/no-assume"
    assert identity["Account"] == BUILD


def test_auth_is_on_for_unknown_keys(own_world: World) -> None:
    stranger = own_world.session("AKIAIOSFODNN7EXAMPLE", "not-a-real-secret")
    with pytest.raises(ClientError) as error:
        stranger.client("sts", endpoint_url=own_world.endpoint_url).get_caller_identity()
    assert _error_code(error) == "InvalidClientTokenId"


def test_runner_env_names_the_runner(own_world: World) -> None:
    env = own_world.runner_env()
    assert env["AWS_ACCESS_KEY_ID"] == own_world.runner_access_key_id
    assert env["AWS_ENDPOINT_URL"] == own_world.endpoint_url
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"


def test_registry_basic_auth(own_registry: Registry) -> None:
    url = f"{own_registry.url}/v2/"
    http = loopback_http()
    accepted = http.get(url, auth=("AWS", "222222222222-auth-token"), timeout=5)
    assert accepted.status_code == 200
    assert http.get(url, auth=("AWS", "wrong-password"), timeout=5).status_code == 401
    assert http.get(url, timeout=5).status_code == 401
    assert own_registry.host == own_registry.url.removeprefix("http://")


def test_servers_stop_by_pid(tmp_path: Path) -> None:
    registry = start_registry(tmp_path)
    registry.stop()
    assert registry.process.poll() is not None
    with pytest.raises(requests.ConnectionError):
        loopback_http().get(f"{registry.url}/v2/", timeout=2)


# The trust evaluator on its own: the cases the two accounts above do not reach.
ROLE = "arn:aws:iam::222222222222:role/R"


def _trust(*statements: Mapping[str, object]) -> dict[str, object]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_trust_deny_statement_wins() -> None:
    allow = {"Effect": "Allow", "Principal": {"AWS": "111111111111"}, "Action": "sts:AssumeRole"}
    deny = {**allow, "Effect": "Deny"}
    caller = "arn:aws:iam::111111111111:user/u"
    assert trust_allows(_trust(allow), caller, {})
    assert not trust_allows(_trust(allow, deny), caller, {})


def test_trust_role_principal_matches_its_sessions_only() -> None:
    statement = {"Effect": "Allow", "Principal": {"AWS": [ROLE]}, "Action": "sts:*"}
    assert trust_allows(_trust(statement), "arn:aws:sts::222222222222:assumed-role/R/s", {})
    assert not trust_allows(_trust(statement), "arn:aws:sts::222222222222:assumed-role/Q/s", {})
    assert not trust_allows(_trust(statement), "arn:aws:iam::222222222222:user/R", {})


def test_trust_external_id_if_exists_and_lists() -> None:
    condition = {"StringEqualsIfExists": {"sts:ExternalId": ["a", "b"]}}
    statement = {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}
    caller = "arn:aws:iam::111111111111:user/u"
    assert trust_allows(_trust({**statement, "Condition": condition}), caller, {})
    assert trust_allows(
        _trust({**statement, "Condition": condition}), caller, {"sts:ExternalId": "b"}
    )
    assert not trust_allows(
        _trust({**statement, "Condition": condition}), caller, {"sts:ExternalId": "c"}
    )
