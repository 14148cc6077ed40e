"""`gitlab-xacct copy SRC DEST`: any source into a registry, with the registries' own credentials.

No AWS here: nothing this module imports loads boto3 or botocore, so a copy between two
registries starts fast and needs no AWS identity.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TypeVar

from gitlab_xacct import log as xlog
from gitlab_xacct.config import validate
from gitlab_xacct.config.engine import EngineOptions, Platform, engine_options, platform_list
from gitlab_xacct.config.options import COPY_COMMAND_OPTIONS
from gitlab_xacct.config.problems import Problems, unknown_variables
from gitlab_xacct.config.reference import ImageReference, parse_reference
from gitlab_xacct.config.resolver import Resolver, check_unknown_variables
from gitlab_xacct.config.source import SourceSpec, parse_source
from gitlab_xacct.docker_config import registry_host
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.client import DEFAULT_CHUNK_SIZE
from gitlab_xacct.registry.image import SourceImage
from gitlab_xacct.registry.platforms import choose_platforms
from gitlab_xacct.registry.push import PushResult, push_image
from gitlab_xacct.registry.remote import Access, connect, lookup_credentials
from gitlab_xacct.registry.sources import open_source
from gitlab_xacct.secrets import register

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_SIZE = re.compile(r"(\d+)\s*([kmg]?)(?:i?b)?")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Read from the environment only when a lookup uses them; registered up front all the same.
_SECRET_ENV = ("CI_JOB_TOKEN", "CI_REGISTRY_PASSWORD")


@dataclass(frozen=True, slots=True, kw_only=True)
class CopySettings:
    source: SourceSpec
    source_access: Access | None  # docker:// sources only
    destination: ImageReference
    destination_access: Access
    tags: tuple[str, ...]
    platforms: tuple[Platform, ...]
    platforms_origin: str
    engine: EngineOptions
    debug: bool

    OPTIONS = COPY_COMMAND_OPTIONS

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], flags: Mapping[str, object] | None = None
    ) -> CopySettings:
        for name in _SECRET_ENV:
            register(env.get(name, ""))
        flags = flags or {}
        r = Resolver(env, flags, cls.OPTIONS)
        _every_problem(r, flags)
        check_unknown_variables(env)
        source = _positional(flags, "src", "SRC", parse_source)
        destination = _destination(flags)
        listed = r.list("insecure_registries")
        insecure = frozenset(registry_host(h) for h in listed[0]) if listed else frozenset()
        chunk_size = _chunk_size(r.get("chunk_size"))
        platforms, platforms_origin = platform_list(r)
        engine = engine_options(r)

        def access(host: str, dest: str) -> Access:
            credentials, origin = lookup_credentials(host, env, r.get(dest))
            return Access(
                credentials=credentials,
                origin=origin,
                insecure_registries=insecure,
                chunk_size=chunk_size,
                network=engine.network,
                env=env,
            )

        return cls(
            source=source,
            source_access=(
                access(source.image.api_host, "src_creds") if source.transport == "docker" else None
            ),
            destination=destination,
            destination_access=access(destination.api_host, "dest_creds"),
            tags=_tags(destination, r),
            platforms=platforms,
            platforms_origin=platforms_origin,
            engine=engine,
            debug=r.boolean("debug"),
        )

    def summary(self) -> list[tuple[str, str]]:
        lines = [("source", str(self.source))]
        if self.source_access:
            lines.append(("source login", self.source_access.origin))
        lines += [
            ("destination", f"{self.destination.host}/{self.destination.repository}"),
            ("tags", ", ".join(self.tags)),
            ("destination login", self.destination_access.origin),
        ]
        if self.destination_access.insecure_registries:
            lines.append(
                (
                    "insecure registries",
                    ", ".join(sorted(self.destination_access.insecure_registries)),
                )
            )
        return lines


def copy(settings: CopySettings, env: Mapping[str, str]) -> PushResult:
    """The whole copy as a library call; `env` only decides how the log looks (GitLab or not)."""
    destination = settings.destination
    access = settings.destination_access
    with _open(settings, env) as image:
        xlog.preamble("copy", settings.summary(), image)
        hint = (
            f"the credentials from {access.origin} were not accepted, or may not push to "
            f"{destination.repository} (--dest-creds, the Docker config, CI_REGISTRY_*)"
        )
        with (
            xlog.section("xacct_copy", "Copy", env),
            connect(destination.api_host, access, auth_hint=hint) as registry,
        ):
            registry.ping()
            result = push_image(
                registry, destination.repository, image, settings.tags, options=settings.engine
            )
    log.info(
        "copied %s (%d blobs uploaded, %d mounted, %d already present)",
        result.uri,
        result.blobs_uploaded,
        result.blobs_mounted,
        result.blobs_present,
    )
    return result


@contextmanager
def _open(settings: CopySettings, env: Mapping[str, str]) -> Iterator[SourceImage]:
    with ExitStack() as stack:
        try:
            image = stack.enter_context(
                open_source(settings.source, env=env, access=settings.source_access)
            )
        except ConfigError as exc:
            raise ConfigError(f"SRC: {exc}") from None
        yield choose_platforms(image, settings.platforms, settings.platforms_origin)


def _positional(
    flags: Mapping[str, object], dest: str, name: str, parse: Callable[[str], _T]
) -> _T:
    value = flags.get(dest)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name}: not given; gitlab-xacct copy SRC DEST")
    try:
        return parse(value)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _every_problem(r: Resolver, flags: Mapping[str, object]) -> None:
    """Every problem of the arguments and settings in one run, as every command reports them."""
    problems = Problems()
    unknown_variables(r.env, problems)
    problems.attempt(lambda: _positional(flags, "src", "SRC", parse_source))
    destination = problems.attempt(lambda: _destination(flags))
    if destination is not None:
        problems.attempt(lambda: _tags(destination, r))
    problems.attempt(lambda: _chunk_size(r.get("chunk_size")))
    problems.attempt(lambda: platform_list(r))
    problems.attempt(lambda: engine_options(r))
    problems.attempt(lambda: r.boolean("debug"))
    problems.raise_several()


def _destination(flags: Mapping[str, object]) -> ImageReference:
    destination = _positional(flags, "dest", "DEST", parse_reference)
    if destination.digest:
        raise ConfigError(f"DEST: {destination} names a digest; name a tag (:TAG or --tag)")
    return destination


def _tags(destination: ImageReference, r: Resolver) -> tuple[str, ...]:
    pairs = [(destination.tag, "DEST")] if destination.tag else []
    extra = r.list("extra_tags")
    if extra:
        pairs += [(value, extra[1]) for value in extra[0]]
    if not pairs:
        raise ConfigError(
            f"DEST: {destination} names no tag and XACCT_COPY_TAGS (--tag) is not set; give "
            "docker://HOST/REPO:TAG"
        )
    return tuple(dict.fromkeys(validate.tag(value, origin) for value, origin in pairs))


def _chunk_size(found: tuple[str, str] | None) -> int:
    if found is None:
        return DEFAULT_CHUNK_SIZE
    value, origin = found
    match = _SIZE.fullmatch(value.strip().lower())
    if match is None:
        raise ConfigError(
            f"{origin}: {value!r} is not a size; give bytes, optionally with K, M or G (e.g. "
            "16M), or 0 for one PUT per blob"
        )
    return int(match[1]) * _UNITS[match[2]]
