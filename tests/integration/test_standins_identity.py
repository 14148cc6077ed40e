"""The identity stand-ins behave like AWS: GitLab OIDC, role chains, session tags, faults.

Proofs at boto3 level against the patched moto in auth mode (tests/standins/moto_xacct.py and
moto_sts_patches.py), the chain world of tests/standins/aws_world.py and the fault proxy of
tests/standins/faultproxy.py. Each allowed path is shown to work and each rule to refuse, with
the error code (and wording, where AWS's is known) that AWS gives.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urljoin

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from mypy_boto3_sts.type_defs import AssumeRoleRequestTypeDef, CredentialsTypeDef

from tests.standins.aws_world import (
    AccessKey,
    ChainWorld,
    build_chain_world,
    create_user,
    gitlab_subject,
    make_gitlab_id_token,
    policy,
    session_tags,
    setup_session,
    unsigned_sts,
)
from tests.standins.faultproxy import FaultProxy, aws_json_error
from tests.standins.moto_sts_patches import (
    CHAINING_MESSAGE,
    MAX_SESSION_MESSAGE,
    WEB_IDENTITY_DENIED,
)
from tests.standins.moto_xacct import trust_allows
from tests.standins.servers import MotoServer, Registry, loopback_http, start_moto, start_registry

EXTERNAL_IDS = ("hub-ext-4d1c7a", "ourthing-ext-9b2e05")
BUILD = "111111111111"
OURTHING = "222222222222"
HUB = "333333333333"
NO_TAG_TRUST_ROLE = f"arn:aws:iam::{OURTHING}:role/NoTagSessionTrustRole"
TAGGER_HOP_ROLE = f"arn:aws:iam::{BUILD}:role/TaggerHopRole"
TWO_AUDIENCE_ROLE = f"arn:aws:iam::{BUILD}:role/TwoAudienceRole"
SECOND_HOST = "gitlab-two.example.test"
NO_RETRIES = Config(retries={"total_max_attempts": 1})


# Own moto (module scope) and world, not the conftest's session ones: the extra principals
# below must exist before build_chain_world switches auth on.
@pytest.fixture(scope="module")
def chain_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with start_moto(tmp_path_factory.mktemp("moto-chain")) as server:
        yield server


@pytest.fixture(scope="module")
def chain_extras(chain_moto: MotoServer) -> dict[str, AccessKey]:
    """Callers and roles beyond the chain world, all made while auth is still off.

    Users no-tag-session (sts:AssumeRole only) and tagger (sts:AssumeRole and sts:TagSession
    anywhere); TaggerHopRole in BUILD (trusts BUILD for both, may do both anywhere);
    NoTagSessionTrustRole in OURTHING (trusts BUILD for sts:AssumeRole only); a second OIDC
    provider in BUILD with two client ids, trusted by TwoAudienceRole for one of them (moto has
    no AddClientIDToOpenIDConnectProvider, so none can be added to the chain world later).
    """
    url = chain_moto.url
    build = setup_session(url, BUILD)
    both = ["sts:AssumeRole", "sts:TagSession"]
    iam = build.client("iam", endpoint_url=url)
    iam.create_role(
        RoleName="TaggerHopRole",
        AssumeRolePolicyDocument=policy(
            {"Effect": "Allow", "Principal": {"AWS": BUILD}, "Action": both}
        ),
    )
    iam.put_role_policy(
        RoleName="TaggerHopRole",
        PolicyName="assume-and-tag",
        PolicyDocument=policy({"Effect": "Allow", "Action": both, "Resource": "*"}),
    )
    second_provider = iam.create_open_id_connect_provider(
        Url=f"https://{SECOND_HOST}",
        ClientIDList=["sts.amazonaws.com", "other-audience"],
        ThumbprintList=["0" * 40],
    )["OpenIDConnectProviderArn"]
    iam.create_role(
        RoleName="TwoAudienceRole",
        AssumeRolePolicyDocument=policy(
            {
                "Effect": "Allow",
                "Principal": {"Federated": second_provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{SECOND_HOST}:aud": "sts.amazonaws.com"}},
            }
        ),
    )
    ourthing_iam = setup_session(url, OURTHING).client("iam", endpoint_url=url)
    ourthing_iam.create_role(
        RoleName="NoTagSessionTrustRole",
        AssumeRolePolicyDocument=policy(
            {"Effect": "Allow", "Principal": {"AWS": BUILD}, "Action": "sts:AssumeRole"}
        ),
    )
    return {
        "no-tag-session": create_user(
            build,
            url,
            "no-tag-session",
            policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}),
        ),
        "tagger": create_user(
            build, url, "tagger", policy({"Effect": "Allow", "Action": both, "Resource": "*"})
        ),
    }


@pytest.fixture(scope="module")
def chain(chain_moto: MotoServer, chain_extras: dict[str, AccessKey]) -> ChainWorld:
    return build_chain_world(chain_moto.url, external_ids=EXTERNAL_IDS)


@pytest.fixture(scope="module")
def proxy_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry-proxied")) as server:
        yield server


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response.get("Error", {}).get("Code"))


def _message(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response.get("Error", {}).get("Message"))


def _status(error: pytest.ExceptionInfo[ClientError]) -> int:
    return int(error.value.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _as(world: ChainWorld, credentials: CredentialsTypeDef) -> boto3.Session:
    return world.session(
        credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
    )


def _user(world: ChainWorld, key: AccessKey) -> boto3.Session:
    return world.session(key.access_key_id, key.secret_access_key)


def _assume(
    world: ChainWorld,
    caller: boto3.Session,
    role_arn: str,
    external_id: str | None = None,
    *,
    session_name: str = "standin-test",
    duration: int = 3600,
    tags: dict[str, str] | None = None,
    transitive: tuple[str, ...] = (),
    endpoint_url: str | None = None,
    config: Config | None = None,
) -> tuple[CredentialsTypeDef, str]:
    """sts:AssumeRole; the new session's credentials and ARN."""
    sts = caller.client("sts", endpoint_url=endpoint_url or world.endpoint_url, config=config)
    params: AssumeRoleRequestTypeDef = {
        "RoleArn": role_arn,
        "RoleSessionName": session_name,
        "DurationSeconds": duration,
    }
    if external_id is not None:
        params["ExternalId"] = external_id
    if tags:
        params["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
    if transitive:
        params["TransitiveTagKeys"] = list(transitive)
    response = sts.assume_role(**params)
    return response["Credentials"], response["AssumedRoleUser"]["Arn"]


def _web_identity(
    world: ChainWorld, token: str, role_arn: str = "", duration: int = 3600
) -> tuple[CredentialsTypeDef, str]:
    response = world.unsigned_sts().assume_role_with_web_identity(
        RoleArn=role_arn or world.web_identity_role_arn,
        RoleSessionName="gitlab-job-424242",
        WebIdentityToken=token,
        DurationSeconds=duration,
    )
    return response["Credentials"], response["AssumedRoleUser"]["Arn"]


def _arn_of(session: boto3.Session, world: ChainWorld) -> str:
    return session.client("sts", endpoint_url=world.endpoint_url).get_caller_identity()["Arn"]


# ---- sts:AssumeRoleWithWebIdentity ------------------------------------------------------


def test_web_identity_lands_in_the_oidc_role(chain: ChainWorld) -> None:
    token = chain.id_token(ref="main")
    response = chain.unsigned_sts().assume_role_with_web_identity(
        RoleArn=chain.web_identity_role_arn, RoleSessionName="gitlab-job-1", WebIdentityToken=token
    )
    assert response["SubjectFromWebIdentityToken"] == gitlab_subject("team/app", "main")
    assert response["Audience"] == "sts.amazonaws.com"
    assert response["Provider"] == "https://gitlab.example.test"
    arn = f"arn:aws:sts::{BUILD}:assumed-role/GitLabOidcRole/gitlab-job-1"
    assert response["AssumedRoleUser"]["Arn"] == arn
    assert response["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    web = _as(chain, response["Credentials"])
    identity = web.client("sts", endpoint_url=chain.endpoint_url).get_caller_identity()
    assert (identity["Account"], identity["Arn"]) == (BUILD, arn)
    assert session_tags(chain.endpoint_url, arn).caller_arn == chain.oidc_provider_arn


def test_web_identity_session_has_the_role_policies(chain: ChainWorld) -> None:
    credentials, _ = _web_identity(chain, chain.id_token(ref="feature/login-form"))
    web = _as(chain, credentials)
    _, hub_arn = _assume(chain, web, chain.hub_role_arn, EXTERNAL_IDS[0])  # allowed: HubRole
    assert hub_arn.startswith(f"arn:aws:sts::{HUB}:assumed-role/HubRole/")
    with pytest.raises(ClientError) as not_granted:  # the role may assume HubRole only
        _assume(chain, web, chain.ourthing_role_arn, EXTERNAL_IDS[1])
    assert _code(not_granted) == "AccessDenied"
    with pytest.raises(ClientError) as no_ecr:
        web.client("ecr", endpoint_url=chain.endpoint_url).describe_repositories()
    assert _code(no_ecr) == "AccessDeniedException"


def _token_case(
    *, role: str = "", host: str = "", sub: str = "", aud: str = "", exp_offset: int = 300
) -> Callable[[ChainWorld], tuple[str, str]]:
    """A role ARN and a GitLab token for it: the world's own, but for the values given."""

    def build(world: ChainWorld) -> tuple[str, str]:
        token = make_gitlab_id_token(
            host=host or world.oidc_host,
            sub=sub or world.subject(),
            aud=aud or world.audience,
            exp_offset=exp_offset,
        )
        return role or world.web_identity_role_arn, token

    return build


def _raw_jwt(payload: dict[str, object]) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = json.dumps({"alg": "RS256", "typ": "JWT"}).encode()
    return ".".join([part(header), part(json.dumps(payload).encode()), part(b"sig")])


def _no_sub(world: ChainWorld) -> tuple[str, str]:
    claims = {"iss": f"https://{world.oidc_host}", "aud": world.audience, "exp": 4102444800}
    return world.web_identity_role_arn, _raw_jwt(claims)


@pytest.mark.parametrize(
    ("case", "code", "status", "message"),
    [
        pytest.param(
            _token_case(sub=gitlab_subject("team/app", "v1.0", "tag")),
            "AccessDenied",
            403,
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            id="tag-not-branch",
        ),
        pytest.param(
            _token_case(sub=gitlab_subject("team/other", "main")),
            "AccessDenied",
            403,
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            id="other-project",
        ),
        pytest.param(
            _token_case(aud="https://gitlab.example.test"),
            "InvalidIdentityToken",
            400,
            "Incorrect token audience",
            id="aud-not-a-client-id",
        ),
        pytest.param(
            _token_case(host="elsewhere.example.test"),
            "InvalidIdentityToken",
            400,
            "No OpenIDConnect provider found in your account for https://elsewhere.example.test",
            id="no-provider-for-issuer",
        ),
        pytest.param(
            _token_case(role=f"arn:aws:iam::{OURTHING}:role/OurThingBuildRole"),
            "InvalidIdentityToken",
            400,
            "No OpenIDConnect provider found in your account for https://gitlab.example.test",
            id="no-provider-in-role-account",
        ),
        pytest.param(
            _token_case(role=f"arn:aws:iam::{BUILD}:role/NoSuchRole"),
            "AccessDenied",
            403,
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            id="no-such-role",
        ),
        pytest.param(
            _token_case(exp_offset=-30),
            "ExpiredTokenException",
            400,
            "Token expired",
            id="expired",
        ),
        pytest.param(_no_sub, "InvalidIdentityToken", 400, "sub", id="no-sub-claim"),
        pytest.param(
            lambda w: (w.web_identity_role_arn, "not-a-jwt-at-all"),
            "InvalidIdentityToken",
            400,
            "not a valid JWT",
            id="not-a-jwt",
        ),
        pytest.param(
            lambda w: (w.web_identity_role_arn, "eyJhbGciOiJSUzI1NiJ9.bm90LWpzb24.c2ln"),
            "InvalidIdentityToken",
            400,
            "not a valid JWT",
            id="payload-not-json",
        ),
    ],
)
def test_web_identity_denied(
    chain: ChainWorld,
    case: Callable[[ChainWorld], tuple[str, str]],
    code: str,
    status: int,
    message: str,
) -> None:
    role_arn, token = case(chain)
    with pytest.raises(ClientError) as error:
        _web_identity(chain, token, role_arn)
    assert (_code(error), _status(error)) == (code, status)
    assert message in _message(error)


def test_web_identity_aud_condition_is_evaluated(chain: ChainWorld) -> None:
    # The second provider lists "other-audience" as a client id, so the token passes the
    # audience check; TwoAudienceRole's trust (aud StringEquals sts.amazonaws.com) refuses it.
    def token(aud: str) -> str:
        return make_gitlab_id_token(host=SECOND_HOST, sub=chain.subject(), aud=aud)

    with pytest.raises(ClientError) as error:
        _web_identity(chain, token("other-audience"), TWO_AUDIENCE_ROLE)
    assert (_code(error), _message(error)) == ("AccessDenied", WEB_IDENTITY_DENIED)
    _, arn = _web_identity(chain, token("sts.amazonaws.com"), TWO_AUDIENCE_ROLE)
    assert arn == f"arn:aws:sts::{BUILD}:assumed-role/TwoAudienceRole/gitlab-job-424242"


def test_web_identity_duration_above_role_maximum(chain: ChainWorld) -> None:
    with pytest.raises(ClientError) as error:  # GitLabOidcRole keeps the default 3600
        _web_identity(chain, chain.id_token(), duration=7200)
    assert (_code(error), _message(error)) == ("ValidationError", MAX_SESSION_MESSAGE)


def test_web_identity_goes_unsigned_and_other_calls_stay_signed(chain: ChainWorld) -> None:
    with FaultProxy(chain.endpoint_url) as proxy:
        response = unsigned_sts(proxy.url).assume_role_with_web_identity(
            RoleArn=chain.web_identity_role_arn,
            RoleSessionName="gitlab-unsigned",
            WebIdentityToken=chain.id_token(),
        )
        sent = [info for info in proxy.history if info.action == "AssumeRoleWithWebIdentity"]
    assert response["AssumedRoleUser"]["Arn"].endswith("/gitlab-unsigned")
    assert len(sent) == 1
    assert "authorization" not in sent[0].headers
    assert "x-amz-security-token" not in sent[0].headers
    with pytest.raises(ClientError) as unsigned_other:  # only web identity skips credentials
        chain.unsigned_sts().get_caller_identity()
    assert (_code(unsigned_other), _status(unsigned_other)) == ("MissingAuthenticationToken", 403)


def test_trust_evaluator_web_identity_keys() -> None:
    provider = "arn:aws:iam::111111111111:oidc-provider/gl.test"
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"gl.test:aud": "sts.amazonaws.com"}},
    }
    good = {"gl.test:aud": "sts.amazonaws.com", "gl.test:sub": "s"}

    def allows(caller: str, *statements: Mapping[str, object], action: str = "") -> bool:
        return trust_allows(
            {"Version": "2012-10-17", "Statement": list(statements)},
            caller,
            good,
            action=action or "sts:AssumeRoleWithWebIdentity",
            strict_prefixes=("gl.test:",),
        )

    assert allows(provider, statement)
    assert not allows("arn:aws:iam::111111111111:root", statement)  # an AWS principal, not it
    assert not allows(provider, statement, action="sts:AssumeRole")  # another action
    on_claim = {"StringEquals": {"gl.test:project_path": "team/app"}}
    assert not allows(provider, {**statement, "Condition": on_claim})  # AWS has no such key
    wrong_aud = {"StringEquals": {"gl.test:aud": "other"}}
    assert not allows(provider, {**statement, "Condition": wrong_aud})


