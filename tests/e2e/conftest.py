"""Peers for the GitLab CI runs: patched moto (AWS), docker-registry (ECR's data plane), and
gitlab-ci-local, which `make test` installs with scripts/install-ci-tools.sh.

The servers run once per session on 127.0.0.1 with free ports and are stopped by pid.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cifiles import REPO_ROOT
from tests.standins.aws_world import World, build_world
from tests.standins.servers import MotoServer, Registry, start_moto, start_registry

EXTERNAL_ID = "sentinel-ExtId-e2e-5c1d0b7a93f2"
GITLAB_CI_LOCAL_VERSION = "4.73.0"  # as scripts/install-ci-tools.sh; 4.74+ needs Node 22
GCL_TEST_FILES = ("test_gitlab_ci_local.py", "test_own_pipeline.py")
RUN_TOOLS = ("docker-registry", "htpasswd", "skopeo", "umoci", "rsync", "git")


def gitlab_ci_local() -> str | None:
    # The launcher runs it on a Node it works on (20+), the machine's or npm's node@20.
    installed = REPO_ROOT / ".ci-tools" / "bin" / "gitlab-ci-local"
    if installed.exists():
        return str(installed)
    return shutil.which("gitlab-ci-local")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [t for t in RUN_TOOLS if shutil.which(t) is None]
    if gitlab_ci_local() is None:
        missing.append("gitlab-ci-local (bash scripts/install-ci-tools.sh)")
    for item in items:
        if item.path.name in GCL_TEST_FILES:
            item.add_marker(pytest.mark.integration)
            if missing:  # `make test` installs them; a bare pytest run on a laptop may lack them
                item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)}"))


@pytest.fixture(scope="session")
def gcl() -> str:
    path = gitlab_ci_local()
    assert path is not None
    version = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert version == GITLAB_CI_LOCAL_VERSION, f"gitlab-ci-local {version} at {path}"
    return path


@pytest.fixture(scope="session")
def e2e_peers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-peers")


@pytest.fixture(scope="session")
def e2e_moto(e2e_peers: Path) -> Iterator[MotoServer]:
    with start_moto(e2e_peers / "moto") as server:
        yield server


@pytest.fixture(scope="session")
def e2e_world(e2e_moto: MotoServer) -> World:
    return build_world(e2e_moto.url, external_id=EXTERNAL_ID, repositories=("team/app",))


@pytest.fixture(scope="session")
def e2e_registry(e2e_peers: Path) -> Iterator[Registry]:
    with start_registry(e2e_peers / "registry") as server:
        yield server
