"""External IDs that bootstrap generates or accepts: valid for AWS and for GitLab masking.

AWS accepts 2-1224 characters of [\\w+=,.@:/-]. GitLab masks a variable only when its value is
at least 8 characters on one line from the Base64 alphabet (RFC 4648) plus @ : . ~ (newer
servers accept more, older ones refuse it), so an ID outside that set would be printed in clear
in job logs. Both rules together leave letters, digits and + / = @ : . ; generated IDs use letters
and digits only (safe in shells and URLs too): 32 of them drawn by `secrets` carry 190 bits.
"""

from __future__ import annotations

import math
import re
import secrets
import string

from gitlab_xacct import validate
from gitlab_xacct.errors import ConfigError

ALPHABET = string.ascii_letters + string.digits
LENGTH = 32
BITS = LENGTH * math.log2(len(ALPHABET))
MIN_GIVEN_LENGTH = 16  # below this an External ID is guessable; generated ones have 32
_MASKABLE = re.compile(r"[A-Za-z0-9+/=@:.]+")


def generate() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def check_given(value: str, origin: str) -> str:
    """A user's External ID: AWS's rules, GitLab's masking rules, a minimum length.

    Never echoes the value; a position is the most a message says about it.
    """
    validate.external_id(value, origin)  # AWS's characters and length
    if len(value) < MIN_GIVEN_LENGTH:
        raise ConfigError(
            f"{origin}: the External ID is {len(value)} characters long; use at least "
            f"{MIN_GIVEN_LENGTH} (or leave it out and bootstrap generates one of {LENGTH})"
        )
    if not _MASKABLE.fullmatch(value):
        position = next(i for i, c in enumerate(value) if not _MASKABLE.fullmatch(c))
        raise ConfigError(
            f"{origin}: the External ID has a character at position {position + 1} that GitLab "
            "cannot mask in job logs on every version (use letters, digits and + / = @ : .)"
        )
    return value
