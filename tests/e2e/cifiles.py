"""Read the project's GitLab CI files the way GitLab does: documents, inputs, docs examples."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CLASSIC = REPO_ROOT / "ci-templates" / "xacct.gitlab-ci.yml"
COMPONENTS = REPO_ROOT / "templates"
COMPONENT = COMPONENTS / "ecr-push.yml"
DOCS = REPO_ROOT / "docs" / "gitlab-ci.md"
GENERATOR = REPO_ROOT / "ci-templates" / "generate.py"

_INTERPOLATION = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
_FENCE = re.compile(r"^```ya?ml[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def component_files() -> list[Path]:
    return sorted(COMPONENTS.glob("*.yml"))


def split_component(text: str) -> tuple[str, str]:
    """The `spec:` header document and the job document, split at the `---` line."""
    parts = re.split(r"^---[ \t]*$", text, maxsplit=1, flags=re.MULTILINE)
    assert len(parts) == 2, "a component has a spec: document, then ---, then its jobs"
    return parts[0], parts[1]


def spec_inputs(text: str) -> dict[str, dict[str, Any]]:
    header, _ = split_component(text)
    spec = yaml.safe_load(header)["spec"]
    inputs: dict[str, dict[str, Any]] = spec["inputs"]
    return inputs


def interpolate(node: Any, values: dict[str, Any]) -> Any:
    """Replace $[[ inputs.NAME ]] as GitLab does: a whole scalar takes the value's type."""
    if isinstance(node, dict):
        return {interpolate(k, values): interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(item, values) for item in node]
    if isinstance(node, str):
        whole = _INTERPOLATION.fullmatch(node.strip())
        if whole:
            return values[whole.group(1)]
        return _INTERPOLATION.sub(lambda m: str(values[m.group(1)]), node)
    return node


def render_component(text: str, given: dict[str, Any]) -> dict[str, Any]:
    """The job document with every input set: `given`, else the input's default."""
    inputs = spec_inputs(text)
    unknown = set(given) - set(inputs)
    assert not unknown, f"unknown inputs {unknown}"
    values = {name: given.get(name, spec.get("default")) for name, spec in inputs.items()}
    missing = [name for name, value in values.items() if value is None]
    assert not missing, f"required inputs without a value: {missing}"
    _, jobs = split_component(text)
    rendered: dict[str, Any] = interpolate(yaml.safe_load(jobs), values)
    return rendered


def docs_yaml_blocks(text: str) -> list[str]:
    return [match.group(1) for match in _FENCE.finditer(text)]


def docs_inputs_table(text: str) -> set[str]:
    """Input names in the first column of the docs' inputs table (rows like | `name` | ...)."""
    section = text.split("## Inputs", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\|\s*`([A-Za-z0-9_-]+)`\s*\|", section, flags=re.MULTILINE))