# ---- role chains ------------------------------------------------------------------------


def test_chain_runner_hub_ourthing_lands_with_ecr(chain: ChainWorld) -> None:
    runner = chain.runner_session()
    hub_credentials, hub_arn = _assume(chain, runner, chain.hub_role_arn, EXTERNAL_IDS[0])
    assert hub_arn == f"arn:aws:sts::{HUB}:assumed-role/HubRole/standin-test"
    hub = _as(chain, hub_credentials)
    assert _arn_of(hub, chain) == hub_arn
    credentials, arn = _assume(chain, hub, chain.ourthing_role_arn, EXTERNAL_IDS[1])
    ourthing = _as(chain, credentials)
    identity = ourthing.client("sts", endpoint_url=chain.endpoint_url).get_caller_identity()
    assert identity["Account"] == OURTHING
    assert (
        identity["Arn"]
        == arn
        == f"arn:aws:sts::{OURTHING}:assumed-role/OurThingBuildRole/standin-test"
    )
    ecr = ourthing.client("ecr", endpoint_url=chain.endpoint_url)
    found = {
        (r.get("registryId"), r.get("repositoryName"))
        for r in ecr.describe_repositories()["repositories"]
    }
    assert (OURTHING, "team/app") in found
    token = ecr.get_authorization_token()["authorizationData"][0]
    assert token.get("proxyEndpoint", "").startswith(f"https://{OURTHING}.dkr.ecr.")
    with pytest.raises(ClientError) as hub_has_no_ecr:
        hub.client("ecr", endpoint_url=chain.endpoint_url).get_authorization_token()
    assert _code(hub_has_no_ecr) == "AccessDeniedException"


