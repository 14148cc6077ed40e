"""The README's first screen: the one apt-get line a fresh Debian 12 needs, then exactly the two
commands, `make demo` and `make test` (../shared/tools/fresh-debian.sh runs them as written)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_SCREEN = 40  # lines


def first_screen_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:FIRST_SCREEN]
    commands, in_block = [], False
    for line in lines:
        if line.startswith("```"):  # shell blocks only: the YAML example is not a command
            in_block = line == "```sh"
            continue
        if in_block and line.strip():
            commands.append(line.split("#", 1)[0].strip())
    return commands


def test_one_apt_line_then_make_demo_and_make_test() -> None:
    commands = first_screen_commands()
    apt = [c for c in commands if "apt-get install" in c]
    assert len(apt) == 1, commands
    assert [c for c in commands if c not in apt] == ["make demo", "make test"]
    packages = set(re.split(r"\s+", apt[0].split("apt-get install", 1)[1].strip()))
    # What a debootstrap minbase lacks and the Makefile needs before it can install the rest.
    assert {"make", "git", "python3", "python3-venv"} <= packages


def test_what_the_makefile_installs_itself_is_named_there() -> None:
    screen = "\n".join((ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:FIRST_SCREEN])
    deps = (ROOT / "scripts" / "install-system-deps.sh").read_text(encoding="utf-8")
    for package in re.findall(r"\]=([a-z0-9-]+)", deps):
        assert f"`{package}`" in screen, f"README's first screen does not name {package}"
