"""Every CI file and docs example passes GitLab's CI schema (check-jsonschema, offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.cifiles import (
    CLASSIC,
    DOCS,
    REPO_ROOT,
    component_files,
    docs_yaml_blocks,
    render_component,
    split_component,
)

CHECK_JSONSCHEMA = str(Path(sys.executable).with_name("check-jsonschema"))
REQUIRED = {
    "role_arn": "arn:aws:iam::222222222222:role/OurThingBuildRole",
    "source": "oci:image:latest",
}


def check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.gitlab-ci", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_valid(*files: Path) -> None:
    result = check(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_catches_a_typo(tmp_path: Path) -> None:
    """Guard against a schema check that passes everything."""
    broken = tmp_path / "broken.yml"
    broken.write_text("job:\n  scirpt:\n    - echo hi\n")
    result = check(broken)
    assert result.returncode != 0
    assert "scirpt" in result.stdout + result.stderr


def test_the_projects_own_pipeline_is_valid() -> None:
    """.gitlab-ci.yml and its child pipeline (tests/e2e/test_own_pipeline.py runs the child)."""
    assert_valid(REPO_ROOT / ".gitlab-ci.yml", REPO_ROOT / ".gitlab" / "ci" / "component-test.yml")


def test_classic_templates_are_valid() -> None:
    templates = sorted((REPO_ROOT / "ci-templates").glob("*.yml"))
    assert CLASSIC in templates
    assert_valid(*templates)


@pytest.mark.parametrize("path", component_files(), ids=lambda p: p.name)
def test_component_documents_are_valid(path: Path, tmp_path: Path) -> None:
    """The spec: header as written; the job document with its inputs set, as GitLab sees it."""
    text = path.read_text()
    header, _ = split_component(text)
    spec = tmp_path / "spec.yml"
    spec.write_text(header)
    with_defaults = tmp_path / "job-defaults.yml"
    with_defaults.write_text(yaml.safe_dump(render_component(text, REQUIRED)))
    every_input = {
        **REQUIRED,
        "as": "push-to-ourthing",
        "stage": "release",
        "region": "eu-west-1",
        "repository": "team/app",
        "tags": "latest,v1",
        "external_id_variable": "OURTHING_EXTERNAL_ID",
        "version": "",
        "rules": [{"if": "$CI_COMMIT_TAG"}, {"when": "never"}],
    }
    with_inputs = tmp_path / "job-inputs.yml"
    with_inputs.write_text(yaml.safe_dump(render_component(text, every_input)))
    assert_valid(spec, with_defaults, with_inputs)


def test_docs_examples_are_valid(tmp_path: Path) -> None:
    blocks = docs_yaml_blocks(DOCS.read_text())
    assert len(blocks) >= 5, "docs/gitlab-ci.md lost its examples"
    files = []
    for number, block in enumerate(blocks, start=1):
        example = tmp_path / f"example-{number}.yml"
        example.write_text(block)
        files.append(example)
    assert_valid(*files)
