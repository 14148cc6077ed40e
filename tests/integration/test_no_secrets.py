"""Sentinel secrets: every command, succeeding and failing, normal and debug, prints none.

The files a user asks for (a Docker config, a credentials file) hold secrets by design and are
left out of the scan; everything else under the job's folder is read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitlab_xacct.cli import COMMANDS
from tests.imagefactory import make_layer, write_oci_layout
from tests.integration.conftest import EXTERNAL_ID, Job

HELPER = str(Path(sys.executable).with_name("docker-credential-xacct"))
WRONG = "sentinel-wrong-ExtId-3141"


def commands(tmp: Path, layout: Path, registry_host: str) -> dict[str, list[str]]:
    return {
        "push": ["push", "--source", f"oci:{layout}:latest", "--tag", "scan",
                 "--dotenv", str(tmp / "report.env")],
        "login": ["login", "--docker-config", str(tmp / "asked" / "config.json")],
        "credentials": ["credentials", "--format", "json", "--output", str(tmp / "asked.json")],
        "copy": ["copy", f"oci:{layout}:latest", f"docker://{registry_host}/team/app:copied",
                 "--dest-creds", "REGISTRY_LOGIN"],
        "doctor": ["doctor", "--json"],
    }  # fmt: skip


# The commands whose sentinel runs live beside their own stand-ins.
ELSEWHERE = {
    "bootstrap role": "tests/integration/test_bootstrap.py::test_no_secret_in_any_output",
    "bootstrap build-policy": "tests/integration/test_bootstrap.py::test_no_secret_in_any_output",
    "gitlab configure": "tests/integration/test_gitlab_configure.py::test_no_secret_in_any_output",
}
HERE = ("push", "login", "credentials", "copy", "doctor")


def test_every_command_has_a_sentinel_run() -> None:
    """A new command must join the scan: here, or beside its stand-ins (named in ELSEWHERE)."""
    assert set(COMMANDS) == set(HERE) | set(ELSEWHERE)
    root = Path(__file__).resolve().parents[2]
    for where in ELSEWHERE.values():
        path, _, test = where.partition("::")
        assert f"def {test}(" in (root / path).read_text(), where


@pytest.mark.parametrize("debug", ["false", "true"])
@pytest.mark.parametrize("outcome", ["ok", "refused"])
@pytest.mark.parametrize("command", [*HERE, "helper"])
def test_no_secret_in_any_output(
    job: Job, tmp_path: Path, command: str, outcome: str, debug: str
) -> None:
    layout = tmp_path / "layout"
    write_oci_layout(layout, [make_layer({"s": b"scan"})], ref="latest")
    external_id = EXTERNAL_ID if outcome == "ok" else WRONG
    env = job.env(XACCT_DEBUG=debug, XACCT_EXTERNAL_ID=external_id)
    # copy authenticates with the registry's own password (a wrong one when refused).
    password = job.registry.password if outcome == "ok" else WRONG
    env["REGISTRY_LOGIN"] = f"{job.registry.username}:{password}"

    if command == "helper":
        result = subprocess.run(
            [HELPER, "get"], input=job.registry.host, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        # A successful get answers the password on stdout: that is the protocol, not a leak.
        job.outputs += [result.stderr] if outcome == "ok" else [result.stdout, result.stderr]
        assert (result.returncode == 0) == (outcome == "ok"), result.stdout + result.stderr
    else:
        argv = commands(tmp_path, layout, job.registry.host)[command]
        result = job.run(argv[0], *argv[1:], env=env)
        refused = 4 if command == "copy" else 3  # copy: the registry; the others: AssumeRole
        assert result.returncode == (0 if outcome == "ok" else refused), result.stderr
    if debug == "true" and command not in ("helper", "copy"):
        assert "sts:AssumeRole" in result.stderr  # debug really was on

    for path in tmp_path.rglob("*"):
        if path.is_file() and "asked" not in path.name and "asked" not in path.parent.name:
            job.outputs.append(path.read_text(errors="replace"))
    # The wrong External ID is a secret too, though not one the fixture knows of.
    assert all(WRONG not in text for text in job.outputs)
