"""docs/gitlab-ci.md documents exactly the component's inputs, and only known variables."""

from __future__ import annotations

import re

import yaml

from gitlab_xacct.config.options import KNOWN_VARIABLES
from tests.e2e.cifiles import (
    DOCS,
    component_files,
    docs_inputs_table,
    docs_yaml_blocks,
    spec_inputs,
)


def test_inputs_table_matches_the_component() -> None:
    documented = docs_inputs_table(DOCS.read_text())
    defined: set[str] = set()
    for path in component_files():
        defined |= set(spec_inputs(path.read_text()))
    assert defined, "no component inputs found"
    assert not defined - documented, f"inputs missing from the docs table: {defined - documented}"
    assert not documented - defined, f"docs table lists unknown inputs: {documented - defined}"


def test_examples_use_only_real_inputs_and_variables() -> None:
    defined: set[str] = set()
    for path in component_files():
        defined |= set(spec_inputs(path.read_text()))
    for block in docs_yaml_blocks(DOCS.read_text()):
        document = yaml.safe_load(block)
        for include in document.get("include", []):
            if "component" in include:
                assert set(include.get("inputs", {})) <= defined, include
        names = set(re.findall(r"\b(XACCT_[A-Z0-9_]+)\s*:", block))
        unknown = names - set(KNOWN_VARIABLES) - {"XACCT_ID_TOKEN"}
        assert not unknown, f"docs example sets unknown variables {unknown}"
