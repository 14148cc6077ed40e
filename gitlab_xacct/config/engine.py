"""The push engine's settings, shared by `push` and `copy`: platforms, parallelism, tags kept,
and how hard to try the network; the registry code takes them as they are built here."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace

from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.config.validate import whole_number
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.network import check_proxies

DEFAULT_PARALLELISM = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    """`XACCT_CONNECT_TIMEOUT`, `XACCT_READ_TIMEOUT`, `XACCT_RETRIES` and the backoff."""

    connect_timeout: float = 10.0
    # Between two reads of one socket, not for a whole transfer: a slow peer that keeps sending
    # is fine; one that sends nothing this long is given up on. A registry may think a while
    # before answering the PUT that completes a big blob (it hashes and moves it; on S3-backed
    # storage a copy), and a false timeout there re-sends the whole blob: minutes, not seconds.
    read_timeout: float = 300.0
    retries: int = 4  # a request is sent at most 1 + retries times
    backoff: float = 0.5  # the first wait; doubles after each failure
    backoff_cap: float = 30.0
    retry_after_cap: float = 60.0

    @property
    def attempts(self) -> int:
        return 1 + self.retries

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): exponential with
        "equal jitter" (half fixed, half random), so parallel uploads that failed together do
        not come back together; never less than the registry's (capped) Retry-After."""
        ceiling = min(self.backoff_cap, self.backoff * 2.0 ** (attempt - 1))
        wait = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not secrecy)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.retry_after_cap))
        return wait

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True, slots=True)
class EngineOptions:
    parallelism: int = DEFAULT_PARALLELISM
    skip_existing_tags: bool = False
    network: Network = field(default_factory=Network)  # timeouts, retries of every registry


# GOOS/GOARCH values the OCI image spec points to; a typo gets a "did you mean".
KNOWN_OS = (
    "linux",
    "windows",
    "darwin",
    "freebsd",
    "netbsd",
    "openbsd",
    "solaris",
    "illumos",
    "aix",
    "android",
    "ios",
    "js",
    "wasip1",
    "plan9",
    "dragonfly",
)
KNOWN_ARCH = ("amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips64le",
              "mips64", "mipsle", "mips", "loong64", "wasm")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    def matches(self, descriptor_platform: object) -> bool:
        if not isinstance(descriptor_platform, dict):
            return False
        if (descriptor_platform.get("os"), descriptor_platform.get("architecture")) != (
            self.os,
            self.architecture,
        ):
            return False
        return self.variant is None or descriptor_platform.get("variant") == self.variant


def parse_platform(value: str, origin: str) -> Platform:
    parts = value.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"{origin}: {value!r} is not a platform; write os/arch[/variant], "
                          "for example linux/amd64 or linux/arm/v7")  # fmt: skip
    os_name, arch = parts[0], parts[1]
    for given, known, what in ((os_name, KNOWN_OS, "operating system"),
                               (arch, KNOWN_ARCH, "architecture")):  # fmt: skip
        if given not in known:
            import difflib  # only for a mistake: not worth its import on every start

            close = difflib.get_close_matches(given, known, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
            raise ConfigError(f"{origin}: {value!r} names an unknown {what} {given!r}; {hint}")
    return Platform(os_name, arch, parts[2] if len(parts) == 3 else None)


def platform_list(r: Resolver) -> tuple[tuple[Platform, ...], str]:
    listed = r.list("platforms")
    if not listed:
        return (), "XACCT_PLATFORMS"
    return tuple(parse_platform(p, listed[1]) for p in listed[0]), listed[1]


def engine_options(r: Resolver) -> EngineOptions:
    check_proxies(r.env)  # the proxy variables and CA bundle of every connection
    return EngineOptions(
        parallelism=_count(r, "parallelism", DEFAULT_PARALLELISM, (1, 32), "uploads"),
        skip_existing_tags=r.boolean("skip_existing_tags"),
        network=_network(r),
    )


def _network(r: Resolver) -> Network:
    """XACCT_CONNECT_TIMEOUT, XACCT_READ_TIMEOUT (seconds, up to an hour), XACCT_RETRIES."""
    default = Network()
    seconds = {"connect_timeout": default.connect_timeout, "read_timeout": default.read_timeout}
    for name in seconds:
        found = r.get(name)
        if found:
            value, origin = found
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not 0 < number <= 3600:  # NaN fails too
                raise ConfigError(
                    f"{origin}: {value!r} is not a number of seconds from 0 to 3600 (e.g. 30)"
                )
            seconds[name] = number
    retries = _count(r, "retries", default.retries, (0, 10), "retries")
    return replace(default, retries=retries, **seconds)


def _count(r: Resolver, dest: str, default: int, span: tuple[int, int], what: str) -> int:
    """A whole-number setting within `span` (both ends allowed), or `default` when not set."""
    found = r.get(dest)
    if not found:
        return default
    value, origin = found
    low, high = span
    number = whole_number(value, low, high)
    if number is None:
        raise ConfigError(f"{origin}: {value!r} is not a number of {what} from {low} to {high}")
    return number
