"""`make image-test`, part 2: the CI templates run inside the built image, as GitLab runs them.

gitlab-ci-local runs each pipeline with podman as its container executable (../shared/HARNESS.md
has what works here: runc, cgroupfs, vfs, no default ulimits, `--network host` so that the job
reaches the stand-ins on 127.0.0.1), the image loaded from the OCI layout `make image` writes,
and as the image's own user (`--no-umask`; gitlab-ci-local's default is root, GitLab's runner
runs the image's USER). GITLAB_CI=true, as GitLab sets it (gitlab-ci-local says "false").

- the component with only its required inputs and `image_registry_base` pointed at the local
  image, and a second job that `needs:` it and sees XACCT_IMAGE_URI from the dotenv report;
- the same with the classic template and `extends:`;
- a wrong External ID: the job fails with exit 3 and the explanation, nothing is tagged;
- every job log: the sections, no secret, no traceback, uid 10001, nothing pip-installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.image import BASE_PACKAGES, HOST_CA, rootfs_tarball
from tests.standins.aws_world import World
from tests.standins.servers import Registry

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/gitlab-xacct"  # image_registry_base: the job runs BASE/gitlab-xacct:VERSION
HELPER = "localhost/xacct-ci-helper:bookworm"  # gitlab-ci-local's artifact copier: bash, rsync
PIP_IMAGE = "localhost/xacct-python-pip:bookworm"  # the pip path: Python and pip, no gitlab-xacct
PUSH_JOB = "push-to-ourthing"
USE_JOB = "use-the-image"
GCL_TIMEOUT = 600
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

COMPONENT = f"""\
stages: [push, use]
include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/ecr-push@$CI_COMMIT_SHA
    inputs:
      as: {PUSH_JOB}
      stage: push
      role_arn: {{role_arn}}
      source: oci:image:pipeline
      image_registry_base: {BASE}
{PUSH_JOB}:
  before_script:
    - echo "uid $(id -u)"
"""
CLASSIC = f"""\
stages: [push, use]
include:
  - local: xacct.gitlab-ci.yml
{PUSH_JOB}:
  extends: .xacct:ecr-push
  stage: push
  before_script:
    - echo "uid $(id -u)"
  variables:
    GITLAB_XACCT_IMAGE_REGISTRY_BASE: {BASE}
    XACCT_ROLE_ARN: {{role_arn}}
    XACCT_SOURCE: oci:image:pipeline
"""
# The pip path, measured beside the image path: the same job installs the release at job time
# (this tree's wheel, its dependencies from the package index, as `pip install gitlab-xacct`).
PIP = f"""\
stages: [push]
include:
  - local: xacct.gitlab-ci.yml
{PUSH_JOB}:
  extends: .xacct:ecr-push
  stage: push
  image: {PIP_IMAGE}
  variables:
    GITLAB_XACCT_PIP_INSTALL: "true"
    PIP_FIND_LINKS: wheels
    PIP_CERT: ca.crt
    XACCT_ROLE_ARN: {{role_arn}}
    XACCT_SOURCE: oci:image:pipeline
"""
USE = f"""\
{USE_JOB}:
  stage: use
  image: {BASE}/gitlab-xacct:{{version}}
  needs: [{PUSH_JOB}]
  script:
    - echo "got $XACCT_IMAGE_URI"
