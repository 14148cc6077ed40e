"""Write the two GitLab CI files of gitlab-xacct from one definition of the job.

    .venv/bin/python ci-templates/generate.py          # rewrite both files
    .venv/bin/python ci-templates/generate.py --check  # exit 1 if either file is stale

(the venv's python: the script reads gitlab_xacct's option table for the inputs' wording)

ci-templates/xacct.gitlab-ci.yml is the classic include (a hidden job configured by variables);
templates/ecr-push.yml is the CI/CD component (spec:inputs, catalog layout). Both run the same
script and publish the same dotenv report, and both pin the release named in pyproject.toml.
Edit this file, never the generated ones; tests/e2e/test_templates_generated.py checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gitlab_xacct.config.forms import SOURCE_FORMS, one_of

ROOT = Path(__file__).resolve().parents[1]
CLASSIC = ROOT / "ci-templates" / "xacct.gitlab-ci.yml"
COMPONENT = ROOT / "templates" / "ecr-push.yml"

# The job runs in the gitlab-xacct image of its own release, pulled from where the release
# pipeline (.gitlab-ci.yml, `release-image`) publishes it: `$CI_REGISTRY_IMAGE/gitlab-xacct:X.Y.Z`
# of the project that releases it. IMAGE_REGISTRY_BASE is that $CI_REGISTRY_IMAGE for the
# project's public home (CI_TEMPLATE_REGISTRY_HOST is GitLab's own registry, set on every
# instance); a mirror in another GitLab overrides it once. The tag is a version input/variable
# that generate.py bakes in, not `$[[ component.version ]]`, which GitLab has only from 18.7.
IMAGE_REGISTRY_BASE = "$CI_TEMPLATE_REGISTRY_HOST/gitlab-xacct/gitlab-xacct"
IMAGE_NAME = "gitlab-xacct"
DOTENV = "xacct.env"
ANNOTATIONS = "xacct-annotations.json"  # GitLab 16.3+: links on the job page
# Template knobs are not XACCT_*: gitlab-xacct rejects XACCT_* names it does not know.
BASE_VARIABLE = "GITLAB_XACCT_IMAGE_REGISTRY_BASE"
VERSION_VARIABLE = "GITLAB_XACCT_VERSION"
PIP_VARIABLE = "GITLAB_XACCT_PIP_INSTALL"

# The job body both files share. The image has gitlab-xacct on PATH, so nothing is installed at
# job time; GITLAB_XACCT_PIP_INSTALL=true installs the release with pip first (a shell runner, or
# an image of your own without the tool).
SCRIPT = (
    f'if [ "${PIP_VARIABLE}" = true ]; then python3 -m pip install --quiet'
    " --disable-pip-version-check --no-cache-dir --root-user-action=ignore"
    f' "gitlab-xacct==${VERSION_VARIABLE}"; fi',
    "gitlab-xacct push",
)


def version() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return str(project["version"])


@dataclass(frozen=True)
class Input:
    """One component input; `variable` is the XACCT_* variable it sets, if any."""

    name: str
    description: str
    default: str | None = None  # None: required
    regex: str | None = None
    options: tuple[str, ...] = ()
    variable: str | None = None


ROLE_ARN_REGEX = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"
REGION_REGEX = r"^([a-z]{2}(-[a-z]+)+-\d)?$"
# ECR repository names: lower-case path components separated by '/', empty for the default.
REPOSITORY_REGEX = r"^((([a-z0-9]+([._-][a-z0-9]+)*)/)*[a-z0-9]+([._-][a-z0-9]+)*)?$"
VARIABLE_NAME_REGEX = r"^[A-Za-z_][A-Za-z0-9_]*$"
VERSION_REGEX = r"^[0-9]+(\.[0-9]+)*([a-z0-9.+-]*)$"  # a release: the image tag, pip's version
PIP_OPTIONS = ("false", "true")


def inputs() -> tuple[Input, ...]:
    return (
        Input("as", "Name of the job the component adds.", "xacct-ecr-push"),
        Input("stage", "Stage of that job.", "deploy"),
        Input(
            "role_arn",
            "ARN of the role to assume in the target account (XACCT_ROLE_ARN).",
            regex=ROLE_ARN_REGEX,
            variable="XACCT_ROLE_ARN",
        ),
        Input(
            "region",
            "Region of the target ECR (XACCT_REGION); empty: AWS_REGION, then AWS_DEFAULT_REGION.",
            "",
            regex=REGION_REGEX,
            variable="XACCT_REGION",
        ),
        Input(
            "repository",
            "ECR repository name, not a URI (XACCT_REPOSITORY); empty: CI_PROJECT_PATH, "
            "lower-cased.",
            "",
            regex=REPOSITORY_REGEX,
            variable="XACCT_REPOSITORY",
        ),
        Input(
            "source",
            f"Image to push (XACCT_SOURCE): {one_of(SOURCE_FORMS)}.",
            regex=r"^(oci|oci-archive|docker-archive):.+$|^docker://.+$",
            variable="XACCT_SOURCE",
        ),
        Input(
            "tags",
            "Tags, separated by commas or spaces (XACCT_TAGS); empty: CI_COMMIT_SHORT_SHA, "
            "plus CI_COMMIT_TAG.",
            "",
            variable="XACCT_TAGS",
        ),
        Input(
            "external_id_variable",
            "NAME of the masked CI/CD variable that holds the External ID (never the value).",
            "XACCT_EXTERNAL_ID",
            regex=VARIABLE_NAME_REGEX,
        ),
        Input(
            "image_registry_base",
            "Where the gitlab-xacct image is pulled from: the $CI_REGISTRY_IMAGE of the project "
            "whose release pipeline published it (a mirror's, in your GitLab).",
            IMAGE_REGISTRY_BASE,
        ),
        Input(
            "version",
            f"gitlab-xacct release: the job runs IMAGE_REGISTRY_BASE/{IMAGE_NAME}:VERSION (and "
            "installs it with pip when pip_install is true).",
            version(),
            regex=VERSION_REGEX,
        ),
        Input(
            "pip_install",
            "true: pip install gitlab-xacct==VERSION first (a shell runner, or an image of your "
            "own without it); false: the image has it.",
            "false",
            options=PIP_OPTIONS,
        ),
    )


RULES_INPUT = "rules"
RULES_DESCRIPTION = "The job's rules: (an array of rules); default: always run on success."


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def _script_and_artifacts(indent: str) -> list[str]:
    lines = [f"{indent}script:"]
    lines += [f"{indent}  - {_q(line)}" for line in SCRIPT]
    lines += [
        f"{indent}artifacts:",
        f"{indent}  reports:",
        f"{indent}    dotenv: {DOTENV}",
        f"{indent}    annotations: {ANNOTATIONS}",
    ]
    return lines


def classic() -> str:
    lines = [
        "# gitlab-xacct: push an image into ECR in another AWS account.",
        "# GENERATED by ci-templates/generate.py, with templates/ecr-push.yml (the component);",
        "# edit that script, not this file. Include this file, then extend the hidden job:",
        "#",
        "#   include:",
        "#     - remote: https://<your GitLab>/<group>/gitlab-xacct/-/raw/<version>/"
        "ci-templates/xacct.gitlab-ci.yml",
        "#   push-to-ourthing:",
        "#     extends: .xacct:ecr-push",
        "#     variables:",
        "#       XACCT_ROLE_ARN: arn:aws:iam::222222222222:role/OurThingBuildRole",
        "#       XACCT_REGION: eu-west-1",
        "#       XACCT_SOURCE: oci-archive:image.tar",
        "#",
        "# XACCT_EXTERNAL_ID belongs in a masked, protected CI/CD variable of the project.",
        "# The job runs in the gitlab-xacct image of this release; a mirror in another GitLab sets",
        f"# {BASE_VARIABLE} once (a group CI/CD variable) to its own",
        "# $CI_REGISTRY_IMAGE; GITLAB_XACCT_PIP_INSTALL=true is the pip path. docs/gitlab-ci.md",
        "# Later jobs get XACCT_IMAGE_URI, XACCT_IMAGE_DIGEST, ... from the dotenv report.",
        ".xacct:ecr-push:",
        f'  image: "${BASE_VARIABLE}/{IMAGE_NAME}:${VERSION_VARIABLE}"',
        "  variables:",
        f"    {BASE_VARIABLE}: {_q(IMAGE_REGISTRY_BASE)}",
        f"    {VERSION_VARIABLE}: {_q(version())}",
        f'    {PIP_VARIABLE}: "false"',
        f"    XACCT_DOTENV: {DOTENV}",
        f"    XACCT_ANNOTATIONS: {ANNOTATIONS}",
        *_script_and_artifacts("  "),
    ]
    return "\n".join(lines) + "\n"


def component() -> str:
    lines = [
        "# gitlab-xacct CI/CD component: push an image into ECR in another AWS account.",
        "# GENERATED by ci-templates/generate.py, with ci-templates/xacct.gitlab-ci.yml;",
        "# edit that script, not this file. Usage and inputs: docs/gitlab-ci.md",
        "spec:",
        "  inputs:",
    ]
    for item in inputs():
        lines.append(f"    {item.name}:")
        lines.append("      type: string")
        lines.append(f"      description: {_q(item.description)}")
        if item.default is not None:
            lines.append(f"      default: {_q(item.default)}")
        if item.regex is not None:
            lines.append(f"      regex: {_q(item.regex)}")
        if item.options:
            lines.append(f"      options: [{', '.join(_q(o) for o in item.options)}]")
    lines += [
        f"    {RULES_INPUT}:",
        "      type: array",
        f"      description: {_q(RULES_DESCRIPTION)}",
        "      default:",
        "        - when: on_success",
        "---",
        '"$[[ inputs.as ]]":',
        '  stage: "$[[ inputs.stage ]]"',
        f'  image: "$[[ inputs.image_registry_base ]]/{IMAGE_NAME}:$[[ inputs.version ]]"',
        f"  rules: $[[ inputs.{RULES_INPUT} ]]",
        "  variables:",
    ]
    for item in inputs():
        if item.variable is not None:
            lines.append(f'    {item.variable}: "$[[ inputs.{item.name} ]]"')
    lines += [
        # The External ID stays where the project keeps it (a masked variable); the job refers
        # to it by name and GitLab expands the reference when the job starts.
        '    XACCT_EXTERNAL_ID: "${$[[ inputs.external_id_variable ]]}"',
        f'    {VERSION_VARIABLE}: "$[[ inputs.version ]]"',
        f'    {PIP_VARIABLE}: "$[[ inputs.pip_install ]]"',
        f"    XACCT_DOTENV: {DOTENV}",
        f"    XACCT_ANNOTATIONS: {ANNOTATIONS}",
        *_script_and_artifacts("  "),
    ]
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    return {CLASSIC: classic(), COMPONENT: component()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    stale = [path for path, text in outputs().items() if _read(path) != text]
    if args.check:
        for path in stale:
            print(
                f"{path.relative_to(ROOT)} is stale: run .venv/bin/python ci-templates/generate.py"
            )
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(outputs()[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
