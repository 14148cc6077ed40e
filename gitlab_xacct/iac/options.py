"""`--format`, `--output` and `--embed-external-id`: a command prints (or writes) what it would
make as code instead of making it. Checked with the command's other flags, every problem at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitlab_xacct.config import validate
from gitlab_xacct.config.forms import one_of
from gitlab_xacct.config.options import Option
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.secrets import Secret

CLOUDFORMATION = "cloudformation"
TERRAFORM = "terraform"
SECRET_FILE_MODE = 0o600  # a file with an External ID in it
FILE_MODE = 0o644


def options(formats: Sequence[str]) -> tuple[Option, ...]:
    """The three flags, for a command whose output can take `formats`."""
    kinds = one_of(tuple(formats))
    return (
        Option("output_format", "", "--format", "value",
               f"print what this command would make as code instead of making it: {kinds} "
               "(no AWS or GitLab request; the External ID stays a parameter)", "FORMAT"),
        Option("output", "", "--output", "value",
               "with --format: write it to this file (atomically) instead of stdout", "FILE"),
        Option("embed_external_id", "", "--embed-external-id", "bool",
               "with --format: write the External ID's value into the file as its parameter's "
               "default (needs --output; the file is made 0600)"),
    )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class AsCode:
    format: str
    output: Path | None
    embedded: Secret | None = field(default=None, repr=False)  # the value written, if asked

    @property
    def mode(self) -> int:
        return SECRET_FILE_MODE if self.embedded is not None else FILE_MODE


def resolve(
    r: Resolver,
    formats: Sequence[str],
    *,
    external_id: Secret | None,
    excludes: Sequence[str] = (),
) -> AsCode | None:
    """The command's --format request; None when it makes things for real. `excludes` are the
    dests of the boolean flags that make no sense with --format (--check, --dry-run)."""
    given = r.get("output_format")
    output = r.get("output")
    embed = r.boolean("embed_external_id")
    if given is None:
        for flag, used in (("--output", output is not None), ("--embed-external-id", embed)):
            if used:
                raise ConfigError(f"{flag}: only applies with --format {one_of(tuple(formats))}")
        return None
    value, origin = given[0].strip().lower(), given[1]
    if value not in formats:
        raise ConfigError(
            f"{origin}: {given[0]!r} is not a format this command writes; give "
            f"{one_of(tuple(formats))}"
        )
    for dest in excludes:
        if r.boolean(dest):
            raise ConfigError(
                f"{r.option(dest).flag}: --format prints what would be made and makes nothing; "
                "give one of them"
            )
    path = validate.report_path(*output) if output else None
    embedded = None
    if embed:
        if path is None:
            raise ConfigError(
                "--embed-external-id: needs --output FILE (written 0600); the External ID is "
                "not printed to stdout"
            )
        if external_id is None:
            raise ConfigError(
                "--embed-external-id: no External ID to write; set XACCT_EXTERNAL_ID (or give "
                "--external-id)"
            )
        embedded = external_id
    return AsCode(format=value, output=path, embedded=embedded)
