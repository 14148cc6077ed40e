"""The README's tables and the option table agree: every variable documented, nothing invented."""

from __future__ import annotations

import re
from pathlib import Path

from gitlab_xacct.cli import COMMANDS
from gitlab_xacct.config.forms import REPORT_VARIABLES
from gitlab_xacct.config.options import ALL_OPTIONS, DEFAULT_ID_TOKEN_VARIABLE

README = Path(__file__).resolve().parents[2] / "README.md"


def table_variables() -> set[str]:
    rows = [line for line in README.read_text().splitlines() if line.startswith("|")]
    return set(re.findall(r"`(XACCT_[A-Z_]+)`", "\n".join(rows)))


def test_every_variable_in_code_is_in_a_readme_table() -> None:
    missing = {o.env for o in ALL_OPTIONS} - table_variables()
    assert not missing, f"document these in README.md: {sorted(missing)}"


def test_every_variable_in_the_readme_tables_exists() -> None:
    known = {o.env for o in ALL_OPTIONS} | set(REPORT_VARIABLES) | {DEFAULT_ID_TOKEN_VARIABLE}
    invented = table_variables() - known
    assert not invented, f"README.md names variables the code does not know: {sorted(invented)}"


def test_every_flag_of_every_command_is_in_the_readme() -> None:
    text = README.read_text()
    flags = {o.flag for command in COMMANDS.values() for o in command.options}
    missing = sorted(f for f in flags if f"`{f}" not in text)
    assert not missing, f"document these flags in README.md: {missing}"
