"""`push`'s settings: its destinations (XACCT_ROLE_ARN and friends, or XACCT_DESTINATIONS
entries, each with its identity), the source and tags, the engine, the reports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gitlab_xacct.config import validate
from gitlab_xacct.config.engine import EngineOptions, Platform, engine_options, platform_list
from gitlab_xacct.config.forms import DESTINATION_FORM
from gitlab_xacct.config.identity import Hop, IdentitySettings, external_id_secret
from gitlab_xacct.config.options import (
    COMMON_OPTIONS,
    ENGINE_OPTIONS,
    IDENTITY_OPTIONS,
    PUSH_OPTIONS,
    REGISTRY_OPTIONS,
)
from gitlab_xacct.config.resolver import Resolver, check_unknown_variables
from gitlab_xacct.config.source import SourceSpec, resolve_source, resolve_tags
from gitlab_xacct.config.validate import RoleArn, defaulted, report_path
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.secrets import Secret


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """One place to push: the role to reach it, its ECR repository, and its registry endpoint."""

    identity: IdentitySettings
    repository: str
    registry_endpoint: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PushSettings:
    destinations: tuple[Destination, ...]
    source: SourceSpec
    source_origin: str
    tags: tuple[str, ...]
    create_repository: bool
    platforms: tuple[Platform, ...]  # empty: every platform, the index kept byte for byte
    platforms_origin: str
    engine: EngineOptions
    dotenv: Path | None
    annotations: Path | None = None  # GitLab's annotations report (links on the job page)
    debug: bool

    OPTIONS = (
        *IDENTITY_OPTIONS, *REGISTRY_OPTIONS, *PUSH_OPTIONS, *ENGINE_OPTIONS, *COMMON_OPTIONS
    )  # fmt: skip

    @property
    def identity(self) -> IdentitySettings:
        return self.destinations[0].identity

    @property
    def repository(self) -> str:
        return self.destinations[0].repository

    @property
    def registry_endpoint(self) -> str | None:
        return self.destinations[0].registry_endpoint

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], flags: Mapping[str, object] | None = None
    ) -> PushSettings:
        check_unknown_variables(env)
        r = Resolver(env, flags or {}, cls.OPTIONS)
        source, source_origin = resolve_source(r)
        platforms, platforms_origin = platform_list(r)
        return cls(
            destinations=_destinations(r),
            source=source,
            source_origin=source_origin,
            tags=resolve_tags(r),
            create_repository=r.boolean("create_repository"),
            platforms=platforms,
            platforms_origin=platforms_origin,
            engine=engine_options(r),
            dotenv=resolve_report(r, "dotenv"),
            annotations=resolve_report(r, "annotations"),
            debug=r.boolean("debug"),
        )

    def summary(self) -> list[tuple[str, str]]:
        lines = [*self.identity.summary()]
        for number, destination in enumerate(self.destinations, start=1):
            where = f"{destination.identity.target.role} {destination.identity.region} " + (
                destination.repository
            )
            lines.append((f"destination {number}", where))
        return [
            *lines,
            ("source", str(self.source)),
            ("platforms", ", ".join(map(str, self.platforms)) or "all"),
            ("tags", ", ".join(self.tags)),
            ("registry endpoint", self.registry_endpoint or "as ECR names it"),
            ("create repository", str(self.create_repository).lower()),
            ("parallel uploads", str(self.engine.parallelism)),
        ]


@dataclass(frozen=True, slots=True)
class DestinationEntry:
    """One XACCT_DESTINATIONS entry (or --destination), split and checked, not resolved."""

    origin: str  # "XACCT_DESTINATIONS entry 2", for messages
    role_arn: RoleArn
    region: str
    repository: str
    external_id: Secret | None  # the entry's own, else None (XACCT_EXTERNAL_ID applies)
    registry_endpoint: str | None  # the entry's own, else None

    def named(self, field: str) -> str:
        """How messages name one of the entry's fields: "the region in ... entry 2"."""
        return f"the {field} in {self.origin}"


def destination_entries(r: Resolver) -> tuple[DestinationEntry, ...]:
    """XACCT_DESTINATIONS (or --destination) entries; () when neither is given."""
    entries: list[tuple[str, str]] = []
    flag = r.flag("destinations")
    listed = r.get("destinations")
    if isinstance(flag, list) and flag:
        entries = [(str(e), f"--destination {n}") for n, e in enumerate(flag, start=1)]
    elif listed:
        value, origin = listed
        items = [i.strip() for i in re.split(r"[\n,]", value) if i.strip()]
        if not items:
            raise ConfigError(
                f"{origin}: lists no destination; give ROLE_ARN|REGION|REPOSITORY entries, one "
                "per line or separated by commas"
            )
        entries = [(item, f"{origin} entry {n}") for n, item in enumerate(items, start=1)]
    return tuple(_entry(entry, origin) for entry, origin in entries)


