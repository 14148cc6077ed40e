"""Real peers for the integration tests: patched moto (AWS), docker-registry (ECR's data plane).

The servers run once per test session on 127.0.0.1 with free ports and are stopped by pid.
The CLI runs as a subprocess, exactly as a GitLab job would run it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.standins.aws_world import World, build_world
from tests.standins.gitlab_job import job_env
from tests.standins.servers import MotoServer, Registry, start_moto, start_registry

# Sentinel secrets: searched for in every output the tests capture.
EXTERNAL_ID = "sentinel-ExtId-7f3a9c21e4b8d065"
TOOLS = ("docker-registry", "htpasswd", "skopeo", "umoci")
CLI = str(Path(sys.executable).with_name("gitlab-xacct"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)
            if missing:  # `make test` installs them; a bare pytest run on a laptop may lack them
                item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)}"))


@pytest.fixture(scope="session")
def peers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("peers")


@pytest.fixture(scope="session")
def moto(peers_dir: Path) -> Iterator[MotoServer]:
    with start_moto(peers_dir / "moto") as server:
        yield server


@pytest.fixture(scope="session")
def world(moto: MotoServer) -> World:
    return build_world(moto.url, external_id=EXTERNAL_ID, repositories=("team/app", "team/other"))


@pytest.fixture(scope="session")
def registry(peers_dir: Path) -> Iterator[Registry]:
    with start_registry(peers_dir / "registry") as server:
        yield server


@dataclass
class Job:
    """A GitLab-like job environment and the outputs of every run, for the secret scan."""

    world: World
    registry: Registry
    home: Path
    outputs: list[str] = field(default_factory=list)

    def env(self, **xacct: str) -> dict[str, str]:
        return job_env(self.world, self.registry.url, self.home, **xacct)

    def run(
        self,
        command: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        scan: bool = True,
        **xacct: str,
    ) -> subprocess.CompletedProcess[str]:
        """Run `gitlab-xacct COMMAND`; its outputs join the secret scan unless the user asked
        for secrets on stdout (`scan=False`, e.g. credentials --allow-log-output)."""
        result = subprocess.run(
            [CLI, command, *args],
            env=dict(env) if env is not None else self.env(**xacct),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr] if scan else [result.stderr]
        return result

    def push(
        self, *args: str, env: Mapping[str, str] | None = None, **xacct: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run("push", *args, env=env if env is not None else self.env(**xacct))

    def skopeo_inspect(
        self, reference: str, *, raw: bool = False
    ) -> subprocess.CompletedProcess[str]:
        creds = f"{self.registry.username}:{self.registry.password}"
        argv = ["skopeo", "inspect", "--tls-verify=false", "--creds", creds]
        return subprocess.run(
            [*argv, *(["--raw"] if raw else []), f"docker://{self.registry.host}/{reference}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def inspect(self, reference: str) -> dict[str, object]:
        result = self.skopeo_inspect(reference)
        assert result.returncode == 0, result.stderr
        data: dict[str, object] = json.loads(result.stdout)
        return data

    def secrets(self) -> list[str]:
        return [
            EXTERNAL_ID,
            self.world.runner_secret_access_key,
            self.registry.password,
        ]


@pytest.fixture
def job(world: World, registry: Registry, tmp_path: Path) -> Iterator[Job]:
    home = tmp_path / "home"
    home.mkdir()
    job = Job(world=world, registry=registry, home=home)
    yield job
    # Whatever the test checked, no secret may appear in anything the tool printed or wrote.
    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*.env") if p.is_file()]
    for text in [*job.outputs, *written]:
        for secret in job.secrets():
            assert secret not in text, "a secret reached the output"
