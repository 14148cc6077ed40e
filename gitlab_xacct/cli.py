"""The command line: parse, call the library, print; the one place errors become exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from gitlab_xacct import __version__
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
  5  push or transfer failure"""

# Values that may sit in the environment and must never be echoed, even in a traceback.
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "XACCT_EXTERNAL_ID")


# name -> (one-line help, description, options); each runs through _run() below.
COMMANDS: dict[str, tuple[str, str, tuple[Option, ...]]] = {
    "push": (
        "assume the target role, log into ECR and push an image, no Docker daemon needed",
        "Assume the role in the target account (with the External ID), log into its ECR and "
        "push the image.",
        PushSettings.OPTIONS,
    ),
    "credentials": (
        "print or write the target role's credentials for the AWS CLI, Terraform or SDKs",
        "Assume the role in the target account and hand its temporary credentials to other "
        "tools: shell exports, a dotenv file, JSON, the AWS CLI's credential_process, or a "
        "named profile.",
        CredentialsSettings.OPTIONS,
    ),
    "login": (
        "assume the target role and write its ECR logins into a Docker config.json",
        "Assume the role in the target account, get ECR authorization tokens and merge them "
        "into a Docker config.json (0600) for docker, buildah, podman, kaniko or skopeo.",
        LoginSettings.OPTIONS,
    ),
    "copy": (
        "copy an image into a registry (from a file, a layout or another registry), no AWS",
        "Copy SRC (oci:, oci-archive:, docker-archive: or docker://) to DEST "
        "(docker://HOST/REPO:TAG) with the registries' own credentials; no AWS involved.",
        (*COPY_OPTIONS, *COMMON_OPTIONS),
    ),
}
# Positional arguments (dest, metavar, help) of the commands that take some.
POSITIONALS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "copy": (
        ("src", "SRC", "the image: oci:PATH[:REF], oci-archive:FILE[:REF], "
         "docker-archive:FILE[:NAME:TAG|:@N] or docker://HOST/REPO[:TAG|@DIGEST]"),
        ("dest", "DEST", "where to: docker://HOST/REPO[:TAG] (a tag here or in --tag)"),
    ),
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitlab-xacct",
        description="Push container images from a GitLab job into ECR in another AWS account.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gitlab-xacct {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (summary, description, options) in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=summary,
            description=f"{description} Each flag falls back to the variable named in brackets.",
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for dest, metavar, help_text in POSITIONALS.get(name, ()):
            sub.add_argument(dest, metavar=metavar, help=help_text)
        for option in options:
            _add_option(sub, option)
    return parser


def _add_option(parser: argparse.ArgumentParser, option: Option) -> None:
    help_text = f"{option.help} [{option.env}]"
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
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    debug = bool(flags.get("debug")) or env.get("XACCT_DEBUG", "").lower() in ("1", "true", "yes")
    xlog.setup(debug=debug)
    keep_transfer_buffers()
    try:
        return _run(args.command, env, flags)
    except XacctError as exc:
        if debug:
            log.debug("traceback:", exc_info=True)
        _print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _print_error("interrupted; nothing was tagged unless the log says so")
        return 130


def _run(command: str, env: Mapping[str, str], flags: Mapping[str, object]) -> int:
    if command == "push":
        from gitlab_xacct.commands.push import push

        for result in push(PushSettings.from_env(env, flags), env):
            for tag in result.tags:
                print(result.tagged(tag))
        return 0
    if command == "credentials":
        from gitlab_xacct.commands import credentials

        credentials.run(CredentialsSettings.from_env(env, flags))
        return 0
    if command == "login":
        from gitlab_xacct.commands.login import login

        for done in login(LoginSettings.from_env(env, flags), env):
            print(done.line())
        return 0
    if command == "copy":
        from gitlab_xacct.commands.copy import CopySettings, copy

        result = copy(CopySettings.from_env(env, flags), env)
        for tag in result.tags:
            print(result.tagged(tag))
        return 0
    raise AssertionError(f"unhandled command {command}")


def _print_error(message: str) -> None:
    sys.stderr.write(f"gitlab-xacct: error: {mask(message)}\n")


def entry() -> None:
    sys.exit(main())