def _entry(entry: str, origin: str) -> DestinationEntry:
    fields = [f.strip() for f in entry.split("|")]
    if not 3 <= len(fields) <= 5:
        raise ConfigError(f"{origin}: expected {DESTINATION_FORM}, got {len(fields)} fields")
    arn, region, name = fields[:3]
    external = fields[3] if len(fields) > 3 else ""
    endpoint = fields[4] if len(fields) > 4 else ""
    return DestinationEntry(
        origin=origin,
        role_arn=validate.role_arn(arn, origin),
        region=validate.region(region, origin),
        repository=validate.repository(name, origin),
        external_id=external_id_secret((external, origin)) if external else None,
        registry_endpoint=validate.registry_endpoint(endpoint, origin) if endpoint else None,
    )


def _destinations(r: Resolver) -> tuple[Destination, ...]:
    """XACCT_DESTINATIONS entries, else the one destination of XACCT_ROLE_ARN and friends."""
    entries = destination_entries(r)
    if not entries:
        return (variables_destination(r),)
    return tuple(entry_destination(entry, r) for entry in entries)


def variables_destination(r: Resolver) -> Destination:
    """The one destination of XACCT_ROLE_ARN, XACCT_REGION, XACCT_REPOSITORY and friends."""
    return Destination(
        identity=IdentitySettings.resolve(r),
        repository=repository(r),
        registry_endpoint=registry_endpoint(r),
    )


def entry_destination(entry: DestinationEntry, r: Resolver) -> Destination:
    """One entry as the destination push uses (and the doctor diagnoses)."""
    return Destination(
        identity=entry_identity(entry, r),
        repository=entry.repository,
        registry_endpoint=entry.registry_endpoint or registry_endpoint(r),
    )


def entry_identity(entry: DestinationEntry, r: Resolver) -> IdentitySettings:
    """The identity settings of one entry: its role and region in place of XACCT_ROLE_ARN and
    XACCT_REGION, its own External ID or else XACCT_EXTERNAL_ID, each named as the entry's."""
    target = Hop(
        role=entry.role_arn,
        external_id=entry.external_id or external_id_secret(r.get("external_id")),
        origin=entry.origin,
        external_id_origin=entry.named("External ID") if entry.external_id else "XACCT_EXTERNAL_ID",
    )
    return IdentitySettings.resolve(r, target=target, region=(entry.region, entry.origin))


def entry_values(entry: DestinationEntry) -> dict[str, tuple[str, str]]:
    """The entry's fields as the settings they replace (for `Resolver.pinned`), each with the
    origin messages name: the entry, not a variable the job does not set."""
    values = {
        "role_arn": (str(entry.role_arn), entry.origin),
        "region": (entry.region, entry.origin),
        "repository": (entry.repository, entry.origin),
    }
    if entry.external_id:
        values["external_id"] = (entry.external_id.reveal(), entry.named("External ID"))
    if entry.registry_endpoint:
        values["registry_endpoint"] = (entry.registry_endpoint, entry.named("endpoint"))
    return values


def registry_endpoint(r: Resolver) -> str | None:
    endpoint = r.get("registry_endpoint")
    return validate.registry_endpoint(*endpoint) if endpoint else None


def repository(r: Resolver) -> str:
    """XACCT_REPOSITORY, else the GitLab project's path lower-cased (ECR names are)."""
    found = r.get("repository")
    if found is None and r.env.get("CI_PROJECT_PATH"):
        found = (r.env["CI_PROJECT_PATH"].lower(), "CI_PROJECT_PATH (lower-cased)")
    if found is None:
        raise ConfigError(
            "XACCT_REPOSITORY (--repository): no repository set and CI_PROJECT_PATH is "
            "unset; give the ECR repository name, for example team/app"
        )
    return defaulted(validate.repository, *found, "XACCT_REPOSITORY (--repository)")


def resolve_report(r: Resolver, dest: str) -> Path | None:
    """A report's path (XACCT_DOTENV, XACCT_ANNOTATIONS): a file in an existing folder."""
    found = r.get(dest)
    return report_path(*found) if found else None
