"""One definition, two files: the classic template and the component agree, and are current."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from typing import Any

import yaml

from gitlab_xacct.config.options import KNOWN_VARIABLES
from tests.e2e.cifiles import (
    CLASSIC,
    COMPONENT,
    GENERATOR,
    REPO_ROOT,
    render_component,
    spec_inputs,
)

REQUIRED = {
    "role_arn": "arn:aws:iam::222222222222:role/OurThingBuildRole",
    "source": "oci:image:latest",
}


def project_version() -> str:
    return str(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"])


def classic_job() -> dict[str, Any]:
    job: dict[str, Any] = yaml.safe_load(CLASSIC.read_text())[".xacct:ecr-push"]
    return job


def component_job() -> dict[str, Any]:
    jobs = render_component(COMPONENT.read_text(), REQUIRED)
    job: dict[str, Any] = jobs["xacct-ecr-push"]
    return job


def classic_image() -> str:
    """The classic job's image with its own variables' defaults put in, as GitLab expands it."""
    job = classic_job()
    image = str(job["image"])
    for name in ("GITLAB_XACCT_IMAGE_REGISTRY_BASE", "GITLAB_XACCT_VERSION"):
        assert f"${name}" in image
        image = image.replace(f"${name}", job["variables"][name])
    return image


def test_regenerating_changes_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_pin_the_package_version() -> None:
    expected = project_version()
    assert version("gitlab-xacct") == expected, "reinstall: pip install -e '.[test]'"
    assert classic_job()["variables"]["GITLAB_XACCT_VERSION"] == expected
    assert component_job()["variables"]["GITLAB_XACCT_VERSION"] == expected


def release_destinations(job: str) -> list[str]:
    """The docker:// places a job of the project's own pipeline copies the built image to."""
    script = yaml.safe_load((REPO_ROOT / ".gitlab-ci.yml").read_text())[job]["script"]
    found = []
    for line in script:
        match = re.search(r'gitlab-xacct copy "oci:[^"]+" "docker://([^"]+)"(.*)', line)
        if match:
            repository, _, tag = match[1].rpartition(":")
            found.append(f"{repository}:{tag}")
            found += [f"{repository}:{t}" for t in re.findall(r"--tag (\S+)", match[2])]
    return found


def test_the_templates_run_the_image_the_release_pipeline_publishes() -> None:
    """The job's image is IMAGE_REGISTRY_BASE/gitlab-xacct:VERSION, and the release pipeline
    pushes exactly that name under its $CI_REGISTRY_IMAGE (the base of the project's public
    home, or of a mirror), tagged with the release (`release-image` checks the tag is the
    version): a template naming an image the release does not push fails here."""
    version_ = project_version()
    base = "$CI_TEMPLATE_REGISTRY_HOST/gitlab-xacct/gitlab-xacct"
    component = component_job()
    assert component["image"] == f"{base}/gitlab-xacct:{version_}"
    assert classic_image() == component["image"]
    assert "$CI_REGISTRY_IMAGE/gitlab-xacct:$CI_COMMIT_TAG" in release_destinations("release-image")
    assert "$CI_REGISTRY_IMAGE/gitlab-xacct:$CI_COMMIT_SHA" in release_destinations("build-image")
    mirrored = render_component(
        COMPONENT.read_text(), {**REQUIRED, "image_registry_base": "$CI_REGISTRY/tools/xacct"}
    )["xacct-ecr-push"]
    assert mirrored["image"] == f"$CI_REGISTRY/tools/xacct/gitlab-xacct:{version_}"


def test_nothing_is_installed_at_job_time_unless_asked() -> None:
    for job in (classic_job(), component_job()):
        assert job["variables"]["GITLAB_XACCT_PIP_INSTALL"] == "false"
        first = job["script"][0]
        assert first.startswith('if [ "$GITLAB_XACCT_PIP_INSTALL" = true ]; then ')


def test_script_report_and_image_agree() -> None:
    classic, component = classic_job(), component_job()
    assert classic["script"] == component["script"]
    assert classic["artifacts"] == component["artifacts"]
    assert classic_image() == component["image"]
    dotenv = classic["artifacts"]["reports"]["dotenv"]
    assert classic["variables"]["XACCT_DOTENV"] == dotenv
    assert component["variables"]["XACCT_DOTENV"] == dotenv
    annotations = classic["artifacts"]["reports"]["annotations"]
    assert classic["variables"]["XACCT_ANNOTATIONS"] == annotations
    assert component["variables"]["XACCT_ANNOTATIONS"] == annotations


def test_the_classic_job_imposes_no_stage_and_stays_hidden() -> None:
    document = yaml.safe_load(CLASSIC.read_text())
    assert list(document) == [".xacct:ecr-push"]
    assert "stage" not in document[".xacct:ecr-push"]


def test_templates_set_only_variables_gitlab_xacct_knows() -> None:
    """An unknown XACCT_* variable is an error in gitlab-xacct: the templates must not set one."""
    for job in (classic_job(), component_job()):
        names = {name for name in job["variables"] if name.startswith("XACCT_")}
        assert names <= set(KNOWN_VARIABLES), names - set(KNOWN_VARIABLES)


def test_component_maps_the_external_id_by_name() -> None:
    jobs = render_component(
        COMPONENT.read_text(), {**REQUIRED, "external_id_variable": "OURTHING_EXTERNAL_ID"}
    )
    assert jobs["xacct-ecr-push"]["variables"]["XACCT_EXTERNAL_ID"] == "${OURTHING_EXTERNAL_ID}"


def test_input_regexes_catch_the_usual_mistakes() -> None:
    """GitLab checks inputs against these before the pipeline starts (RE2, a subset of re)."""
    inputs = spec_inputs(COMPONENT.read_text())
    cases = {
        "role_arn": (
            [
                "arn:aws:iam::222222222222:role/OurThingBuildRole",
                "arn:aws-cn:iam::123456789012:role/a/b",
            ],
            ["OurThingBuildRole", "arn:aws:iam::2222:role/X", "arn:aws:iam::222222222222:user/X"],
        ),
        "region": (
            ["", "eu-west-1", "us-gov-west-1", "ap-southeast-2"],
            ["EU-WEST-1", "eu-west", "eu_west_1", "222222222222"],
        ),
        "repository": (
            ["", "team/app", "a", "team/sub.group/app-1"],
            [
                "Team/App",
                "https://222222222222.dkr.ecr.eu-west-1.amazonaws.com/team/app",
                "team/app:latest",
                "/app",
                "app/",
            ],
        ),
        "source": (
            ["oci:image:latest", "oci-archive:image.tar", "docker://registry.example.com/a:b"],
            ["image.tar", "docker-daemon:app:latest", ""],
        ),
        "external_id_variable": (
            ["XACCT_EXTERNAL_ID", "OURTHING_EXTERNAL_ID"],
            ["$OURTHING_EXTERNAL_ID", "a1b2-c3d4-secret", ""],
        ),
        "version": ([project_version(), "1.2.3"], ["latest", ">=1.0", "1.0; rm -rf /", ""]),
    }
    for name, (good, bad) in cases.items():
        pattern = re.compile(inputs[name]["regex"])
        for value in good:
            assert pattern.search(value), f"{name} rejects {value!r}"
        for value in bad:
            assert not pattern.search(value), f"{name} accepts {value!r}"
