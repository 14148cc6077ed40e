"""`login`'s settings: the identity, where the Docker config goes, which registries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gitlab_xacct.config import validate
from gitlab_xacct.config.identity import IdentitySettings
from gitlab_xacct.config.options import (
    COMMON_OPTIONS,
    IDENTITY_OPTIONS,
    LOGIN_OPTIONS,
    REGISTRY_OPTIONS,
)
from gitlab_xacct.config.problems import identity_command_problems
from gitlab_xacct.config.push import registry_endpoint
from gitlab_xacct.config.resolver import Resolver, check_unknown_variables


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginSettings:
    """`gitlab-xacct login`: where the Docker config goes and which registries go in it."""

    identity: IdentitySettings
    registry_endpoint: str | None
    docker_config: Path
    registries: tuple[str, ...]  # extra ECR registries: 12-digit account ids or ECR host names
    debug: bool

    OPTIONS = (*IDENTITY_OPTIONS, *REGISTRY_OPTIONS, *LOGIN_OPTIONS, *COMMON_OPTIONS)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], flags: Mapping[str, object] | None = None
    ) -> LoginSettings:
        r = Resolver(env, flags or {}, cls.OPTIONS)
        identity_command_problems(r, lambda: registry_endpoint(r), lambda: _registries(r))
        check_unknown_variables(env)
        found = r.get("docker_config")
        if found:
            docker_config = Path(found[0])
        elif env.get("DOCKER_CONFIG", "").strip():
            docker_config = Path(env["DOCKER_CONFIG"]) / "config.json"
        else:
            docker_config = Path(env.get("HOME") or Path.home()) / ".docker" / "config.json"
        return cls(
            identity=IdentitySettings.resolve(r),
            registry_endpoint=registry_endpoint(r),
            docker_config=docker_config,
            registries=_registries(r),
            debug=r.boolean("debug"),
        )


def _registries(r: Resolver) -> tuple[str, ...]:
    listed = r.list("login_registries")
    registries = [validate.ecr_registry(v, listed[1]) for v in listed[0]] if listed else []
    return tuple(dict.fromkeys(registries))