def test_chain_from_gitlab_oidc(chain: ChainWorld) -> None:
    credentials, _ = _web_identity(chain, chain.id_token())
    hub_credentials, _ = _assume(
        chain, _as(chain, credentials), chain.hub_role_arn, EXTERNAL_IDS[0]
    )
    final, arn = _assume(
        chain, _as(chain, hub_credentials), chain.ourthing_role_arn, EXTERNAL_IDS[1]
    )
    assert arn.startswith(f"arn:aws:sts::{OURTHING}:assumed-role/OurThingBuildRole/")
    assert _arn_of(_as(chain, final), chain) == arn


@pytest.mark.parametrize(
    ("hub_id", "ourthing_id"),
    [
        pytest.param("wrong", EXTERNAL_IDS[1], id="hop1-wrong"),
        pytest.param(None, EXTERNAL_IDS[1], id="hop1-missing"),
        pytest.param(EXTERNAL_IDS[1], EXTERNAL_IDS[1], id="hop1-gets-hop2-id"),
        pytest.param(EXTERNAL_IDS[0], "wrong", id="hop2-wrong"),
        pytest.param(EXTERNAL_IDS[0], None, id="hop2-missing"),
        pytest.param(EXTERNAL_IDS[0], EXTERNAL_IDS[0], id="hop2-gets-hop1-id"),
    ],
)
def test_chain_external_id_checked_on_each_hop(
    chain: ChainWorld, hub_id: str | None, ourthing_id: str | None
) -> None:
    runner = chain.runner_session()
    if hub_id != EXTERNAL_IDS[0]:
        with pytest.raises(ClientError) as error:
            _assume(chain, runner, chain.hub_role_arn, hub_id)
    else:
        hub = _as(chain, _assume(chain, runner, chain.hub_role_arn, hub_id)[0])
        with pytest.raises(ClientError) as error:
            _assume(chain, hub, chain.ourthing_role_arn, ourthing_id)
    assert (_code(error), _status(error)) == ("AccessDenied", 403)


