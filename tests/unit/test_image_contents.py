"""The Dockerfile keeps botocore's models of exactly the AWS services the package calls: a new
client in the code without its model in the image would fail only in users' jobs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# Every AWS client is made by aws/credentials.client(session, "SERVICE", ...).
CLIENT = re.compile(r"\bclient\(\s*[\w.]+(?:\(\))?,\s*\"([a-z0-9-]+)\"")


def services_called() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "gitlab_xacct").rglob("*.py"):
        found |= set(CLIENT.findall(path.read_text(encoding="utf-8")))
    return found


TRIM = re.compile(r"botocore/data -mindepth 1 -maxdepth 1 -type d\s*\\?\s*(.*?)-exec", re.S)


def services_kept() -> set[str]:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    trim = TRIM.search(dockerfile)
    assert trim, "the Dockerfile no longer trims botocore's models the way this test reads"
    return set(re.findall(r"! -name ([a-z0-9-]+)", trim[1]))


def test_the_image_keeps_the_model_of_every_service_the_code_calls() -> None:
    called = services_called()
    assert called >= {"sts", "ecr", "iam"}, called  # the reader still finds the calls
    assert services_kept() == called
