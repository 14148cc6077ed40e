"""Sentinel secrets: every command, succeeding and failing, normal and debug, prints none.

The files a user asks for (a Docker config, a credentials file) hold secrets by design and are
left out of the scan; everything else under the job's folder is read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.imagefactory import make_layer, write_oci_layout
from tests.integration.conftest import EXTERNAL_ID, Job

HELPER = str(Path(sys.executable).with_name("docker-credential-xacct"))
WRONG = "sentinel-wrong-ExtId-3141"


def commands(tmp: Path, layout: Path) -> dict[str, list[str]]:
    return {
        "push": ["push", "--source", f"oci:{layout}:latest", "--tag", "scan",
                 "--dotenv", str(tmp / "report.env")],
        "login": ["login", "--docker-config", str(tmp / "asked" / "config.json")],
        "credentials": ["credentials", "--format", "json", "--output", str(tmp / "asked.json")],
    }  # fmt: skip


@pytest.mark.parametrize("debug", ["false", "true"])
@pytest.mark.parametrize("outcome", ["ok", "refused"])
@pytest.mark.parametrize("command", ["push", "login", "credentials", "helper"])
def test_no_secret_in_any_output(
    job: Job, tmp_path: Path, command: str, outcome: str, debug: str
) -> None:
    layout = tmp_path / "layout"
    write_oci_layout(layout, [make_layer({"s": b"scan"})], ref="latest")
    external_id = EXTERNAL_ID if outcome == "ok" else WRONG
    env = job.env(XACCT_DEBUG=debug, XACCT_EXTERNAL_ID=external_id)

    if command == "helper":
        result = subprocess.run(
            [HELPER, "get"], input=job.registry.host, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        # A successful get answers the password on stdout: that is the protocol, not a leak.
        job.outputs += [result.stderr] if outcome == "ok" else [result.stdout, result.stderr]
        assert (result.returncode == 0) == (outcome == "ok"), result.stdout + result.stderr
    else:
        argv = commands(tmp_path, layout)[command]
        result = job.run(argv[0], *argv[1:], env=env)
        assert result.returncode == (0 if outcome == "ok" else 3), result.stderr
    if debug == "true" and command != "helper":
        assert "sts:AssumeRole" in result.stderr  # debug really was on

    for path in tmp_path.rglob("*"):
        if path.is_file() and "asked" not in path.name and "asked" not in path.parent.name:
            job.outputs.append(path.read_text(errors="replace"))
    # The wrong External ID is a secret too, though not one the fixture knows of.
    assert all(WRONG not in text for text in job.outputs)