def test_runner_may_go_direct_to_ourthing(chain: ChainWorld) -> None:
    runner = chain.runner_session()
    _, arn = _assume(chain, runner, chain.ourthing_role_arn, EXTERNAL_IDS[1])
    assert arn.startswith(f"arn:aws:sts::{OURTHING}:")
    with pytest.raises(ClientError) as error:
        _assume(chain, runner, chain.ourthing_role_arn, EXTERNAL_IDS[0])
    assert _code(error) == "AccessDenied"


def test_chained_hop_is_held_to_one_hour(chain: ChainWorld) -> None:
    before = datetime.now(UTC)
    # A first hop from IAM user keys may use the role's MaxSessionDuration (7200 here).
    credentials, _ = _assume(
        chain, chain.runner_session(), chain.hub_role_arn, EXTERNAL_IDS[0], duration=7200
    )
    assert credentials["Expiration"] - before > timedelta(seconds=7000)
    hub = _as(chain, credentials)
    with pytest.raises(ClientError) as chained:
        _assume(chain, hub, chain.ourthing_role_arn, EXTERNAL_IDS[1], duration=7200)
    assert (_code(chained), _status(chained)) == ("ValidationError", 400)
    assert _message(chained) == CHAINING_MESSAGE
    assert "1 hour session limit" in CHAINING_MESSAGE
    ok, _ = _assume(chain, hub, chain.ourthing_role_arn, EXTERNAL_IDS[1], duration=3600)
    assert ok["Expiration"] - before < timedelta(seconds=3700)
    web, _ = _web_identity(chain, chain.id_token())  # a web identity session chains too
    with pytest.raises(ClientError) as from_web:
        _assume(chain, _as(chain, web), chain.hub_role_arn, EXTERNAL_IDS[0], duration=3601)
    assert _message(from_web) == CHAINING_MESSAGE


