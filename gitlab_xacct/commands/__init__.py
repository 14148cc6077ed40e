"""The sub-commands, one module each: its options, its settings and `run(env, flags) -> exit code`.

A command module imports at its top only what its parser and settings need (the `config`
package): the work it drives (boto3, requests, python-gitlab, in `jobs/`, `doctor/`,
`bootstrap/`, `gitlab/`) is imported inside `run`. So `--version`, `--help` and a mistyped flag
load none of it, and `push` does not load the doctor or python-gitlab.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gitlab_xacct.config.options import Option

# (env, flags) -> exit code; a failure is an XacctError, which cli.main prints.
Runner = Callable[[Mapping[str, str], Mapping[str, object]], int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One sub-command; a name with a space ("bootstrap role") is one of a command group."""

    name: str
    summary: str  # the line in the top-level --help
    description: str
    options: tuple[Option, ...]
    run: Runner
    positionals: tuple[tuple[str, str, str], ...] = ()  # (dest, metavar, help)
