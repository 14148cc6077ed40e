"""The command line: parse, call the library, print; the one place errors become exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, cast

from gitlab_xacct import __version__, cancel, validate
from gitlab_xacct import log as xlog
from gitlab_xacct.errors import ConfigError, ConfigErrors, XacctError
from gitlab_xacct.options import SOURCE_FORMS, Option, one_of
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


@dataclass(frozen=True, slots=True)
class Command:
    """One sub-command. `run` is "module:function", imported only when the command runs (start-up
    time matters: `copy` must not import boto3); the function takes (env, flags) and returns the
    exit code. `options_at` is "module:NAME[.ATTR]", the command's option table, imported only
    when its parser is built. A name with a space ("bootstrap role") is a sub-command of a
    command group."""

    summary: str
    description: str
    options_at: str
    run: str
    positionals: tuple[tuple[str, str, str], ...] = ()  # (dest, metavar, help)

    @property
    def options(self) -> tuple[Option, ...]:
        return cast(tuple[Option, ...], _load(self.options_at))


def _load(spec: str) -> object:
    """What "module:NAME[.ATTR]" names, importing the module only now."""
    module_name, _, path = spec.partition(":")
    found: object = importlib.import_module(module_name)
    for attribute in path.split("."):
        found = getattr(found, attribute)
    return found


COMMANDS: dict[str, Command] = {
    "push": Command(
        "assume the target role, log into ECR and push an image, no Docker daemon needed",
        "Assume the role in the target account (with the External ID), log into its ECR and "
        "push the image.",
        "gitlab_xacct.settings:PushSettings.OPTIONS",
        "gitlab_xacct.cli:run_push",
    ),
    "credentials": Command(
        "print or write the target role's credentials for the AWS CLI, Terraform or SDKs",
        "Assume the role in the target account and hand its temporary credentials to other "
        "tools: shell exports, a dotenv file, JSON, the AWS CLI's credential_process, or a "
        "named profile.",
        "gitlab_xacct.settings:CredentialsSettings.OPTIONS",
        "gitlab_xacct.cli:run_credentials",
    ),
    "login": Command(
        "assume the target role and write its ECR logins into a Docker config.json",
        "Assume the role in the target account, get ECR authorization tokens and merge them "
        "into a Docker config.json (0600) for docker, buildah, podman, kaniko or skopeo.",
        "gitlab_xacct.settings:LoginSettings.OPTIONS",
        "gitlab_xacct.cli:run_login",
    ),
    "copy": Command(
        "copy an image into a registry (from a file, a layout or another registry), no AWS",
        "Copy SRC (oci:, oci-archive:, docker-archive: or docker://) to DEST "
        "(docker://HOST/REPO:TAG) with the registries' own credentials; no AWS involved.",
        "gitlab_xacct.options:COPY_COMMAND_OPTIONS",
        "gitlab_xacct.cli:run_copy",
        (
            ("src", "SRC", f"the image: {one_of(SOURCE_FORMS)}"),
            ("dest", "DEST", "where to: docker://HOST/REPO[:TAG] (a tag here or in --tag)"),
        ),
    ),
    "bootstrap role": Command(
        "create or update the OURTHING role: trust, External ID, ECR push permissions",
        "Run with an OURTHING administrator's credentials: create or update, idempotently, the "
        "role BUILD's jobs assume (trust with an External ID, least-privilege ECR push policy); "
        "--check compares, --dry-run prints the documents.",
        "gitlab_xacct.bootstrap.options:ROLE_OPTIONS",
        "gitlab_xacct.commands.bootstrap:run_role",
    ),
    "bootstrap build-policy": Command(
        "print (or put on the runner's role) the BUILD identity policy to assume the role",
        "The identity policy the runner's role in BUILD needs to assume the OURTHING role; "
        "printed, or put inline on a role with --attach-to-role (BUILD administrator's "
        "credentials).",
        "gitlab_xacct.bootstrap.options:BUILD_POLICY_OPTIONS",
        "gitlab_xacct.commands.bootstrap:run_build_policy",
    ),
    "gitlab configure": Command(
        "set the XACCT_* CI/CD variables of a GitLab project or group; lint its CI file",
        "Set XACCT_ROLE_ARN, XACCT_REGION, XACCT_REPOSITORY and XACCT_EXTERNAL_ID (masked, "
        "protected, hidden where GitLab can) as CI/CD variables of a project or group, "
        "idempotently, with an access token (GITLAB_TOKEN or --token-file; never CI_JOB_TOKEN); "
        "--lint validates the CI file with GitLab's CI lint.",
        "gitlab_xacct.commands.gitlab_configure:OPTIONS",
        "gitlab_xacct.commands.gitlab_configure:run",
    ),
    "doctor": Command(
        "check every link from these variables to an ECR upload; say which side to fix",
        "Run in a job or on a laptop with push's variables: checks the settings, the External "
        "ID, the base identity, each AssumeRole hop, the ECR token, the repository, the "
        "registry and a blob upload (started and cancelled), and names for each failure the "
        "side to fix (BUILD, OURTHING, GitLab variables) and the fix. Exit 0 only when every "
        "check passes, else the exit code of the first failure.",
        "gitlab_xacct.commands.doctor:OPTIONS",
        "gitlab_xacct.commands.doctor:run",
    ),
}  # fmt: skip
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


_Runner = Callable[[Mapping[str, str], Mapping[str, object]], int]


def _run(name: str, env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    runner = cast(
        Callable[[Mapping[str, str], Mapping[str, object]], int], _load(COMMANDS[name].run)
    )
    return runner(env, flags)


def run_push(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    from gitlab_xacct.commands.push import push
    from gitlab_xacct.problems import push_settings

    for result in push(push_settings(env, flags), env):
        for tag in result.tags:
            print(result.tagged(tag))
    return 0


def run_credentials(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    from gitlab_xacct.commands import credentials
    from gitlab_xacct.settings import CredentialsSettings

    credentials.run(CredentialsSettings.from_env(env, flags))
    return 0


def run_login(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    from gitlab_xacct.commands.login import login
    from gitlab_xacct.settings import LoginSettings

    for done in login(LoginSettings.from_env(env, flags), env):
        print(done.line())
    return 0


def run_copy(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    from gitlab_xacct.commands.copy import CopySettings, copy

    result = copy(CopySettings.from_env(env, flags), env)
    for tag in result.tags:
        print(result.tagged(tag))
    return 0


def _one_line(message: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _print_error(message: str) -> None:
    sys.stderr.write(f"gitlab-xacct: error: {mask(message)}\n")


def entry() -> None:
    code = main()
    if code in cancel.EXIT_CODES:  # uploads may still block in worker threads: do not join them
        cancel.leave(code)
    sys.exit(code)
