"""How hard to try a registry: timeouts, the bound on attempts, and the wait between them.

One policy for every registry request: connect and read timeouts on each send, at most
`retries` more tries of a request that failed in a way worth repeating (no answer, 429, 5xx),
with exponential backoff and jitter between them, and never sooner than the registry's own
`Retry-After` (capped: a registry asking for an hour would otherwise hold the job past its
timeout). `repeat` is the one loop that does it, for a request, a manifest GET or PUT and a
whole blob upload alike; how many sends an answer took rides on it (`Response.attempts`), and
on the error that gives up. Nothing here runs on the fast path: a healthy registry costs no
extra request and no sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from gitlab_xacct.config.engine import Network
from gitlab_xacct.errors import RegistryUnreachable
from gitlab_xacct.registry.transport_errors import ConnectTimeout, ReadTimeout, TransportError

if TYPE_CHECKING:
    from gitlab_xacct.registry.transport import Response

T = TypeVar("T")

# Answers worth asking again: rate limited, or the registry (or its load balancer) is struggling.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class NoAnswer(RegistryUnreachable):
    """No answer at all (refused, reset, timed out, broken off): worth another try, unlike a
    TLS mismatch. `reason` says why in a few words, for log lines."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Again(Exception):
    """One try failed in a way worth another: `reason` for the log line, `later` the registry's
    Retry-After, `give_up(attempts)` the error when it was the last try."""

    def __init__(
        self,
        reason: str,
        *,
        give_up: Callable[[int], BaseException],
        later: float | None = None,
        wait: bool = True,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.give_up = give_up
        self.later = later
        self.wait = wait  # False: try again at once (a chunked upload resumed after a break)


# (attempt that failed, why, seconds before the next): the warning a retry logs
Pause = Callable[[int, str, float], None]


def repeat(network: Network, attempts: int, step: Callable[[int, bool], T], pause: Pause) -> T:
    """The one retry loop: `step(attempt, last)` until it returns, at most `attempts` times.
    An `Again` from a try before the last waits `network.delay` (never less than its
    Retry-After, capped), after `pause` has said so; from the last, its `give_up` is raised."""
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        try:
            return step(attempt, last)
        except Again as again:
            if last:
                raise again.give_up(attempt) from None
            wait = network.delay(attempt, again.later) if again.wait else 0.0
            pause(attempt, again.reason, wait)
            if wait:
                network.sleep(wait)
    raise AssertionError("attempts must be at least 1")


def with_attempts(message: str, attempts: int) -> str:
    """`message` with the number of attempts, before its advice (after the first `; `)."""
    if attempts == 1:
        return message
    head, sep, advice = message.partition("; ")
    return f"{head} after {attempts} attempts{sep}{advice}"


def retry_after(response: Response) -> float | None:
    """The `Retry-After` of an answer in seconds: delta-seconds or an HTTP date; None when
    absent or unreadable (a past date counts as 0)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    from datetime import UTC, datetime  # rare: an HTTP date
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def answer(response: Response) -> str:
    """An answer in a few words for a log line or an error: `HTTP 503 (Retry-After: 2)`."""
    text = f"HTTP {response.status_code}"
    if response.reason:
        text += f" {response.reason}"
    later = response.headers.get("Retry-After")
    return f"{text} (Retry-After: {later.strip()})" if later else text


def no_answer(exc: TransportError, network: Network) -> str:
    """Why a request got no answer, naming the timeout that ran out and its variable."""
    if isinstance(exc, ConnectTimeout):
        return f"no connection within {network.connect_timeout:g} s (XACCT_CONNECT_TIMEOUT)"
    if isinstance(exc, ReadTimeout):
        return f"no answer within {network.read_timeout:g} s (XACCT_READ_TIMEOUT)"
    return exc.reason