def test_duration_above_role_maximum(chain: ChainWorld) -> None:
    with pytest.raises(ClientError) as error:
        _assume(chain, chain.runner_session(), chain.hub_role_arn, EXTERNAL_IDS[0], duration=7201)
    assert (_code(error), _message(error)) == ("ValidationError", MAX_SESSION_MESSAGE)


# ---- session tags -----------------------------------------------------------------------


def test_tags_need_tag_session_in_the_callers_policy(
    chain: ChainWorld, chain_extras: dict[str, AccessKey]
) -> None:
    caller = _user(chain, chain_extras["no-tag-session"])  # sts:AssumeRole only
    with pytest.raises(ClientError) as error:
        _assume(chain, caller, chain.hub_role_arn, EXTERNAL_IDS[0], tags={"team": "app"})
    assert (_code(error), _status(error)) == ("AccessDenied", 403)
    assert _message(error) == (
        f"User: arn:aws:iam::{BUILD}:user/no-tag-session is not authorized to perform: "
        f"sts:TagSession on resource: {chain.hub_role_arn}"
    )
    with pytest.raises(ClientError) as transitive_only:
        _assume(
            chain, caller, chain.hub_role_arn, EXTERNAL_IDS[0], tags={"a": "b"}, transitive=("a",)
        )
    assert "sts:TagSession" in _message(transitive_only)
    _, arn = _assume(chain, caller, chain.hub_role_arn, EXTERNAL_IDS[0])  # untagged: fine
    assert arn.startswith(f"arn:aws:sts::{HUB}:")


