"""Run the classic template and the CI/CD component as GitLab would, with gitlab-ci-local.

Each test makes a throwaway git repository (one commit) whose .gitlab-ci.yml includes the
template (`include: local:`) or the component (`include: component:` at $CI_COMMIT_SHA, which
gitlab-ci-local reads from templates/ offline), then runs the pipeline in the shell against
patched moto and docker-registry. The job calls this venv's gitlab-xacct: with the shell executor
the job's image is not used, and nothing is installed (GITLAB_XACCT_PIP_INSTALL is false), as in
the image, which has the tool.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.cifiles import CLASSIC, COMPONENTS
from tests.e2e.conftest import EXTERNAL_ID
from tests.standins.aws_world import World
from tests.standins.servers import Registry

VENV_BIN = Path(sys.executable).parent
GCL_TIMEOUT = 300
JOB = "push-to-ourthing"

CLASSIC_PIPELINE = f"""\
include:
  - local: xacct.gitlab-ci.yml
{JOB}:
  extends: .xacct:ecr-push
  stage: test
  variables:
    XACCT_SOURCE: oci:image:e2e
    XACCT_REPOSITORY: team/app
    XACCT_TAGS: classic
"""

# The External ID lives in a variable of the project's own choosing, referred to by name.
COMPONENT_PIPELINE = f"""\
include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/ecr-push@$CI_COMMIT_SHA
    inputs:
      as: {JOB}
      stage: test
      role_arn: {{role_arn}}
      region: {{region}}
      repository: team/app
      source: oci:image:e2e
      tags: component
      external_id_variable: OURTHING_EXTERNAL_ID
      rules:
        - if: $CI_COMMIT_SHA
"""


@dataclass(frozen=True)
class Flavour:
    name: str
    tag: str
    external_id_variable: str

    def pipeline(self, world: World) -> str:
        if self.name == "classic":
            return CLASSIC_PIPELINE
        return COMPONENT_PIPELINE.format(role_arn=world.role_arn, region=world.region)

    def variables(self, world: World) -> dict[str, str]:
        common = {"XACCT_REGION": world.region} if self.name == "classic" else {}
        if self.name == "classic":
            common |= {"XACCT_ROLE_ARN": world.role_arn}
        return common


FLAVOURS = (
    Flavour("classic", "classic", "XACCT_EXTERNAL_ID"),
    Flavour("component", "component", "OURTHING_EXTERNAL_ID"),
)


def run(argv: list[str], cwd: Path, timeout: float = 120) -> str:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{argv[0]} failed: {result.stderr}"
    return result.stdout


def make_repo(root: Path, pipeline: str) -> Path:
    """A git repository with one commit: the pipeline, both CI files and an OCI layout."""
    repo = root / "project"
    repo.mkdir()
    shutil.copy(CLASSIC, repo / "xacct.gitlab-ci.yml")
    shutil.copytree(COMPONENTS, repo / "templates")
    (repo / ".gitlab-ci.yml").write_text(pipeline)
    layout = repo / "image"
    run(["umoci", "init", "--layout", str(layout)], repo)
    run(["umoci", "new", "--image", f"{layout}:e2e"], repo)
    payload = root / "hello.txt"
    payload.write_text("hello from a GitLab job\n")
    run(["umoci", "insert", "--image", f"{layout}:e2e", str(payload), "/hello.txt"], repo)
    (repo / ".gitignore").write_text(".gitlab-ci-local/\nxacct.env\n")
    run(["git", "init", "--quiet", "--initial-branch", "main"], repo)
    run(["git", "add", "--all"], repo)
    git_id = ["-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
    run(["git", *git_id, "commit", "--quiet", "--message", "pipeline"], repo)
    return repo


@dataclass(frozen=True)
class Pipeline:
    returncode: int
    output: str
    job_log: str
    dotenv: dict[str, str]


def gcl_env(home: Path) -> dict[str, str]:
    """No ambient AWS_*/CI_*/XACCT_*: a job sees only what the pipeline and --variable give it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CI_", "XACCT_", "GITLAB_", "HTTP_", "HTTPS_"))
        and k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    }
    env |= {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}
    return env | {"HOME": str(home), "NO_UPDATE_NOTIFIER": "1"}


