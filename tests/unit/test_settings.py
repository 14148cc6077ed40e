"""Settings: precedence, CI_* defaults, and one clear line for every bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitlab_xacct.config.push import PushSettings, destination_entries, entry_identity, entry_values
from gitlab_xacct.config.resolver import Resolver, check_unknown_variables
from gitlab_xacct.errors import ConfigError

ROLE = "arn:aws:iam::222222222222:role/OurThingBuildRole"


def job_env(**extra: str) -> dict[str, str]:
    env = {
        "XACCT_ROLE_ARN": ROLE,
        "XACCT_EXTERNAL_ID": "some_key_build",
        "XACCT_SOURCE": "oci:/tmp/layout:latest",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "CI_PROJECT_PATH": "Team/My-App",
        "CI_PROJECT_ID": "42",
        "CI_PIPELINE_ID": "1001",
        "CI_JOB_ID": "90001",
        "CI_COMMIT_SHORT_SHA": "a1b2c3d4",
    }
    env.update(extra)
    return env


def test_gitlab_defaults_fill_repository_tags_and_session_name() -> None:
    s = PushSettings.from_env(job_env())
    assert s.identity.target.role.account == "222222222222"
    assert s.identity.target.role.name == "OurThingBuildRole"
    assert s.identity.target.external_id is not None
    assert s.identity.target.external_id.reveal() == "some_key_build"
    assert s.identity.region == "eu-west-1"
    assert s.repository == "team/my-app"
    assert s.tags == ("a1b2c3d4",)
    assert s.identity.session_name == "gitlab-xacct-42-1001-90001"
    assert s.create_repository is False
    assert s.registry_endpoint is None
    assert s.dotenv is None
    assert s.source.transport == "oci"
    assert s.source.ref == "latest"


def test_commit_tag_is_added_and_repeats_dropped() -> None:
    s = PushSettings.from_env(job_env(CI_COMMIT_TAG="v1.2.0"))
    assert s.tags == ("a1b2c3d4", "v1.2.0")
    s = PushSettings.from_env(job_env(XACCT_TAGS="latest, v1 latest,,v2"))
    assert s.tags == ("latest", "v1", "v2")


def test_flags_win_over_variables_and_variables_over_ci_defaults() -> None:
    env = job_env(XACCT_REGION="us-east-1", XACCT_REPOSITORY="from/var", XACCT_TAGS="var")
    s = PushSettings.from_env(env)
    assert (s.identity.region, s.repository, s.tags) == ("us-east-1", "from/var", ("var",))
    s = PushSettings.from_env(
        env, {"region": "ap-southeast-2", "repository": "from/flag", "tags": ["f1", "f2"]}
    )
    assert (s.identity.region, s.repository, s.tags) == (
        "ap-southeast-2",
        "from/flag",
        ("f1", "f2"),
    )


def test_region_falls_back_to_aws_region_then_default_region() -> None:
    env = job_env(AWS_REGION="us-west-2")
    assert PushSettings.from_env(env).identity.region == "us-west-2"
    del env["AWS_REGION"], env["AWS_DEFAULT_REGION"]
    with pytest.raises(ConfigError, match=r"^XACCT_REGION \(--region\): no region set"):
        PushSettings.from_env(env)


def test_booleans_from_flags_and_variables() -> None:
    assert PushSettings.from_env(job_env(XACCT_CREATE_REPOSITORY="TRUE")).create_repository
    s = PushSettings.from_env(job_env(XACCT_CREATE_REPOSITORY="true"), {"create_repository": False})
    assert s.create_repository is False
    with pytest.raises(ConfigError, match=r"^XACCT_DEBUG: 'maybe' is not a boolean"):
        PushSettings.from_env(job_env(XACCT_DEBUG="maybe"))


def test_empty_variable_counts_as_unset() -> None:
    s = PushSettings.from_env(job_env(XACCT_EXTERNAL_ID="", XACCT_REGISTRY_ENDPOINT=" "))
    assert s.identity.target.external_id is None
    assert s.registry_endpoint is None


def test_long_ci_ids_keep_the_job_id_in_the_session_name() -> None:
    s = PushSettings.from_env(
        job_env(CI_PROJECT_ID="9" * 30, CI_PIPELINE_ID="8" * 30, CI_JOB_ID="123456789")
    )
    assert len(s.identity.session_name) == 64
    assert s.identity.session_name.endswith("-123456789")


def test_dotenv_path_is_checked_before_any_work(tmp_path: Path) -> None:
    s = PushSettings.from_env(job_env(XACCT_DOTENV=str(tmp_path / "push.env")))
    assert s.dotenv == tmp_path / "push.env"
    with pytest.raises(ConfigError, match=r"^XACCT_DOTENV: the folder .* does not exist"):
        PushSettings.from_env(job_env(XACCT_DOTENV=str(tmp_path / "nope" / "push.env")))
    with pytest.raises(ConfigError, match=r"is a directory"):
        PushSettings.from_env(job_env(XACCT_DOTENV=str(tmp_path)))


@pytest.mark.parametrize(
    ("extra", "flags", "message"),
    [
        ({"XACCT_ROLE_ARN": ""}, {}, r"^XACCT_ROLE_ARN \(--role-arn\): not set"),
        ({"XACCT_ROLE_ARN": "OurThingBuildRole"}, {}, r"^XACCT_ROLE_ARN: .* is not an ARN"),
        ({}, {"role_arn": "arn:aws:s3:::bucket/x"}, r"^--role-arn: .* service 's3'"),
        ({"XACCT_ROLE_ARN": "arn:aws:iam::2222:role/R"}, {}, r"exactly 12 digits"),
        ({"XACCT_ROLE_ARN": "arn:aws:iam::222222222222:user/bob"}, {}, r"names 'user', not a role"),
        ({"XACCT_ROLE_ARN": "arn:azure:iam::222222222222:role/R"}, {}, r"partition 'azure'"),
        ({"XACCT_EXTERNAL_ID": "x"}, {}, r"^XACCT_EXTERNAL_ID: .* 1 character long; AWS accepts"),
        ({"XACCT_EXTERNAL_ID": "a" * 1225}, {}, r"1225 characters long"),
        ({"XACCT_EXTERNAL_ID": "has space"}, {}, r"has a space inside the value; AWS"),
        ({"XACCT_REGION": "Europe"}, {}, r"^XACCT_REGION: 'Europe' is not an AWS region"),
        ({"XACCT_REPOSITORY": "Team/App"}, {}, r"^XACCT_REPOSITORY: .* not a valid ECR repository"),
        ({"XACCT_REPOSITORY": "a//b"}, {}, r"not a valid ECR repository"),
        (
            {"XACCT_REPOSITORY": "222222222222.dkr.ecr.eu-west-1.amazonaws.com/app"},
            {},
            r"looks like an image reference",
        ),
        ({"XACCT_TAGS": "ok,-bad"}, {}, r"^XACCT_TAGS: '-bad' is not a valid image tag"),
        ({}, {"tags": ["x" * 129]}, r"^--tag: .* not a valid image tag"),
        ({"CI_COMMIT_TAG": "release/1.0"}, {}, r"^CI_COMMIT_TAG: 'release/1.0' is not a valid"),
        ({"CI_COMMIT_SHORT_SHA": ""}, {}, r"^XACCT_TAGS \(--tag\): no tags set"),
        ({"XACCT_SOURCE": ""}, {}, r"^XACCT_SOURCE \(--source\): not set"),
        ({"XACCT_SOURCE": "tarball:/x.tar"}, {}, r"^XACCT_SOURCE: "),
        ({}, {"source": "/just/a/path"}, r"^--source: "),
        ({"XACCT_SESSION_NAME": "has space"}, {}, r"^XACCT_SESSION_NAME: .* \(2-64 characters"),
        ({"XACCT_SESSION_NAME": "x"}, {}, r"not a valid role session name"),
        ({"XACCT_REGISTRY_ENDPOINT": "ftp://x"}, {}, r"^XACCT_REGISTRY_ENDPOINT: .* base URL"),
        ({"XACCT_REGISTRY_ENDPOINT": "http://registry.example"}, {}, r"only used for loopback"),
        ({"XACCT_REGISTRY_ENDPOINT": "https://u:p@r.example"}, {}, r"carries credentials"),
        ({"XACCT_REGISTRY_ENDPOINT": "https://r.example/v2/"}, {}, r"has a path or query"),
        ({"XACCT_EXTRNAL_ID": "x"}, {}, r"^XACCT_EXTRNAL_ID: unknown .* mean XACCT_EXTERNAL_ID"),
    ],
)  # fmt: skip
def test_bad_values_name_their_origin_in_one_line(
    extra: dict[str, str], flags: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        PushSettings.from_env(job_env(**extra), flags)
    assert "\n" not in str(info.value)


def test_external_id_is_never_echoed_in_errors() -> None:
    bad = "sentinel-EXTERNAL-ID with-space"
    with pytest.raises(ConfigError) as info:
        PushSettings.from_env(job_env(XACCT_EXTERNAL_ID=bad))
    assert "sentinel" not in str(info.value)


def test_summary_says_whether_the_external_id_is_set_but_not_its_value() -> None:
    s = PushSettings.from_env(job_env(XACCT_EXTERNAL_ID="sentinel-external-id"))
    text = repr(s) + str(s.summary())
    assert "sentinel-external-id" not in text
    assert ("external id", "set (20 characters)") in s.summary()


def test_report_variables_from_earlier_jobs_are_not_typos() -> None:
    check_unknown_variables(
        {"XACCT_IMAGE_URI": "h/r@sha256:0", "XACCT_IMAGE_DIGEST": "x", "XACCT_IMAGE_TAGS": "t"}
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://localhost:5000/", "http://localhost:5000"),
        ("http://[::1]:5000", "http://[::1]:5000"),
        ("https://vpce-1.dkr.ecr.eu-west-1.vpce.amazonaws.com", None),
    ],
)
def test_registry_endpoint_is_normalised(value: str, expected: str | None) -> None:
    s = PushSettings.from_env(job_env(XACCT_REGISTRY_ENDPOINT=value))
    assert s.registry_endpoint == (expected or value)


def test_an_entry_pinned_in_a_resolver_wins_and_names_itself() -> None:
    """What the doctor diagnoses an XACCT_DESTINATIONS entry with: the entry's fields replace
    the variables and flags they stand for, and every value says it came from the entry."""
    other = "arn:aws:iam::333333333333:role/Stage"
    env = job_env(
        XACCT_DESTINATIONS=f"{ROLE}|eu-west-1|team/app\n{other}|us-east-1|team/app|stage-ext-id-0001"
    )
    r = Resolver(env, {"region": "eu-central-1"}, PushSettings.OPTIONS)
    first, second = destination_entries(r)
    pinned = r.pinned(entry_values(second))

    assert pinned.get("role_arn") == (other, "XACCT_DESTINATIONS entry 2")
    assert pinned.get("region") == ("us-east-1", "XACCT_DESTINATIONS entry 2")  # over --region
    assert pinned.get("external_id") == (
        "stage-ext-id-0001",
        "the External ID in XACCT_DESTINATIONS entry 2",
    )
    assert pinned.get("session_name") == r.get("session_name")  # the rest as before
    assert r.get("region") == ("eu-central-1", "--region")  # the original is untouched
    assert r.pinned(entry_values(first)).get("external_id") == (
        "some_key_build",
        "XACCT_EXTERNAL_ID",
    )  # no External ID of its own: the variable's
    identity = entry_identity(second, pinned)
    assert identity.target.external_id_origin == "the External ID in XACCT_DESTINATIONS entry 2"
    assert identity.target.origin == "XACCT_DESTINATIONS entry 2"