def test_tags_need_tag_session_in_the_trust_policy(
    chain: ChainWorld, chain_extras: dict[str, AccessKey]
) -> None:
    caller = _user(chain, chain_extras["tagger"])  # may tag anything
    with pytest.raises(ClientError) as error:
        _assume(chain, caller, NO_TAG_TRUST_ROLE, tags={"team": "app"})
    assert _code(error) == "AccessDenied"
    assert "sts:TagSession on resource: " + NO_TAG_TRUST_ROLE in _message(error)
    _, arn = _assume(chain, caller, NO_TAG_TRUST_ROLE)
    assert arn.startswith(f"arn:aws:sts::{OURTHING}:assumed-role/NoTagSessionTrustRole/")


def test_tags_recorded_and_transitive_ones_carried(chain: ChainWorld) -> None:
    hub_credentials, hub_arn = _assume(
        chain,
        chain.runner_session(),
        chain.hub_role_arn,
        EXTERNAL_IDS[0],
        session_name="tagged-hop1",
        tags={"gitlab:project": "team/app", "gitlab:pipeline": "9001"},
        transitive=("gitlab:project",),
    )
    first = session_tags(chain.endpoint_url, hub_arn)
    assert first.tags == {"gitlab:project": "team/app", "gitlab:pipeline": "9001"}
    assert first.transitive_tag_keys == ("gitlab:project",)
    assert first.inherited_transitive_tags == {}
    assert first.caller_arn == f"arn:aws:iam::{BUILD}:user/gitlab-runner"
    _, arn = _assume(
        chain,
        _as(chain, hub_credentials),
        chain.ourthing_role_arn,
        EXTERNAL_IDS[1],
        session_name="tagged-hop2",
        tags={"hop": "2"},
    )
    second = session_tags(chain.endpoint_url, arn)
    assert second.caller_arn == hub_arn
    assert second.tags == {"hop": "2"}
    assert second.inherited_transitive_tags == {"gitlab:project": "team/app"}
    assert second.effective_tags == {"gitlab:project": "team/app", "hop": "2"}
    assert second.transitive_tags == {"gitlab:project": "team/app"}  # passes on, still


def test_inherited_transitive_tags_need_tag_session(
    chain: ChainWorld, chain_extras: dict[str, AccessKey]
) -> None:
    tagger = _user(chain, chain_extras["tagger"])
    tagged, _ = _assume(
        chain, tagger, TAGGER_HOP_ROLE, tags={"origin": "ci"}, transitive=("origin",)
    )
    with pytest.raises(ClientError) as error:  # no Tags in this call, but one is inherited
        _assume(chain, _as(chain, tagged), NO_TAG_TRUST_ROLE)
    assert "sts:TagSession" in _message(error)
    untagged, _ = _assume(chain, tagger, TAGGER_HOP_ROLE, tags={"origin": "ci"})  # not transitive
    _, arn = _assume(chain, _as(chain, untagged), NO_TAG_TRUST_ROLE)
    assert session_tags(chain.endpoint_url, arn).effective_tags == {}


_INHERIT_ORIGIN = ({"origin": "ci"}, ("origin",))


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        pytest.param(
            ({}, ()),
            ({"a": "1"}, ("b",)),
            "The specified transitive tag key must be included in the requested tags.",
            id="transitive-key-not-a-tag",
        ),
        pytest.param(
            ({}, ()),
            ({"Team": "1", "team": "2"}, ()),
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            id="duplicate-keys-any-case",
        ),
        pytest.param(
            _INHERIT_ORIGIN,
            ({"ORIGIN": "laptop"}, ()),
            "One of the specified transitive tag keys can't be set because it conflicts with a "
            "transitive tag key from the calling session.",
            id="overrides-inherited-transitive-key",
        ),
    ],
)
def test_tag_request_validation(
    chain: ChainWorld,
    chain_extras: dict[str, AccessKey],
    first: tuple[dict[str, str], tuple[str, ...]],
    second: tuple[dict[str, str], tuple[str, ...]],
    message: str,
) -> None:
    tagger = _user(chain, chain_extras["tagger"])
    credentials, _ = _assume(chain, tagger, TAGGER_HOP_ROLE, tags=first[0], transitive=first[1])
    with pytest.raises(ClientError) as error:
        _assume(
            chain, _as(chain, credentials), TAGGER_HOP_ROLE, tags=second[0], transitive=second[1]
        )
    assert (_code(error), _status(error), _message(error)) == (
        "InvalidParameterValue",
        400,
        message,
    )


