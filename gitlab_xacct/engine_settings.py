"""The push engine's settings, shared by `push` and `copy`: platforms, parallelism, tags kept,
and how hard to try the network. Kept apart from `settings` so that `copy` does not import (and
compile the checks of) everything `push` resolves."""

from __future__ import annotations

import math
from dataclasses import replace

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.network import check_proxies
from gitlab_xacct.options import Resolver
from gitlab_xacct.registry.platforms import Platform, parse_platform
from gitlab_xacct.registry.push import DEFAULT_PARALLELISM, EngineOptions
from gitlab_xacct.registry.retry import Network
from gitlab_xacct.validate import whole_number


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
