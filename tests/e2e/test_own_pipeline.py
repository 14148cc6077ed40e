"""The repository's own .gitlab-ci.yml: which jobs run when, and its component test, for real.

The child pipeline (.gitlab/ci/component-test.yml) includes the ecr-push component at
$CI_COMMIT_SHA and starts the stand-ins in its before_script (scripts/standins.py). gitlab-ci-local
cannot run a `trigger:` job, so the test runs the child pipeline's file itself, in a throwaway git
repository holding this working tree, exactly as the trigger would include it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.cifiles import REPO_ROOT
from tests.e2e.test_gitlab_ci_local import GCL_TIMEOUT, gcl_env, run
from tests.standins.aws_world import build_world

PIPELINE = REPO_ROOT / ".gitlab-ci.yml"
CHILD = REPO_ROOT / ".gitlab" / "ci" / "component-test.yml"
CHILD_JOB = "component-test"
BRANCH_JOBS = {"test", "build-image", "component-test"}
RELEASE_JOBS = {"release-image", "catalog-release"}


def copy_project(root: Path) -> Path:
    """This working tree (tracked and new files, not ignored ones) as a one-commit repository."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT, capture_output=True, timeout=60, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    project = root / "project"
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / name)
    run(["git", "init", "--quiet", "--initial-branch", "main"], project)
    run(["git", "add", "--all"], project)
    git_id = ["-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
    run(["git", *git_id, "commit", "--quiet", "--message", "this tree"], project)
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("own-pipeline"))


def gitlab_ci_local(
    gcl: str, project: Path, home: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    argv = [gcl, "--force-shell-executor", "--no-color", "--home", str(home), *args]
    return subprocess.run(
        argv, cwd=project, env=gcl_env(home), capture_output=True, text=True,
        timeout=GCL_TIMEOUT, check=False,
    )  # fmt: skip


def listed_jobs(gcl: str, project: Path, home: Path, *variables: str) -> dict[str, str]:
    args = ["--list-json"] + [arg for v in variables for arg in ("--variable", v)]
    result = gitlab_ci_local(gcl, project, home, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = json.loads(result.stdout[result.stdout.index("[") :])
    return {job["name"]: job["when"] for job in jobs}


def test_branch_pipeline_tests_builds_and_runs_the_component(
    gcl: str, project: Path, tmp_path: Path
) -> None:
    jobs = listed_jobs(gcl, project, tmp_path)
    assert {name for name, when in jobs.items() if when != "never"} == BRANCH_JOBS
    assert {name for name, when in jobs.items() if when == "never"} == RELEASE_JOBS


def test_a_version_tag_adds_the_image_push_and_the_catalog_release(
    gcl: str, project: Path, tmp_path: Path
) -> None:
    jobs = listed_jobs(gcl, project, tmp_path, "CI_COMMIT_TAG=1.2.3")
    assert {name for name, when in jobs.items() if when != "never"} == BRANCH_JOBS | RELEASE_JOBS
    not_a_release = listed_jobs(gcl, project, tmp_path, "CI_COMMIT_TAG=v1.2.3-rc")
    assert all(not_a_release[name] == "never" for name in RELEASE_JOBS)


def test_the_trigger_includes_the_child_pipeline_that_includes_the_component() -> None:
    pipeline = yaml.safe_load(PIPELINE.read_text())
    trigger = pipeline[CHILD_JOB]["trigger"]
    assert trigger["include"] == [{"local": str(CHILD.relative_to(REPO_ROOT))}]
    assert trigger["strategy"] == "depend"  # the parent fails when the component test fails
    child = yaml.safe_load(CHILD.read_text())
    (include,) = child["include"]
    assert include["component"].endswith("/ecr-push@$CI_COMMIT_SHA")
    assert include["inputs"]["as"] == CHILD_JOB
    # The stand-in world is the one scripts/standins.py builds.
    defaults = build_world.__kwdefaults__ or {}
    role = f"arn:aws:iam::{defaults['ourthing_account']}:role/{defaults['role_name']}"
    assert include["inputs"]["role_arn"] == role


def stored_tags(standins: Path) -> dict[str, str]:
    """Tag -> digest, read from docker-registry's own storage (the server is stopped by then)."""
    links = standins.glob("registry/**/repositories/team/app/_manifests/tags/*/current/link")
    return {link.parents[1].name: link.read_text().strip() for link in links}


@pytest.mark.parametrize("right_external_id", [True, False], ids=["pushes", "wrong-external-id"])
def test_child_pipeline_runs_the_component_at_this_commit(
    gcl: str, project: Path, tmp_path: Path, right_external_id: bool
) -> None:
    shutil.rmtree(project / ".standins", ignore_errors=True)
    shutil.rmtree(project / ".gitlab-ci-local", ignore_errors=True)
    args = ["--file", str(CHILD.relative_to(REPO_ROOT))]
    if not right_external_id:
        args += ["--variable", "XACCT_EXTERNAL_ID=not-the-agreed-id"]

    result = gitlab_ci_local(gcl, project, tmp_path, *args)
    output = result.stdout + result.stderr

    standins = project / ".standins"
    assert "stand-ins: moto http://127.0.0.1:" in output
    assert not (standins / "pids").exists(), "after_script did not stop the stand-ins"
    dotenv = project / ".gitlab-ci-local" / "artifacts" / CHILD_JOB / ".gitlab-ci-reports"
    report = dotenv / "dotenv" / "xacct.env"
    if right_external_id:
        assert result.returncode == 0, output
        assert f"PASS  {CHILD_JOB}" in output
        values = dict(line.split("=", 1) for line in report.read_text().splitlines())
        tag = values["XACCT_IMAGE_TAGS"]
        assert stored_tags(standins) == {tag: values["XACCT_IMAGE_DIGEST"]}
    else:
        assert result.returncode != 0
        assert f"FAIL  {CHILD_JOB}" in output
        assert "XACCT_EXTERNAL_ID must equal the trust policy's sts:ExternalId" in output
        assert stored_tags(standins) == {}
        assert not report.exists()