def test_session_tags_of_unknown_session(chain: ChainWorld) -> None:
    with pytest.raises(LookupError):
        session_tags(chain.endpoint_url, f"arn:aws:sts::{HUB}:assumed-role/HubRole/never")
    listing = loopback_http().get(f"{chain.endpoint_url}/xacct-standin/session-tags", timeout=5)
    assert listing.status_code == 200
    assert all("session_arn" in record for record in listing.json()["sessions"])


# ---- the fault proxy --------------------------------------------------------------------


def test_proxy_throttles_n_times_then_forwards(chain: ChainWorld) -> None:
    with FaultProxy(chain.endpoint_url) as proxy:
        fault = proxy.throttle_next(2, "AssumeRole")
        runner = chain.runner_session()
        codes = []
        for _ in range(2):
            with pytest.raises(ClientError) as error:
                _assume(
                    chain,
                    runner,
                    chain.hub_role_arn,
                    EXTERNAL_IDS[0],
                    endpoint_url=proxy.url,
                    config=NO_RETRIES,
                )
            codes.append((_code(error), _status(error), _message(error)))
        # Forwarded with the signed Host kept, so moto's SigV4 check and the trust policy pass.
        _, arn = _assume(
            chain,
            runner,
            chain.hub_role_arn,
            EXTERNAL_IDS[0],
            endpoint_url=proxy.url,
            config=NO_RETRIES,
        )
        runner.client("sts", endpoint_url=proxy.url).get_caller_identity()
        assert codes == [("Throttling", 400, "Rate exceeded")] * 2
        assert arn.startswith(f"arn:aws:sts::{HUB}:assumed-role/HubRole/")
        assert (fault.served, fault.remaining, proxy.injected) == (2, 0, 2)
        assert proxy.action_count("AssumeRole") == 3
        assert proxy.actions == {"AssumeRole": 3, "GetCallerIdentity": 1}
        assert proxy.route_count("POST", "/") == 4


def test_boto3_retries_through_injected_throttling(chain: ChainWorld) -> None:
    retrying = Config(retries={"mode": "standard", "max_attempts": 3})
    with FaultProxy(chain.endpoint_url) as proxy:
        proxy.throttle_next(2, "AssumeRole", retry_after=0)
        _, arn = _assume(
            chain,
            chain.runner_session(),
            chain.hub_role_arn,
            EXTERNAL_IDS[0],
            endpoint_url=proxy.url,
            config=retrying,
        )
        assert arn.startswith(f"arn:aws:sts::{HUB}:")
        assert proxy.action_count("AssumeRole") == 3
        assert [info.headers.get("host") for info in proxy.history] == [
            proxy.url.removeprefix("http://")
        ] * 3


def test_proxy_json_api_actions_and_503_retry_after(chain: ChainWorld) -> None:
    credentials, _ = _assume(
        chain, chain.runner_session(), chain.ourthing_role_arn, EXTERNAL_IDS[1]
    )
    with FaultProxy(chain.endpoint_url) as proxy:
        ecr = _as(chain, credentials).client("ecr", endpoint_url=proxy.url, config=NO_RETRIES)
        proxy.fail_next(
            1,
            status=503,
            body=aws_json_error("ServiceUnavailableException", "try later"),
            action="GetAuthorizationToken",
            retry_after=7,
        )
        with pytest.raises(ClientError) as error:
            ecr.get_authorization_token()
        assert (_code(error), _status(error)) == ("ServiceUnavailableException", 503)
        headers = error.value.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        assert headers.get("retry-after") == "7"
        assert ecr.get_authorization_token()["authorizationData"]
        ecr.describe_repositories()
        assert proxy.actions == {"GetAuthorizationToken": 2, "DescribeRepositories": 1}


def test_rewritten_host_breaks_sigv4(chain: ChainWorld) -> None:
    # Why the proxy keeps Host: moto (auth mode) checks SigV4, which signs the Host header.
    with FaultProxy(chain.endpoint_url, rewrite_host=True) as proxy:
        sts = chain.runner_session().client("sts", endpoint_url=proxy.url, config=NO_RETRIES)
        with pytest.raises(ClientError) as error:
            sts.get_caller_identity()
        assert (_code(error), _status(error)) == ("SignatureDoesNotMatch", 403)
        assert proxy.action_count("GetCallerIdentity") == 1


def _random_chunks(total: int, seed: bytes) -> Iterator[bytes]:
    block = hashlib.sha256(seed).digest() * 2048  # 64 KiB, deterministic per seed
    for offset in range(0, total, len(block)):
        yield block[: min(len(block), total - offset)]


