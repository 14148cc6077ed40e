"""Checks on single values: each returns the value or raises ConfigError naming its origin.

`origin` is how the user set the value ("--role-arn", "XACCT_ROLE_ARN", "CI_COMMIT_TAG"), so the
one-line error points at the thing to fix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gitlab_xacct.errors import ConfigError

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
# re.ASCII throughout: AWS's \w and \d are ASCII, Python's match any script's letters and digits.
_ROLE_ARN = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov):iam::(?P<account>\d{12}):"
    r"role/(?P<path>(?:[\w+=,.@-]+/)*)(?P<name>[\w+=,.@-]{1,64})",
    re.ASCII,
)
# AWS's rule for sts:ExternalId, also written into templates (CloudFormation's AllowedPattern,
# Terraform's validation), whose regex dialects agree on this spelling.
EXTERNAL_ID_CHARACTERS = r"[A-Za-z0-9_+=,.@:/-]"
EXTERNAL_ID_LENGTHS = (2, 1224)
_EXTERNAL_ID = re.compile(rf"{EXTERNAL_ID_CHARACTERS}{{2,1224}}")
_EXTERNAL_ID_CHAR = re.compile(EXTERNAL_ID_CHARACTERS)
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}", re.ASCII)
# ECR's own rule: lower-case components separated by "/", each with single . _ - separators.
_REPOSITORY = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]", re.ASCII)
_ACCOUNT = re.compile(r"[0-9]{12}")


@dataclass(frozen=True, slots=True)
class RoleArn:
    arn: str
    partition: str
    account: str
    name: str

    def __str__(self) -> str:
        return self.arn


def role_arn(value: str, origin: str) -> RoleArn:
    match = _ROLE_ARN.fullmatch(value)
    if match:
        return RoleArn(value, match["partition"], match["account"], match["name"])
    parts = value.split(":", 5)
    expected = "expected arn:aws:iam::<12-digit account id>:role/<role name>"
    if len(parts) != 6 or parts[0] != "arn":
        reason = "is not an ARN"
    elif parts[1] not in PARTITIONS:
        reason = f"names partition {parts[1]!r} (known: {', '.join(PARTITIONS)})"
    elif parts[2] != "iam":
        reason = f"is an ARN of service {parts[2]!r}, not of an IAM role"
    elif not _ACCOUNT.fullmatch(parts[4]):
        reason = f"has account id {parts[4]!r}; an account id is exactly 12 digits"
    elif not parts[5].startswith("role/"):
        reason = f"names {parts[5].split('/')[0]!r}, not a role"
    else:
        reason = (
            "has a role name with characters IAM does not allow (allowed: letters, digits, _+=,.@-)"
        )
    raise ConfigError(f"{origin}: {value!r} {reason}; {expected}")


# AWS's rule for sts:ExternalId, said the same way by every command that checks one.
EXTERNAL_ID_RULE = "AWS accepts 2 to 1224 characters (allowed: letters, digits and _+=,.@:/-)"
_SPACE_NAMES = {"\n": "newline", "\r": "carriage return", " ": "space", "\t": "tab"}


def _spaces(text: str) -> str:
    names = [_SPACE_NAMES.get(c, f"U+{ord(c):04X} space") for c in text if c.isspace()]
    return " and ".join(dict.fromkeys(names))


def whitespace(value: str) -> list[str]:
    """Where the whitespace is, in words ("trailing newline"), never the value."""
    found = []
    stripped = value.strip()
    if value != value.lstrip():
        found.append(f"leading {_spaces(value[: len(value) - len(value.lstrip())])}")
    if value != value.rstrip():
        trail = value[len(value.rstrip()) :]
        windows = " (a Windows line ending)" if "\r\n" in trail else ""
        found.append(f"trailing {_spaces(trail)}{windows}")
    if any(c.isspace() for c in stripped):
        found.append(f"{_spaces(stripped)} inside the value")
    return found


def external_id_problem(value: str) -> str | None:
    """What AWS would refuse in an External ID, in words and positions, never quoting it."""
    if _EXTERNAL_ID.fullmatch(value):
        return None
    spaces = whitespace(value)
    if spaces:  # the usual mistake (a value pasted with its newline): said first, in words
        return "has " + ", ".join(f"a {where}" for where in spaces)
    if not 2 <= len(value) <= 1224:
        return f"is {len(value)} character{'' if len(value) == 1 else 's'} long"
    position = next(i for i, c in enumerate(value) if not _EXTERNAL_ID_CHAR.fullmatch(c))
    return f"has a character AWS does not accept at position {position + 1}"


def external_id(value: str, origin: str) -> str:
    """Never echoes the value: it is a shared secret between the two accounts."""
    problem = external_id_problem(value)
    if problem is None:
        return value
    raise ConfigError(
        f"{origin}: the External ID {problem}; {EXTERNAL_ID_RULE}, compared byte for byte"
    )


# GitLab's rule for masking a variable whose value is expanded (the default, and what this tool
# creates): Ci::Maskable::REGEX, `\A[a-zA-Z0-9_+=/@:.~-]{8,}\z` - one line, no whitespace, at
# least 8 characters of the Base64 alphabet (RFC 4648, both variants) plus @ : . ~ (`-` and `_`
# have been maskable since GitLab 11.10, the URL-safe Base64 alphabet).
GITLAB_MASKABLE = re.compile(r"[a-zA-Z0-9_+=/@:.~-]{8,}")
_GITLAB_MASKABLE_CHAR = re.compile(r"[a-zA-Z0-9_+=/@:.~-]")
GITLAB_MASK_MIN_LENGTH = 8
GITLAB_MASK_ALPHABET = "letters, digits and _+=/@:.~-"


def gitlab_mask_problem(value: str) -> str | None:
    """Why GitLab could not mask `value` in job logs (never quoting it), or None when it can."""
    if GITLAB_MASKABLE.fullmatch(value):
        return None
    if "\n" in value or "\r" in value:
        return "it spans several lines; a masked value is a single line"
    if any(c.isspace() for c in value):
        position = next(i for i, c in enumerate(value) if c.isspace()) + 1
        return f"it contains whitespace at position {position}; a masked value has none"
    if len(value) < GITLAB_MASK_MIN_LENGTH:
        return (
            f"it is {len(value)} characters long; GitLab masks values of "
            f"{GITLAB_MASK_MIN_LENGTH} characters or more"
        )
    position = next(i for i, c in enumerate(value) if not _GITLAB_MASKABLE_CHAR.fullmatch(c)) + 1
    return (
        f"it has a character GitLab cannot mask at position {position} (GitLab masks only "
        f"{GITLAB_MASK_ALPHABET})"
    )


def region(value: str, origin: str) -> str:
    if _REGION.fullmatch(value):
        return value
    raise ConfigError(f"{origin}: {value!r} is not an AWS region name (for example eu-west-1)")


def repository(value: str, origin: str) -> str:
    if ".dkr.ecr." in value or "://" in value or ":" in value or "@" in value:
        raise ConfigError(
            f"{origin}: {value!r} looks like an image reference; give the ECR repository "
            "name only, without host, tag or digest (for example team/app)"
        )
    if 2 <= len(value) <= 256 and _REPOSITORY.fullmatch(value):
        return value
    raise ConfigError(
        f"{origin}: {value!r} is not a valid ECR repository name (2-256 characters: lower-case "
        "letters and digits, separated by single '.', '_' or '-', components joined by '/')"
    )


def tag(value: str, origin: str) -> str:
    if _TAG.fullmatch(value):
        return value
    raise ConfigError(
        f"{origin}: {value!r} is not a valid image tag (1-128 characters of letters, digits, "
        "'_', '.', '-', not starting with '.' or '-')"
    )


def session_name(value: str, origin: str) -> str:
    if _SESSION_NAME.fullmatch(value):
        return value
    raise ConfigError(
        f"{origin}: {value!r} is not a valid role session name "
        "(2-64 characters of letters, digits and _+=,.@-)"
    )


def derive_session_name(*ids: str) -> str:
    """A session name from the CI ids that identify the job, valid whatever the ids hold.

    AWS allows 64 characters; when the ids are longer, the start is cut so that the most
    specific part (the job id, last) survives.
    """
    parts = [_SESSION_NAME_BAD.sub("-", i) for i in ids if i]
    name = "-".join(["gitlab-xacct", *parts]) if parts else "gitlab-xacct"
    return name[-64:]


def boolean(value: str, origin: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{origin}: {value!r} is not a boolean; use true or false")


def boolean_variable(env: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    """Variable `name` through `boolean`; unset or empty is `default`. For the switches read
    before any settings are (XACCT_DEBUG at the CLI's start and in the credential helper)."""
    value = env.get(name, "")
    return boolean(value, name) if value.strip() else default


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_endpoint(value: str, origin: str) -> str:
    """A base URL `scheme://host[:port]`; plain HTTP only to loopback, never a silent downgrade."""
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError as exc:
        raise ConfigError(f"{origin}: {value!r} is not a URL ({exc})") from None
    if url.scheme not in ("https", "http") or not url.hostname:
        raise ConfigError(
            f"{origin}: {value!r} is not a registry base URL; expected https://HOST[:PORT]"
        )
    if url.username or url.password:
        raise ConfigError(
            f"{origin}: the URL carries credentials; give the bare https://HOST[:PORT] "
            "(the credentials come from ECR)"
        )
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ConfigError(f"{origin}: {value!r} has a path or query; expected https://HOST[:PORT]")
    if url.scheme == "http" and not is_loopback(url.hostname):
        raise ConfigError(
            f"{origin}: plain http:// is only used for loopback registries; use https://"
        )
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return f"{url.scheme}://{host}" + (f":{port}" if port else "")


def partition_of_region(region: str) -> str:
    """AWS partition of a region name (the ones a role ARN here can name)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def same_partition(role: RoleArn, region: str, region_origin: str) -> None:
    """A role can only be assumed through STS in its own partition (aws, aws-cn, aws-us-gov)."""
    partition = partition_of_region(region)
    if role.partition != partition:
        raise ConfigError(
            f"{region_origin}: region {region} is in partition {partition}, but {role} is in "
            f"{role.partition}; use a region of {role.partition} (STS and ECR answer only there)"
        )


def whole_number(value: str, low: int, high: int) -> int | None:
    """`value` as a whole number from `low` to `high` (ASCII digits only), else None."""
    if not re.fullmatch(r"[0-9]+", value.strip()) or not low <= int(value) <= high:
        return None
    return int(value)


def duration(value: str, origin: str) -> int:
    if whole_number(value, 900, 43200) is None:
        raise ConfigError(
            f"{origin}: {value!r} is not a session duration AWS accepts; give whole seconds "
            "from 900 to 43200 (the role's maximum session duration applies too)"
        )
    return int(value)


def account_ids(value: str, origin: str) -> frozenset[str]:
    ids = [v for v in re.split(r"[\s,]+", value) if v]
    for account in ids:
        if not _ACCOUNT.fullmatch(account):
            raise ConfigError(f"{origin}: {account!r} is not an AWS account id (12 digits)")
    if not ids:
        raise ConfigError(f"{origin}: no account ids; separate 12-digit ids by commas")
    return frozenset(ids)


_ECR_HOST = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d{1,2})"
    r"\.amazonaws\.com(?:\.cn)?",
    re.ASCII,
)


def parse_ecr_host(host: str) -> tuple[str, str] | None:
    """(account, region) of an ECR registry host name, or None for any other host."""
    match = _ECR_HOST.fullmatch(host.lower().split(":")[0])
    return (match["account"], match["region"]) if match else None


def ecr_registry(value: str, origin: str) -> str:
    """An extra registry to log into: a 12-digit account id or an ECR host name."""
    value = value.strip().removeprefix("https://").rstrip("/")
    if _ACCOUNT.fullmatch(value) or parse_ecr_host(value):
        return value
    raise ConfigError(
        f"{origin}: {value!r} is neither an AWS account id (12 digits) nor an ECR host name "
        "(ACCOUNT.dkr.ecr.REGION.amazonaws.com)"
    )


def defaulted(check: Callable[[str, str], str], value: str, origin: str, override: str) -> str:
    """`check(value, origin)`; a value GitLab chose (a CI_* default) also names the override."""
    try:
        return check(value, origin)
    except ConfigError as exc:
        if not origin.startswith("CI_"):
            raise
        raise ConfigError(f"{exc}; or set {override}") from None


def report_path(value: str, origin: str) -> Path:
    path = Path(value)
    try:
        is_dir, folder_exists = path.is_dir(), path.parent.is_dir()
    except OSError as exc:  # a name too long for the file system, a folder that is a file
        raise ConfigError(f"{origin}: cannot use {value!r} as a path: {exc.strerror}") from None
    if is_dir:
        raise ConfigError(f"{origin}: {value!r} is a directory; give a file path")
    if not folder_exists:
        raise ConfigError(
            f"{origin}: the folder {str(path.parent)!r} does not exist; create it or choose "
            "another path"
        )
    return path
