"""`make demo` runs in the test suite, so it cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_pushes_reads_back_and_shows_the_refusal(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "XACCT_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "DEMO_WORKDIR": str(tmp_path / "demo"),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "same digest as gitlab-xacct reported" in out
    assert "XACCT_IMAGE_URI=127.0.0.1:" in out
    assert "may not assume arn:aws:iam::222222222222:role/OurThingBuildRole" in out
    assert "exit code 3" in out
    assert "demo-ExternalId-4b1d9e0c" not in out + result.stderr  # the demo masks it too
    assert "\x1b" not in out + result.stderr  # a log file or a pipe gets no terminal escapes
