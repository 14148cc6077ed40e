"""One error base, one exit code per class (see docs/architecture.md)."""

from __future__ import annotations


class XacctError(Exception):
    """An expected failure: its message says what failed and what to do next."""

    exit_code = 1


class ConfigError(XacctError):
    """Bad configuration or input: a variable, a flag, a file the tool reads."""

    exit_code = 2


class ConfigErrors(ConfigError):
    """Several problems of the settings at once, each a line of its own (exit 2)."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class IdentityError(XacctError):
    """The AWS base identity or the assume-role step failed."""

    exit_code = 3


class RegistryAuthError(XacctError):
    """ECR or registry authentication/authorization failed, or the repository is missing."""

    exit_code = 4


class PushError(XacctError):
    """The transfer itself failed: an upload, a digest check, a manifest."""

    exit_code = 5


class RegistryUnreachable(PushError):
    """No HTTP answer from a registry: refused, reset, timed out, no TLS where TLS was due."""


class NotFound(PushError):
    """HTTP 404 from a registry for a manifest or a blob."""