"""


@dataclass(frozen=True)
class Outcome:
    returncode: int
    output: str
    push_log: str
    use_log: str
    dotenv: dict[str, str]


class Podman:
    """podman with a configuration and a store of its own, as gitlab-ci-local calls it."""

    def __init__(self, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        (work / "containers.conf").write_text(
            '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n'
            'runtime = "runc"\n'
        )
        (work / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{work / "root"}"\n'
            f'runroot = "{work / "runroot"}"\n'
        )
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(work / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(work / "storage.conf"),
        }

    def __call__(self, *argv: str, timeout: float = 300) -> str:
        result = subprocess.run(
            ["podman", *argv], env=self.env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            sys.exit(f"image-test: podman {' '.join(argv[:3])} failed: {result.stderr[-2000:]}")
        return result.stdout

    def clean(self) -> None:
        for argv in (("rm", "--all", "--force"), ("rmi", "--all", "--force")):
            subprocess.run(["podman", *argv], env=self.env, capture_output=True, timeout=120,
                           check=False)  # fmt: skip


def make_repo(root: Path, pipeline: str) -> Path:
    """A one-commit repository: the pipeline, both template files and a small OCI layout."""
    repo = root / "project"
    (repo / "templates").mkdir(parents=True)
    shutil.copy(ROOT / "templates" / "ecr-push.yml", repo / "templates")
    shutil.copy(ROOT / "ci-templates" / "xacct.gitlab-ci.yml", repo)
    (repo / ".gitlab-ci.yml").write_text(pipeline)
    (repo / ".gitignore").write_text(".gitlab-ci-local/\nxacct.env\n")
    layout = f"{repo / 'image'}:pipeline"
    for argv in (
        ["umoci", "init", "--layout", str(repo / "image")],
        ["umoci", "new", "--image", layout],
    ):
        subprocess.run(argv, capture_output=True, timeout=60, check=True)
    subprocess.run(["git", "-C", str(repo), "init", "--quiet", "--initial-branch", "main"],
                   capture_output=True, timeout=60, check=True)  # fmt: skip
    commit(repo, "pipeline")
    return repo


def commit(repo: Path, message: str) -> None:
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for argv in (["add", "--all"], ["commit", "--quiet", "--message", message]):
        subprocess.run([*git, *argv], capture_output=True, timeout=60, check=True)


def add_pip_path(podman: Podman, repo: Path) -> None:
    """The pip path's image (the Debian base with a venv on PATH) and, in `repo`, this tree's
    wheel and the machine's CA bundle (pip reaches the package index through it)."""
    if not podman("images", "--quiet", PIP_IMAGE).strip():
        podman("import", str(rootfs_tarball("python3", BASE_PACKAGES)), "localhost/xacct-base:pip")
        podman("run", "--name", "xacct-pip", "localhost/xacct-base:pip", "python3", "-m", "venv",
               "/opt/py", timeout=300)  # fmt: skip
        podman("commit", "--quiet", "--change", f"ENV PATH=/opt/py/bin:{SYSTEM_PATH}",
               "xacct-pip", PIP_IMAGE)  # fmt: skip
        podman("rm", "xacct-pip")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(repo / "wheels"), str(ROOT)],
        capture_output=True, timeout=300, check=True,
    )  # fmt: skip
    shutil.copy(HOST_CA, repo / "ca.crt")
    commit(repo, "the pip path's wheel and CA bundle")  # gitlab-ci-local copies what git tracks


def run_gitlab_ci_local(podman: Podman, repo: Path, variables: dict[str, str]) -> Outcome:
    argv = [
        "gitlab-ci-local", "--container-executable", "podman", "--pull-policy", "if-not-present",
        "--network", "host", "--helper-image", HELPER, "--no-umask", "--no-color",
        "--home", str(repo.parent / "gcl-home"),
    ]  # fmt: skip
    for key, value in variables.items():
        argv += ["--variable", f"{key}={value}"]
    result = subprocess.run(
        argv, cwd=repo, env={**podman.env, "NO_UPDATE_NOTIFIER": "1"}, capture_output=True,
        text=True, timeout=GCL_TIMEOUT, check=False,
    )  # fmt: skip
    state = repo / ".gitlab-ci-local"
    dotenv_file = state / "artifacts" / PUSH_JOB / ".gitlab-ci-reports" / "dotenv" / "xacct.env"
    dotenv = dict(
        line.partition("=")[::2] for line in dotenv_file.read_text().splitlines()
    ) if dotenv_file.exists() else {}  # fmt: skip

    def log(job: str) -> str:
        path = state / "output" / f"{job}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    return Outcome(result.returncode, result.stdout + result.stderr, log(PUSH_JOB), log(USE_JOB),
                   dotenv)  # fmt: skip


def check(condition: bool, what: str, outcome: Outcome) -> None:
    if not condition:
        sys.exit(f"image-test: {what}\n--- gitlab-ci-local ---\n{outcome.output[-6000:]}")


def check_log(outcome: Outcome, secrets: tuple[str, ...], sections: tuple[str, ...]) -> None:
    """What a person reading the job log in GitLab should, and should not, find there: each of
    `sections` collapsible (gitlab-ci-local renders GitLab's section markers as NAME_started)."""
    log = outcome.push_log
    check("uid 10001" in log, "the job did not run as the image's user (10001)", outcome)
    for section in sections:
        check(f"xacct_{section}_started" in log, f"the job log has no {section} section", outcome)
    check("Traceback" not in outcome.output + log, "a traceback reached the job log", outcome)
    for trace in ("Collecting ", "Successfully installed", "No module named pip"):
        check(trace not in log, f"something was pip-installed at job time ({trace!r})", outcome)
    for secret in secrets:
        check(secret not in outcome.output + log + outcome.use_log, "a secret reached a log",
              outcome)  # fmt: skip


