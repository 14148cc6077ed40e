"""Every command's --help and the README's tables say what the option table says: the flag, the
variable behind it, and every form a value may take. Neither can drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gitlab_xacct import cli, report
from gitlab_xacct.config.forms import (
    CREDENTIAL_FORMATS,
    DESTINATION_FORM,
    REPORT_VARIABLES,
    SOURCE_FORMS,
)
from gitlab_xacct.config.options import ALL_OPTIONS, Option
from gitlab_xacct.registry.push import PushResult

README = Path(__file__).resolve().parents[2] / "README.md"
# Options whose values come in several forms, each of which --help and the README must name.
FORMS: dict[str, tuple[str, ...]] = {
    "source": SOURCE_FORMS,
    "destinations": (DESTINATION_FORM,),
    "dotenv": REPORT_VARIABLES,
    "format": CREDENTIAL_FORMATS,
}


def flat(text: str) -> str:
    return " ".join(text.split())


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        cli.main([*command.split(), "--help"], env={"COLUMNS": "100"})
    assert done.value.code == 0
    return flat(capsys.readouterr().out)


def readme_rows() -> dict[str, list[list[str]]]:
    """Table rows of the README by the variable in their first cell, cells unescaped."""
    rows: dict[str, list[list[str]]] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `XACCT_"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        for variable in re.findall(r"`(XACCT_[A-Z_]+)`", cells[0]):
            rows.setdefault(variable, []).append(cells)
    return rows


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_names_each_flag_its_variable_and_its_forms(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(command, capsys)
    for option in cli.COMMANDS[command].options:
        assert option.flag in text, option.flag
        if option.env:
            assert f"[{option.env}]" in text, (
                f"{command} --help: {option.flag} without its variable"
            )
        if option.kind == "bool":
            assert f"--no-{option.flag[2:]}" in text
        if option.kind == "list":
            assert "repeat" in option.help, f"{option.flag}: say that it may be repeated"
        for form in FORMS.get(option.dest, ()):
            assert form in text, f"{command} --help: {option.flag} leaves out {form}"


def _options_with_variables() -> dict[str, Option]:
    found: dict[str, Option] = {}
    for command in cli.COMMANDS.values():
        for option in command.options:
            if option.env:
                assert found.setdefault(option.env, option).flag == option.flag, option.env
    return found


@pytest.mark.parametrize("variable", sorted(_options_with_variables()))
def test_the_readme_row_of_each_variable_agrees_with_the_option_table(variable: str) -> None:
    option = _options_with_variables()[variable]
    rows = readme_rows().get(variable)
    assert rows, f"README.md has no table row for {variable}"
    for cells in rows:
        flags = cells[1]
        assert f"`{option.flag}`" in flags, f"README: {variable} is {option.flag}, not {flags}"
        if option.kind == "list":
            assert "(repeatable)" in flags, f"README: {option.flag} is repeatable"
    # The row of the variable alone says what its value may be (a row of several refers back).
    own = [cells for cells in rows if cells[0] == f"`{variable}`"]
    assert own, f"README.md has no row for {variable} alone"
    for form in FORMS.get(option.dest, ()):
        assert all(form in " | ".join(c) for c in own), f"README's {variable} row leaves out {form}"


def test_every_readme_row_names_a_known_variable() -> None:
    known = set(_options_with_variables()) | {o.env for o in ALL_OPTIONS}  # + the helper's
    assert set(readme_rows()) <= known, sorted(set(readme_rows()) - known)


def test_the_dotenv_report_writes_exactly_the_variables_the_help_names() -> None:
    result = PushResult(
        host="r.example",
        repository="team/app",
        digest="sha256:" + "a" * 64,
        tags=("v1",),
        media_type="application/vnd.oci.image.manifest.v1+json",
        blobs_uploaded=1,
        bytes_uploaded=1,
        blobs_present=0,
    )
    keys = [line.partition("=")[0] for line in report.dotenv_lines([result]).splitlines()]
    assert tuple(keys) == REPORT_VARIABLES
