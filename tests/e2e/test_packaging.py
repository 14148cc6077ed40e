"""The built wheel and sdist carry what users need: the GitLab templates and py.typed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ("ci-templates/xacct.gitlab-ci.yml", "templates/ecr-push.yml")


def test_wheel_and_sdist_contain_the_templates_and_py_typed(tmp_path: Path) -> None:
    # A copy of what the build reads: building writes build/ and egg-info next to the sources.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "MANIFEST.in"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("gitlab_xacct", "ci-templates", "templates"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
         "--outdir", str(out), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")

    names = zipfile.ZipFile(wheel).namelist()
    assert "gitlab_xacct/py.typed" in names
    for template in TEMPLATES:
        packed = [n for n in names if n.endswith(f"/data/share/gitlab-xacct/{template}")]
        assert packed, f"{template} is not in {wheel.name}"
        data = zipfile.ZipFile(wheel).read(packed[0])
        assert data == (ROOT / template).read_bytes()

    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert "gitlab_xacct/py.typed" in members
    for template in TEMPLATES:
        assert template in members, f"{template} is not in {sdist.name}"
