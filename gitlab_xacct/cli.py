"""The command line: parse, call the library, print; the one place errors become exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from gitlab_xacct import __version__, cancel
from gitlab_xacct import log as xlog
from gitlab_xacct.commands import (
    Command,
    bootstrap,
    copy,
    credentials,
    doctor,
    gitlab_configure,
    login,
    push,
)
from gitlab_xacct.config import validate
from gitlab_xacct.config.options import Option
from gitlab_xacct.errors import ConfigError, ConfigErrors, XacctError
from gitlab_xacct.secrets import mask, register

log = logging.getLogger("gitlab_xacct")

EXIT_CODES = """exit codes:
  0  success
  1  internal error (a bug: please report it with the --debug output)
  2  bad configuration or input (a variable, a flag, the source image)
  3  AWS identity or assume-role failure
  4  ECR or registry authentication/authorization failure, or a missing repository
  5  push or transfer failure
  130, 143  cancelled by SIGINT (Ctrl-C) or SIGTERM (a cancelled job); no manifest is
     uploaded after the signal, so nothing is tagged, and a rerun reuses the blobs"""

# Values that may sit in the environment and must never be echoed, even in a traceback.
_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "XACCT_EXTERNAL_ID", "GITLAB_TOKEN"
)  # fmt: skip


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        push.COMMAND,
        credentials.COMMAND,
        login.COMMAND,
        copy.COMMAND,
        bootstrap.ROLE,
        bootstrap.BUILD_POLICY,
        gitlab_configure.COMMAND,
        doctor.COMMAND,
    )
}
# One-line help of the command groups (the first word of a two-word command name).
GROUPS: dict[str, str] = {
    "bootstrap": "set up both accounts: the OURTHING role, the BUILD identity policy",
    "gitlab": "set up the GitLab side: the project's or group's CI/CD variables",
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's, minus its `import shutil` (and bz2, lzma) on every start: argparse makes a
    formatter for each option it adds, and asks shutil for the terminal's width each time."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or _columns() - 2)


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size() finds it: COLUMNS, else stdout's."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (exit 2), and a misspelt
    flag gets a "did you mean". Sub-command parsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        words = message.removeprefix(prefix).split() if message.startswith(prefix) else []
        flags = sorted({o.flag for c in COMMANDS.values() for o in c.options})
        unknown = next((w.partition("=")[0] for w in words if w.startswith("--")), "")
        import difflib  # only for a mistake: not worth its import on every start

        close = difflib.get_close_matches(unknown, flags, n=1) if unknown else []
        if unknown in flags:  # spelt right, given to a command that does not take it
            hint = f"{unknown} belongs to another command; "
        else:
            hint = f"did you mean {close[0]}? " if close else ""
        _print_error(f"{message}; {hint}see {self.prog} --help")
        sys.exit(2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with `only` the parser of that one command (what a run needs:
    building all of them costs about 20 ms of every start)."""
    parser = _Parser(
        prog="gitlab-xacct",
        description="Push container images from a GitLab job into ECR in another AWS account.",
        epilog=EXIT_CODES,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"gitlab-xacct {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction[_Parser]] = {}
    for name, command in COMMANDS.items():
        if only is not None and name != only:
            continue
        group, _, leaf = name.rpartition(" ")
        if group and group not in groups:
            group_parser = commands.add_parser(group, help=GROUPS.get(group, ""))
            groups[group] = group_parser.add_subparsers(
                dest="subcommand", metavar="SUBCOMMAND", required=True
            )
        sub = (groups[group] if group else commands).add_parser(
            leaf,
            help=command.summary,
            description=f"{command.description} A flag with a variable in brackets falls back "
            "to that variable.",
            epilog=EXIT_CODES,
            formatter_class=_Formatter,
        )
        for dest, metavar, help_text in command.positionals:
            sub.add_argument(dest, metavar=metavar, help=help_text)
        for option in command.options:
            _add_option(sub, option)
    return parser


def _add_option(parser: argparse.ArgumentParser, option: Option) -> None:
    help_text = f"{option.help} [{option.env}]" if option.env else option.help
    if option.kind == "bool":
        parser.add_argument(
            option.flag, dest=option.dest, action=argparse.BooleanOptionalAction, default=None,
            help=help_text,
        )  # fmt: skip
    elif option.kind == "list":
        parser.add_argument(
            option.flag, dest=option.dest, action="append", metavar=option.metavar, help=help_text
        )
    else:
        parser.add_argument(option.flag, dest=option.dest, metavar=option.metavar, help=help_text)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    for name in _SECRET_ENV:
        if env.get(name):
            register(env[name])
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_chosen(words)).parse_args(words)
    name = " ".join(filter(None, (args.command, getattr(args, "subcommand", None))))
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "subcommand")}
    try:
        debug = _debug(flags, env)
    except ConfigError as exc:
        debug = False
        if name not in _LIST_EVERY_PROBLEM:
            _print_error(_one_line(str(exc)))
            return exc.exit_code
    xlog.setup(debug=debug)
    with cancel.installed():  # SIGTERM (a cancelled job) and SIGINT become cancel.Cancelled
        try:
            return _run(name, env, flags)
        except cancel.Cancelled as exc:
            sys.stderr.write(f"gitlab-xacct: {mask(cancel.message(name, exc))}\n")
            return exc.exit_code
        except XacctError as exc:
            if debug:
                log.debug("traceback:", exc_info=True)
            # Bad input is one line whatever it holds (a path with a newline); only the AWS
            # explanations (exit 3) span lines on purpose.
            if isinstance(exc, ConfigErrors):  # every problem of the settings, a line each
                for problem in exc.problems:
                    _print_error(_one_line(problem))
            else:
                _print_error(_one_line(str(exc)) if isinstance(exc, ConfigError) else str(exc))
            return exc.exit_code
        except KeyboardInterrupt:
            _print_error("interrupted; nothing was tagged unless the log says so")
            return 130


# Commands that report a bad XACCT_DEBUG among every other problem they find, not alone.
_LIST_EVERY_PROBLEM = frozenset({"doctor"})


def _debug(flags: Mapping[str, object], env: Mapping[str, str]) -> bool:
    """--debug / --no-debug, else XACCT_DEBUG through the one boolean parser (the settings',
    so a value means the same here as there); a value it refuses is a ConfigError."""
    flag = flags.get("debug")
    return flag if isinstance(flag, bool) else validate.boolean_variable(env, "XACCT_DEBUG")


def _chosen(words: Sequence[str]) -> str | None:
    """The command the first words name, if they name one; None for anything else (--help,
    --version, a typo), which gets the whole parser and its messages."""
    for count in (2, 1):
        name = " ".join(words[:count])
        if len(words) >= count and name in COMMANDS:
            return name
    return None


def _run(name: str, env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    return COMMANDS[name].run(env, flags)


def _one_line(message: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _print_error(message: str) -> None:
    sys.stderr.write(f"gitlab-xacct: error: {mask(message)}\n")


def entry() -> None:
    code = main()
    if code in cancel.EXIT_CODES:  # uploads may still block in worker threads: do not join them
        cancel.leave(code)
    sys.exit(code)
