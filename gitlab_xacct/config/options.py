"""Every setting, defined once: its flag, the XACCT_* variable it falls back to, its help.

The groups (identity, registry, push, engine, login, credentials, helper, copy, common) are
combined by each command into the options it takes; `Resolver` (resolver.py) looks them up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gitlab_xacct.config.forms import (
    CREDENTIAL_FORMATS,
    DESTINATION_FORM,
    REPORT_VARIABLES,
    SOURCE_FORMS,
    one_of,
)

Kind = Literal["value", "bool", "list"]


@dataclass(frozen=True, slots=True)
class Option:
    """A setting: its flag, and the variable it falls back to ("" for a flag-only option, such
    as an administrator's command's; those live beside their command, not in ALL_OPTIONS)."""

    dest: str
    env: str
    flag: str
    kind: Kind
    help: str
    metavar: str = "VALUE"


IDENTITY_OPTIONS: tuple[Option, ...] = (
    Option(
        "role_arn",
        "XACCT_ROLE_ARN",
        "--role-arn",
        "value",
        "ARN of the role to assume in the target (OURTHING) account",
        "ARN",
    ),
    Option(
        "external_id",
        "XACCT_EXTERNAL_ID",
        "--external-id",
        "value",
        "External ID the role's trust policy demands (keep it in a masked variable; "
        "a flag is visible in the process list)",
        "ID",
    ),
    Option(
        "region",
        "XACCT_REGION",
        "--region",
        "value",
        "region of the target ECR (default: AWS_REGION, then AWS_DEFAULT_REGION)",
        "REGION",
    ),
    Option(
        "role_chain",
        "XACCT_ROLE_CHAIN",
        "--role-chain",
        "value",
        "roles to assume in order before the target role, comma-separated; a hop may "
        "carry its own External ID as ARN|EXTERNAL_ID",
        "ARNS",
    ),
    Option(
        "web_identity_role_arn",
        "XACCT_WEB_IDENTITY_ROLE_ARN",
        "--web-identity-role-arn",
        "value",
        "first assume this role with the job's GitLab ID token "
        "(AssumeRoleWithWebIdentity) instead of the runner's own AWS identity",
        "ARN",
    ),
    Option(
        "id_token_variable",
        "XACCT_ID_TOKEN_VARIABLE",
        "--id-token-variable",
        "value",
        "name of the id_tokens: variable holding the GitLab ID token (default: XACCT_ID_TOKEN)",
        "NAME",
    ),
    Option(
        "session_name",
        "XACCT_SESSION_NAME",
        "--session-name",
        "value",
        "role session name (default: derived from CI_PROJECT_ID, CI_PIPELINE_ID, CI_JOB_ID)",
        "NAME",
    ),
    Option(
        "duration_seconds",
        "XACCT_DURATION_SECONDS",
        "--duration-seconds",
        "value",
        "lifetime of the assumed credentials, 900-43200 (default: 3600; AWS caps chained "
        "sessions at 3600)",
        "SECONDS",
    ),
    Option(
        "session_tags",
        "XACCT_SESSION_TAGS",
        "--session-tags",
        "bool",
        "tag the role session with the GitLab project, pipeline, job, ref, commit and user "
        "(needs sts:TagSession on both sides; default: false)",
    ),
    Option(
        "allowed_account_ids",
        "XACCT_ALLOWED_ACCOUNT_IDS",
        "--allowed-account-ids",
        "value",
        "comma-separated account ids the assumed credentials must belong to",
        "IDS",
    ),
)

REGISTRY_OPTIONS: tuple[Option, ...] = (
    Option(
        "registry_endpoint",
        "XACCT_REGISTRY_ENDPOINT",
        "--registry-endpoint",
        "value",
        "registry base URL to use instead of the one ECR names (VPC endpoint, local stand-in)",
        "URL",
    ),
)

PUSH_OPTIONS: tuple[Option, ...] = (
    Option(
        "repository",
        "XACCT_REPOSITORY",
        "--repository",
        "value",
        "ECR repository name, not a URI (default: CI_PROJECT_PATH, lower-cased)",
        "NAME",
    ),
    Option(
        "source",
        "XACCT_SOURCE",
        "--source",
        "value",
        f"image to push: {one_of(SOURCE_FORMS)}",
        "SRC",
    ),
    Option(
        "tags",
        "XACCT_TAGS",
        "--tag",
        "list",
        "tag to push; repeat the flag, or separate by commas or spaces in the variable "
        "(default: CI_COMMIT_SHORT_SHA, plus CI_COMMIT_TAG when set)",
        "TAG",
    ),
    Option(
        "create_repository",
        "XACCT_CREATE_REPOSITORY",
        "--create-repository",
        "bool",
        "create the ECR repository when it is missing (default: false)",
    ),
    Option(
        "destinations",
        "XACCT_DESTINATIONS",
        "--destination",
        "list",
        f"push to several places in one run: {DESTINATION_FORM} (ENDPOINT as "
        "XACCT_REGISTRY_ENDPOINT), repeat the flag or one per line (or comma) in the variable; "
        "replaces XACCT_ROLE_ARN, XACCT_REGION and XACCT_REPOSITORY, each source blob is read "
        "once",
        "DEST",
    ),
    Option(
        "dotenv",
        "XACCT_DOTENV",
        "--dotenv",
        "value",
        f"write a dotenv report ({', '.join(REPORT_VARIABLES)}) to this file, for "
        "artifacts:reports:dotenv",
        "FILE",
    ),
    Option(
        "annotations",
        "XACCT_ANNOTATIONS",
        "--annotations",
        "value",
        "write a GitLab annotations report to this file, for artifacts:reports:annotations "
        "(GitLab 16.3+): on the job page, a link to each pushed image in the ECR console",
        "FILE",
    ),
)

# How images move: shared by `push` and `copy`.
ENGINE_OPTIONS: tuple[Option, ...] = (
    Option(
        "platforms",
        "XACCT_PLATFORMS",
        "--platform",
        "list",
        "push only these platforms of a multi-platform image (os/arch[/variant], e.g. "
        "linux/amd64); repeat the flag, or separate by commas in the variable; the index is "
        "rewritten, so its digest changes (default: all, digest kept)",
        "PLATFORM",
    ),
    Option(
        "parallelism",
        "XACCT_PARALLELISM",
        "--parallelism",
        "value",
        "blobs uploaded at once, 1-32 (default: 4)",
        "N",
    ),
    Option(
        "skip_existing_tags",
        "XACCT_SKIP_EXISTING_TAGS",
        "--skip-existing-tags",
        "bool",
        "leave tags that already exist as they are (default: false; a tag at the same digest "
        "is always left alone)",
    ),
    Option(
        "connect_timeout",
        "XACCT_CONNECT_TIMEOUT",
        "--connect-timeout",
        "value",
        "seconds to wait for a connection to a registry (default: 10)",
        "SECONDS",
    ),
    Option(
        "read_timeout",
        "XACCT_READ_TIMEOUT",
        "--read-timeout",
        "value",
        "seconds a registry may stay silent in the middle of a request before it is given up "
        "(and retried); a slow registry that keeps sending is never cut off (default: 300)",
        "SECONDS",
    ),
    Option(
        "retries",
        "XACCT_RETRIES",
        "--retries",
        "value",
        "times a registry request that got no answer, 429 or 5xx is tried again, with "
        "exponential backoff and the registry's Retry-After (up to 60 s) (0-10, default: 4)",
        "N",
    ),
)

LOGIN_OPTIONS: tuple[Option, ...] = (
    Option(
        "docker_config",
        "XACCT_DOCKER_CONFIG",
        "--docker-config",
        "value",
        "Docker config.json to write (default: $DOCKER_CONFIG/config.json, else "
        "~/.docker/config.json)",
        "PATH",
    ),
    Option(
        "login_registries",
        "XACCT_LOGIN_REGISTRIES",
        "--registry",
        "list",
        "more ECR registries to log into: an account id (same region) or an ECR host name; "
        "repeat the flag, or separate by commas or spaces in the variable",
        "ID_OR_HOST",
    ),
)

CREDENTIALS_OPTIONS: tuple[Option, ...] = (
    Option(
        "format",
        "XACCT_CREDENTIALS_FORMAT",
        "--format",
        "value",
        f"{one_of(CREDENTIAL_FORMATS)} (default: env)",
        "FORMAT",
    ),
    Option(
        "output",
        "XACCT_CREDENTIALS_OUTPUT",
        "--output",
        "value",
        "write to this file (mode 0600) instead of stdout",
        "FILE",
    ),
    Option(
        "allow_log_output",
        "XACCT_ALLOW_LOG_OUTPUT",
        "--allow-log-output",
        "bool",
        "print env/dotenv/json credentials even when stdout is a pipe, such as the job log "
        "that every project member can read (default: false)",
    ),
    Option(
        "profile",
        "XACCT_AWS_PROFILE",
        "--profile",
        "value",
        "profile name for --format aws-profile (default: xacct)",
        "NAME",
    ),
    Option(
        "config_file",
        "XACCT_AWS_CONFIG_FILE",
        "--config-file",
        "value",
        "AWS config file for aws-profile (default: AWS_CONFIG_FILE, else ~/.aws/config)",
        "PATH",
    ),
    Option(
        "credentials_file",
        "XACCT_AWS_CREDENTIALS_FILE",
        "--credentials-file",
        "value",
        "AWS credentials file for aws-profile (default: AWS_SHARED_CREDENTIALS_FILE, else "
        "~/.aws/credentials)",
        "PATH",
    ),
)

CREDENTIAL_HELPER_OPTIONS: tuple[Option, ...] = (
    Option(
        "credential_cache",
        "XACCT_CREDENTIAL_CACHE",
        "--credential-cache",
        "bool",
        "docker-credential-xacct: keep each ECR token in a 0600 file under "
        "$XDG_CACHE_HOME/gitlab-xacct until 5 minutes before it expires (default: true)",
    ),
)

# `copy SRC DEST`: any source into a registry, with no AWS involved.
COPY_OPTIONS: tuple[Option, ...] = (
    Option(
        "extra_tags",
        "XACCT_COPY_TAGS",
        "--tag",
        "list",
        "more tags for DEST besides the one it names; repeat the flag, or separate by commas or "
        "spaces in the variable",
        "TAG",
    ),
    Option(
        "src_creds",
        "XACCT_SRC_CREDS",
        "--src-creds",
        "value",
        "credentials for a docker:// SRC: USER:PASSWORD, or the name of a (masked) variable "
        "holding that (default: the Docker config, then CI_REGISTRY_USER/CI_JOB_TOKEN for "
        "CI_REGISTRY, then anonymous)",
        "CREDS",
    ),
    Option(
        "dest_creds",
        "XACCT_DEST_CREDS",
        "--dest-creds",
        "value",
        "credentials for DEST, like --src-creds",
        "CREDS",
    ),
    Option(
        "insecure_registries",
        "XACCT_INSECURE_REGISTRIES",
        "--insecure-registry",
        "list",
        "registry HOST[:PORT] that may be spoken to over plain HTTP or unverified TLS (loopback "
        "registries may use plain HTTP anyway); repeat the flag, or separate by commas or spaces",
        "HOST",
    ),
    Option(
        "chunk_size",
        "XACCT_CHUNK_SIZE",
        "--chunk-size",
        "value",
        "upload blobs larger than this in PATCH chunks of this size, e.g. 16M (0: always one "
        "PUT; never chunked for *.amazonaws.com, whose chunked upload is broken; default: 64M)",
        "BYTES",
    ),
)

COMMON_OPTIONS: tuple[Option, ...] = (
    Option("debug", "XACCT_DEBUG", "--debug", "bool",
           "verbose logs and tracebacks (secrets stay masked; default: false)"),
)  # fmt: skip

# `copy`'s flags: its own, the push engine's, and the common ones (CopySettings reads these).
COPY_COMMAND_OPTIONS = (*COPY_OPTIONS, *ENGINE_OPTIONS, *COMMON_OPTIONS)

ALL_OPTIONS = (
    *IDENTITY_OPTIONS,
    *REGISTRY_OPTIONS,
    *PUSH_OPTIONS,
    *ENGINE_OPTIONS,
    *LOGIN_OPTIONS,
    *CREDENTIALS_OPTIONS,
    *CREDENTIAL_HELPER_OPTIONS,
    *COPY_OPTIONS,
    *COMMON_OPTIONS,
)
DEFAULT_ID_TOKEN_VARIABLE = "XACCT_ID_TOKEN"  # noqa: S105 - a variable name, not a token
# Variables gitlab-xacct writes for later jobs; a later job may see them, and they are not typos.
KNOWN_VARIABLES = frozenset(
    {o.env for o in ALL_OPTIONS} | set(REPORT_VARIABLES) | {DEFAULT_ID_TOKEN_VARIABLE}
)
