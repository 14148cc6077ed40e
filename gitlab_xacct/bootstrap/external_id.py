"""External IDs that bootstrap generates or accepts.

bootstrap refuses only what AWS refuses (`validate.external_id`: 2-1224 characters of
[\\w+=,.@:/-]), so a role made by hand, such as the classic write-up's `some_key_build`, can be
checked and managed as it is. What AWS accepts but is weak is said as a warning: a value short
enough to guess, or one GitLab could not mask in job logs (`validate.gitlab_mask_problem`, the
rule `gitlab configure` applies). Generated IDs use letters and digits only (safe in shells and
URLs, maskable by every GitLab): 32 of them drawn by `secrets` carry 190 bits.
"""

from __future__ import annotations

import math
import secrets
import string

from gitlab_xacct.config import validate

ALPHABET = string.ascii_letters + string.digits
LENGTH = 32
BITS = LENGTH * math.log2(len(ALPHABET))
MIN_STRONG_LENGTH = 16  # below this an External ID is guessable; generated ones have 32


def generate() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def check_given(value: str, origin: str) -> tuple[str, ...]:
    """A user's External ID: refused (ConfigError) only where AWS refuses it; else the warnings
    it earns, empty for a strong one.

    Never echoes the value; a length or a position is the most a message says about it.
    """
    validate.external_id(value, origin)
    warnings = []
    if len(value) < MIN_STRONG_LENGTH:
        warnings.append(
            f"{origin}: the External ID is {len(value)} characters long, short enough to guess; "
            f"use {MIN_STRONG_LENGTH} or more random characters (leave it out and bootstrap "
            f"generates one of {LENGTH})"
        )
    problem = validate.gitlab_mask_problem(value)
    if problem:
        warnings.append(
            f"{origin}: GitLab could not mask this External ID in job logs: {problem}; "
            "choose one GitLab can mask (leave it out and bootstrap generates one)"
        )
    return tuple(warnings)