def run_pipeline(
    gcl: str, repo: Path, home: Path, variables: dict[str, str], timeout: float = GCL_TIMEOUT
) -> Pipeline:
    argv = [gcl, "--force-shell-executor", "--no-color", "--home", str(home)]
    for key, value in variables.items():
        argv += ["--variable", f"{key}={value}"]
    result = subprocess.run(
        argv, cwd=repo, env=gcl_env(home), capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    state = repo / ".gitlab-ci-local"
    log = state / "output" / f"{JOB}.log"
    dotenv_file = state / "artifacts" / JOB / ".gitlab-ci-reports" / "dotenv" / "xacct.env"
    dotenv: dict[str, str] = {}
    if dotenv_file.exists():
        for line in dotenv_file.read_text().splitlines():
            key, _, value = line.partition("=")
            dotenv[key] = value
    return Pipeline(
        returncode=result.returncode,
        output=result.stdout + result.stderr,
        job_log=log.read_text(errors="replace") if log.exists() else "",
        dotenv=dotenv,
    )


def job_variables(
    flavour: Flavour, world: World, registry: Registry, external_id: str
) -> dict[str, str]:
    return {
        **world.runner_env(),
        "XACCT_REGISTRY_ENDPOINT": registry.url,
        flavour.external_id_variable: external_id,
        **flavour.variables(world),
    }


@pytest.mark.parametrize("flavour", FLAVOURS, ids=[f.name for f in FLAVOURS])
def test_pipeline_pushes_and_reports_the_digest(
    flavour: Flavour,
    gcl: str,
    e2e_world: World,
    e2e_registry: Registry,
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, flavour.pipeline(e2e_world))
    home = tmp_path / "home"
    home.mkdir()
    variables = job_variables(flavour, e2e_world, e2e_registry, EXTERNAL_ID)

    pipeline = run_pipeline(gcl, repo, home, variables)

    assert pipeline.returncode == 0, pipeline.output
    assert f"PASS  {JOB}" in pipeline.output
    digest = pipeline.dotenv.get("XACCT_IMAGE_DIGEST", "")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), pipeline.dotenv
    assert pipeline.dotenv["XACCT_IMAGE_URI"].endswith(f"/team/app@{digest}")
    # An independent client reads the image back from the registry, at the reported digest.
    creds = f"{e2e_registry.username}:{e2e_registry.password}"
    reference = f"docker://{e2e_registry.host}/team/app:{flavour.tag}"
    inspected = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--creds", creds, reference],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == digest
    for text in (pipeline.output, pipeline.job_log, *pipeline.dotenv.values()):
        assert EXTERNAL_ID not in text, "the External ID reached the job log or the report"


@pytest.mark.parametrize("flavour", FLAVOURS, ids=[f.name for f in FLAVOURS])
def test_wrong_external_id_fails_the_job_with_exit_3_and_says_why(
    flavour: Flavour,
    gcl: str,
    e2e_world: World,
    e2e_registry: Registry,
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, flavour.pipeline(e2e_world))
    home = tmp_path / "home"
    home.mkdir()
    wrong = "not-the-External-ID-4b9e"
    variables = job_variables(flavour, e2e_world, e2e_registry, wrong)

    pipeline = run_pipeline(gcl, repo, home, variables)

    assert pipeline.returncode != 0, pipeline.output
    assert f"FAIL  {JOB}" in pipeline.output
    # gitlab-ci-local ends a failed job's line with the script's exit code: "FAIL 3".
    assert re.search(rf"{JOB}\s+finished in .* FAIL 3\b", pipeline.output), pipeline.output
    assert "AccessDenied" in pipeline.job_log, pipeline.job_log
    assert "External ID" in pipeline.job_log, pipeline.job_log
    assert e2e_world.role_arn in pipeline.job_log
    assert pipeline.dotenv == {}


def test_an_input_that_is_not_an_arn_stops_the_pipeline_before_any_job(
    gcl: str, e2e_world: World, tmp_path: Path
) -> None:
    pipeline_text = COMPONENT_PIPELINE.format(role_arn="OurThingBuildRole", region="eu-west-1")
    repo = make_repo(tmp_path, pipeline_text)
    home = tmp_path / "home"
    home.mkdir()

    pipeline = run_pipeline(gcl, repo, home, {})

    assert pipeline.returncode != 0
    assert "`role_arn` input: `OurThingBuildRole` does not match required regex" in pipeline.output
    assert "starting shell" not in pipeline.output