def job_time(outcome: Outcome) -> str:
    """The push job's wall time as gitlab-ci-local reports it (the image pull aside)."""
    took = re.search(rf"{PUSH_JOB}\s+finished in ([0-9.]+ m?s)", outcome.output)
    return took[1] if took else "?"


def skopeo_digest(registry: Registry, reference: str) -> str | None:
    result = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--creds",
         f"{registry.username}:{registry.password}", f"docker://{registry.host}/{reference}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return str(json.loads(result.stdout)["Digest"]) if result.returncode == 0 else None


def run_pipelines(
    oci: Path, version: str, *, world: World, registry: Registry, work: Path,
    step: Callable[[str], None],
) -> None:  # fmt: skip
    podman = Podman(work / "podman")
    try:
        podman("pull", f"oci:{oci}:{version}", timeout=600)
        loaded = podman("images", "--format", "{{.Repository}}:{{.Tag}}").split()[0]
        podman("tag", loaded, f"{BASE}/gitlab-xacct:{version}")
        podman("import", str(rootfs_tarball("ci-helper", ("rsync",))), HELPER, timeout=600)
        step(f"podman: {BASE}/gitlab-xacct:{version} and {HELPER} loaded")
        secrets = (world.external_id, world.runner_secret_access_key)
        common = {
            **world.runner_env(),
            "GITLAB_CI": "true",
            "XACCT_REGISTRY_ENDPOINT": registry.url,
            "XACCT_REPOSITORY": "team/app",
            "XACCT_EXTERNAL_ID": world.external_id,
        }
        image_times: list[str] = []
        for name, pipeline in (("component", COMPONENT), ("classic", CLASSIC)):
            text = pipeline.format(role_arn=world.role_arn) + USE.format(version=version)
            tag = f"{name}-in-image"
            outcome = run_gitlab_ci_local(
                podman, make_repo(work / f"pipeline-{name}", text), {**common, "XACCT_TAGS": tag}
            )
            check(outcome.returncode == 0 and f"PASS  {PUSH_JOB}" in outcome.output,
                  f"the {name} pipeline failed in the image", outcome)  # fmt: skip
            digest = outcome.dotenv.get("XACCT_IMAGE_DIGEST", "")
            seen = skopeo_digest(registry, f"team/app:{tag}")
            check(seen == digest != "", f"skopeo sees team/app:{tag} at {seen}, not {digest!r}",
                  outcome)  # fmt: skip
            check(f"got {outcome.dotenv['XACCT_IMAGE_URI']}" in outcome.use_log,
                  f"{USE_JOB} did not get XACCT_IMAGE_URI through needs:", outcome)  # fmt: skip
            check_log(outcome, secrets, ("identity", "ecr", "push"))
            image_times.append(job_time(outcome))
            step(f"{name} pipeline in the image: pushed {digest}, {USE_JOB} got the URI, log "
                 f"clean; push job {image_times[-1]}")  # fmt: skip

        repo = make_repo(work / "pipeline-pip", PIP.format(role_arn=world.role_arn))
        add_pip_path(podman, repo)
        pip = run_gitlab_ci_local(podman, repo, {**common, "XACCT_TAGS": "pip-path"})
        digest = pip.dotenv.get("XACCT_IMAGE_DIGEST", "")
        check(pip.returncode == 0 and skopeo_digest(registry, "team/app:pip-path") == digest != "",
              "the pip path failed", pip)  # fmt: skip
        step(f"pip path: push job {job_time(pip)} (image path: {', '.join(image_times)})")

        wrong = run_gitlab_ci_local(
            podman, make_repo(work / "pipeline-wrong", COMPONENT.format(role_arn=world.role_arn)),
            {**common, "XACCT_EXTERNAL_ID": "not-the-agreed-ExternalId", "XACCT_TAGS": "wrong"},
        )  # fmt: skip
        check(re.search(rf"{PUSH_JOB}\s+finished in .* FAIL 3\b", wrong.output) is not None,
              "a wrong External ID did not fail the job with exit 3", wrong)  # fmt: skip
        check("AccessDenied" in wrong.push_log and "External ID" in wrong.push_log,
              "the failed job's log does not explain it", wrong)  # fmt: skip
        check(skopeo_digest(registry, "team/app:wrong") is None, "a refused push tagged", wrong)
        check_log(wrong, secrets, ("identity",))
        step("wrong External ID in the image: the job fails with exit 3 and says why, no tag")
    finally:
        podman.clean()
