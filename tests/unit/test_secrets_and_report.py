"""Secrets never print; reports are atomic and hold no secret."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import pytest

from gitlab_xacct import report
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.push import PushResult
from gitlab_xacct.report import dotenv_lines, write_atomically
from gitlab_xacct.secrets import REDACTED, MaskingFilter, Secret, mask

DIGEST = "sha256:" + "ab" * 32


def test_secret_hides_its_value_everywhere_but_reveal() -> None:
    secret = Secret("sentinel-secret-value-1")
    assert secret.reveal() == "sentinel-secret-value-1"
    for text in (str(secret), repr(secret), f"{secret}", str([secret]), str({"k": secret})):
        assert "sentinel" not in text
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_mask_removes_registered_values_longest_first() -> None:
    Secret("sentinel-inner")
    Secret("xx-sentinel-inner-xx")
    assert mask("a xx-sentinel-inner-xx b sentinel-inner") == f"a {REDACTED} b {REDACTED}"


def test_logging_filter_masks_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    Secret("sentinel-in-log-args")
    logger = logging.getLogger("test.masking")
    logger.addFilter(MaskingFilter())
    try:
        with caplog.at_level(logging.DEBUG, logger="test.masking"):
            logger.info("token=%s", "sentinel-in-log-args")
            try:
                int("sentinel-in-log-args")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.filters.clear()
    assert "sentinel-in-log-args" not in caplog.text
    assert REDACTED in caplog.text


def result(tags: tuple[str, ...] = ("a1b2c3d4", "v1")) -> PushResult:
    return PushResult(
        host="222222222222.dkr.ecr.eu-west-1.amazonaws.com",
        repository="team/app",
        digest=DIGEST,
        tags=tags,
        media_type="application/vnd.oci.image.manifest.v1+json",
        blobs_uploaded=2,
        bytes_uploaded=10,
        blobs_present=1,
    )


def test_dotenv_report_names_the_immutable_reference() -> None:
    uri = f"222222222222.dkr.ecr.eu-west-1.amazonaws.com/team/app@{DIGEST}"
    assert dotenv_lines([result()]).splitlines() == [
        f"XACCT_IMAGE_URI={uri}",
        f"XACCT_IMAGE_DIGEST={DIGEST}",
        "XACCT_IMAGE_TAGS=a1b2c3d4,v1",
        f"XACCT_IMAGE_URIS={uri}",
    ]


def test_write_atomically_replaces_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "push.env"
    target.write_text("OLD=1\n")
    write_atomically(target, "NEW=1\n")
    assert target.read_text() == "NEW=1\n"
    assert os.listdir(tmp_path) == ["push.env"]


def test_write_atomically_keeps_the_old_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "push.env"
    target.write_text("OLD=1\n")

    def fail(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(ConfigError, match="No space left on device"):
        write_atomically(target, "NEW=1\n")
    assert target.read_text() == "OLD=1\n"
    assert os.listdir(tmp_path) == ["push.env"]


@pytest.mark.parametrize(
    ("partition", "region", "host"),
    [
        ("aws", "eu-west-1", "eu-west-1.console.aws.amazon.com"),
        ("aws-cn", "cn-north-1", "cn-north-1.console.amazonaws.cn"),
        ("aws-us-gov", "us-gov-west-1", "console.amazonaws-us-gov.com"),
    ],
)
def test_the_ecr_console_link_names_account_region_repository_and_digest(
    partition: str, region: str, host: str
) -> None:
    digest = "sha256:" + "ab" * 32
    url = report.ecr_console_url(partition, "222222222222", region, "team/app", digest)
    assert url == (
        f"https://{host}/ecr/repositories/private/222222222222/team/app/_/image/{digest}/details"
        f"?region={region}"
    )


def test_the_annotations_report_is_gitlabs_shape() -> None:
    text = report.annotations_report([("ECR: a", "https://example.invalid/a")])
    assert json.loads(text) == {
        "gitlab-xacct": [{"external_link": {"label": "ECR: a", "url": "https://example.invalid/a"}}]
    }