def test_proxy_streams_registry_blobs_and_faults_by_path(proxy_registry: Registry) -> None:
    size = 24 * 1024 * 1024 + 123
    seed = os.urandom(8)
    expected = hashlib.sha256()
    for piece in _random_chunks(size, seed):
        expected.update(piece)
    digest = "sha256:" + expected.hexdigest()
    auth = (proxy_registry.username, proxy_registry.password)
    http = loopback_http()
    with FaultProxy(proxy_registry.url) as proxy:
        uploads = "/v2/team/app/blobs/uploads/"
        fault = proxy.fail_next(
            1,
            status=503,
            method="PUT",
            path=re.compile(r"^/v2/team/app/blobs/uploads/."),
            retry_after=1,
        )
        started = http.post(f"{proxy.url}{uploads}", auth=auth, timeout=10)
        assert started.status_code == 202
        location = urljoin(proxy.url + uploads, started.headers["Location"])
        assert location.startswith(proxy.url)  # Host kept: the registry points back at the proxy
        target = f"{location}{'&' if '?' in location else '?'}digest={digest}"
        tracemalloc.start()  # the proxy runs in this process: its buffers are counted too
        try:
            refused = http.put(target, data=_random_chunks(size, seed), auth=auth, timeout=60)
            assert (refused.status_code, refused.headers.get("Retry-After")) == (503, "1")
            stored = http.put(target, data=_random_chunks(size, seed), auth=auth, timeout=60)
            assert stored.status_code == 201, stored.text
            hasher, received = hashlib.sha256(), 0
            blob = f"{proxy.url}/v2/team/app/blobs/{digest}"
            with http.get(blob, auth=auth, stream=True, timeout=60) as download:
                assert download.status_code == 200
                for piece in download.iter_content(256 * 1024):
                    hasher.update(piece)
                    received += len(piece)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (received, "sha256:" + hasher.hexdigest()) == (size, digest)
        assert peak < 8 * 1024 * 1024, f"{peak} bytes held for a {size}-byte blob"
        head = http.head(blob, auth=auth, timeout=10)
        assert (head.status_code, head.headers.get("Content-Length")) == (200, str(size))
        assert fault.served == 1
        assert proxy.route_count("POST", uploads) == 1
        put_path = location.removeprefix(proxy.url).split("?", 1)[0]
        assert proxy.route_count("PUT", put_path) == 2
        assert proxy.route_count("GET", f"/v2/team/app/blobs/{digest}") == 1


class _EchoUpstream(BaseHTTPRequestHandler):
    """Answers every request with its body, chunked, and the Host and framing it received."""

    protocol_version = "HTTP/1.1"
    timeout = 10

    def do_PUT(self) -> None:
        length = self.headers.get("Content-Length")
        body = self.rfile.read(int(length)) if length else self._dechunk()
        self.send_response(200)
        self.send_header("X-Seen-Host", self.headers.get("Host", ""))
        self.send_header("X-Seen-Framing", "length" if length else "chunked")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), 1000):
            piece = body[start : start + 1000]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def _dechunk(self) -> bytes:
        data = b""
        while size := int(self.rfile.readline().strip(), 16):
            data += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        return data

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_proxy_relays_chunked_both_ways() -> None:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _EchoUpstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}") as proxy:
            payload = os.urandom(150_000)
            pieces = (payload[i : i + 7000] for i in range(0, len(payload), 7000))
            http = loopback_http()
            chunked = http.put(f"{proxy.url}/echo", data=pieces, timeout=10)
            fixed = http.put(f"{proxy.url}/echo", data=payload, timeout=10)
            for answer, framing in ((chunked, "chunked"), (fixed, "length")):
                assert answer.status_code == 200
                assert answer.content == payload
                assert answer.headers["X-Seen-Framing"] == framing
                assert answer.headers["X-Seen-Host"] == proxy.url.removeprefix("http://")
                assert answer.headers["Transfer-Encoding"] == "chunked"
            assert proxy.route_count("PUT", "/echo") == 2
    finally:
        upstream.shutdown()
        upstream.server_close()
        thread.join(timeout=5)


def test_proxy_stops() -> None:
    proxy = FaultProxy("http://127.0.0.1:9").start()  # an upstream nobody listens on
    url = proxy.url
    answer = loopback_http().get(f"{url}/anything", timeout=5)
    assert answer.status_code == 502
    port = int(url.rsplit(":", 1)[1])
    proxy.stop()
    with pytest.raises(RuntimeError):
        _ = proxy.url
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
