"""The command line: parse, call the library, print; the one place errors become exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gitlab_xacct import __version__, cancel
from gitlab_xacct import log as xlog
from gitlab_xacct._malloc import keep_transfer_buffers
from gitlab_xacct.errors import XacctError
from gitlab_xacct.options import COMMON_OPTIONS, COPY_OPTIONS, Option
from gitlab_xacct.secrets import mask, register
from gitlab_xacct.settings import CredentialsSettings, LoginSettings, PushSettings

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
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "XACCT_EXTERNAL_ID")


@dataclass(frozen=True)
class Command:
    """One sub-command. `run` is "module:function", imported only when the command runs (start-up
    time matters: `copy` must not import boto3); the function takes (env, flags) and returns the
    exit code. A name with a space ("bootstrap role") is a sub-command of a command group."""

    summary: str
    description: str
    options: tuple[Option, ...]
    run: str
    positionals: tuple[tuple[str, str, str], ...] = ()  # (dest, metavar, help)


COMMANDS: dict[str, Command] = {
    "push": Command(
        "assume the target role, log into ECR and push an image, no Docker daemon needed",
        "Assume the role in the target account (with the External ID), log into its ECR and "
        "push the image.",
        PushSettings.OPTIONS,
        "gitlab_xacct.cli:run_push",
    ),
    "credentials": Command(
        "print or write the target role's credentials for the AWS CLI, Terraform or SDKs",
        "Assume the role in the target account and hand its temporary credentials to other "
        "tools: shell exports, a dotenv file, JSON, the AWS CLI's credential_process, or a "
        "named profile.",
        CredentialsSettings.OPTIONS,
        "gitlab_xacct.cli:run_credentials",
    ),
    "login": Command(
        "assume the target role and write its ECR logins into a Docker config.json",
        "Assume the role in the target account, get ECR authorization tokens and merge them "
        "into a Docker config.json (0600) for docker, buildah, podman, kaniko or skopeo.",
        LoginSettings.OPTIONS,
        "gitlab_xacct.cli:run_login",
    ),
    "copy": Command(
        "copy an image into a registry (from a file, a layout or another registry), no AWS",
        "Copy SRC (oci:, oci-archive:, docker-archive: or docker://) to DEST "
        "(docker://HOST/REPO:TAG) with the registries' own credentials; no AWS involved.",
        (*COPY_OPTIONS, *COMMON_OPTIONS),
        "gitlab_xacct.cli:run_copy",
        (
            ("src", "SRC", "the image: oci:PATH[:REF], oci-archive:FILE[:REF], "
             "docker-archive:FILE[:NAME:TAG|:@N] or docker://HOST/REPO[:TAG|@DIGEST]"),
            ("dest", "DEST", "where to: docker://HOST/REPO[:TAG] (a tag here or in --tag)"),
        ),
    ),
}  # fmt: skip
# One-line help of the command groups (the first word of a two-word command name).
GROUPS: dict[str, str] = {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitlab-xacct",
        description="Push container images from a GitLab job into ECR in another AWS account.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gitlab-xacct {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for name, command in COMMANDS.items():
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
            formatter_class=argparse.RawDescriptionHelpFormatter,
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
    args = build_parser().parse_args(argv)
    name = " ".join(filter(None, (args.command, getattr(args, "subcommand", None))))
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "subcommand")}
    debug = bool(flags.get("debug")) or env.get("XACCT_DEBUG", "").lower() in ("1", "true", "yes")
    xlog.setup(debug=debug)
    keep_transfer_buffers()
    with cancel.installed():  # SIGTERM (a cancelled job) and SIGINT become cancel.Cancelled
        try:
            return _run(name, env, flags)
        except cancel.Cancelled as exc:
            sys.stderr.write(f"gitlab-xacct: {mask(cancel.message(name, exc))}\n")
            return exc.exit_code
        except XacctError as exc:
            if debug:
                log.debug("traceback:", exc_info=True)
            _print_error(str(exc))
            return exc.exit_code
        except KeyboardInterrupt:
            _print_error("interrupted; nothing was tagged unless the log says so")
            return 130


def _run(name: str, env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    module_name, _, function = COMMANDS[name].run.partition(":")
    runner: Callable[[Mapping[str, str], Mapping[str, object]], int] = getattr(
        importlib.import_module(module_name), function
    )
    return runner(env, flags)


def run_push(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    from gitlab_xacct.commands.push import push

    for result in push(PushSettings.from_env(env, flags), env):
        for tag in result.tags:
            print(result.tagged(tag))
    return 0


def run_credentials(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    from gitlab_xacct.commands import credentials

    credentials.run(CredentialsSettings.from_env(env, flags))
    return 0


def run_login(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    from gitlab_xacct.commands.login import login

    for done in login(LoginSettings.from_env(env, flags), env):
        print(done.line())
    return 0


def run_copy(env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    from gitlab_xacct.commands.copy import CopySettings, copy

    result = copy(CopySettings.from_env(env, flags), env)
    for tag in result.tags:
        print(result.tagged(tag))
    return 0


def _print_error(message: str) -> None:
    sys.stderr.write(f"gitlab-xacct: error: {mask(message)}\n")


def entry() -> None:
    code = main()
    if code in cancel.EXIT_CODES:  # uploads may still block in worker threads: do not join them
        cancel.leave(code)
    sys.exit(code)
