"""`gitlab-xacct login` and `docker-credential-xacct` end to end, with skopeo as the consumer.

skopeo 1.9 (containers/image) is the independent client: it reads the Docker config `login`
writes, and runs the credential helper from `credHelpers` exactly as docker would (same
docker-credential-helpers client: request on stdin, answer or error on stdout).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.imagefactory import make_layer, write_oci_layout
from tests.integration.conftest import Job

BIN = Path(sys.executable).parent
HELPER = str(BIN / "docker-credential-xacct")
ECR_HOST = "222222222222.dkr.ecr.us-east-1.amazonaws.com"
NOT_FOUND = "credentials not found in native keychain"


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    write_oci_layout(tmp_path / "layout", [make_layer({"hello.txt": b"hello\n"})], ref="v1")
    return tmp_path / "layout"


def auth_entry(job: Job) -> dict[str, str]:
    pair = f"{job.registry.username}:{job.registry.password}"
    return {"auth": base64.b64encode(pair.encode()).decode()}


def skopeo_push(
    job: Job, layout: Path, tag: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """skopeo copy to the stand-in registry; its digest file says what it pushed."""
    digest_file = layout.parent / f"{tag}.digest"
    result = subprocess.run(
        [
            "skopeo", "copy", "--dest-tls-verify=false", "--digestfile", str(digest_file), *args,
            f"oci:{layout}:v1", f"docker://{job.registry.host}/team/app:{tag}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    job.outputs += [result.stdout, result.stderr]
    if result.returncode == 0:
        assert job.inspect(f"team/app:{tag}")["Digest"] == digest_file.read_text().strip()
    return result


def helper(job: Job, action: str, request: str, env: dict[str, str]) -> tuple[int, str]:
    """docker-credential-xacct as docker runs it; a `get` answer holds the password by design,
    so only failures' stdout joins the secret scan."""
    result = subprocess.run(
        [HELPER, action],
        input=request,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    job.outputs += [result.stderr] + ([result.stdout] if result.returncode else [])
    return result.returncode, result.stdout


def assert_files_hold_no_secret(job: Job, root: Path, *allowed: Path) -> None:
    """Every file the run left (but the Docker config or cache, where a registry password is
    the point) is free of the raw sentinels."""
    for path in root.rglob("*"):
        if path.is_file() and not any(path.is_relative_to(a) for a in allowed):
            text = path.read_text(errors="replace")
            for secret in job.secrets():
                assert secret not in text, f"a secret reached {path}"


# ---- gitlab-xacct login -------------------------------------------------------------------


def test_login_writes_a_config_skopeo_pushes_with(job: Job, layout: Path, tmp_path: Path) -> None:
    result = job.run("login")

    assert result.returncode == 0, result.stderr
    host = job.registry.host
    assert result.stdout == f"logged in to {host} (expires 2015-01-01T00:00:00Z)\n"
    config = job.home / ".docker" / "config.json"  # the default: ~/.docker/config.json
    assert json.loads(config.read_text()) == {"auths": {host: auth_entry(job)}}
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert oct((job.home / ".docker").stat().st_mode & 0o777) == "0o700"
    assert "assumed arn:aws:sts::222222222222:assumed-role/OurThingBuildRole/" in result.stderr

    pushed = skopeo_push(job, layout, "login-1", job.env(), "--authfile", str(config))
    assert pushed.returncode == 0, pushed.stderr
    assert_files_hold_no_secret(job, tmp_path)


def test_login_merges_extra_registries_and_keeps_what_was_there(job: Job, tmp_path: Path) -> None:
    config = tmp_path / "docker" / "config.json"
    config.parent.mkdir()
    before = {
        "auths": {"r.example.org": {"auth": "dXNlcjp0b2tlbg=="}},
        "credHelpers": {"gcr.io": "gcloud"},
        "psFormat": "table {{.ID}}",
    }
    config.write_text(json.dumps(before))

    result = job.run(
        "login",
        "--registry", "333333333333",
        env=job.env(
            DOCKER_CONFIG=str(config.parent),
            XACCT_LOGIN_REGISTRIES="444444444444.dkr.ecr.eu-west-1.amazonaws.com",
        ),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    other = "333333333333.dkr.ecr.us-east-1.amazonaws.com"
    assert [line.split(" (")[0] for line in result.stdout.splitlines()] == [
        f"logged in to {job.registry.host}",
        f"logged in to {other}",
    ]  # the flag replaced the variable's list, as flags do
    after = json.loads(config.read_text())
    assert {k: v for k, v in after.items() if k != "auths"} == {
        k: v for k, v in before.items() if k != "auths"
    }
    assert after["auths"]["r.example.org"] == before["auths"]["r.example.org"]  # type: ignore[index]
    assert after["auths"][job.registry.host] == auth_entry(job)
    token = base64.b64encode(b"AWS:333333333333-auth-token").decode()  # moto's, per account
    assert after["auths"][other] == {"auth": token}


def test_wrong_external_id_is_exit_3_and_leaves_the_config_untouched(
    job: Job, tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"auths": {"r.example.org": {"auth": "eDp5"}}}\n')
    config.chmod(0o644)

    result = job.run(
        "login", XACCT_DOCKER_CONFIG=str(config), XACCT_EXTERNAL_ID="sentinel-wrong-external-id"
    )

    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    assert "may not assume" in result.stderr
    assert "sentinel-wrong-external-id" not in result.stderr
    assert config.read_text() == '{"auths": {"r.example.org": {"auth": "eDp5"}}}\n'
    assert oct(config.stat().st_mode & 0o777) == "0o644"


def test_a_config_that_is_not_json_is_exit_2_and_untouched(job: Job, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("{,")
    result = job.run("login", XACCT_DOCKER_CONFIG=str(config))
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"gitlab-xacct: error: the Docker config {config} is not valid JSON (line 1, column 2); "
        "fix or move it, it was left untouched\n"
    )
    assert config.read_text() == "{,"


# ---- docker-credential-xacct --------------------------------------------------------------


def test_helper_answers_get_for_the_endpoint_and_ecr_hosts(job: Job, tmp_path: Path) -> None:
    env = job.env()
    for server in (job.registry.host, f"https://{ECR_HOST}"):
        code, out = helper(job, "get", server, env)
        assert code == 0, out
        assert json.loads(out) == {
            "ServerURL": server,
            "Username": "AWS",
            "Secret": job.registry.password,  # moto's token for 222222222222
        }
    assert helper(job, "get", "r.example.org", env) == (1, NOT_FOUND + "\n")
    # moto's tokens expired in 2015: nothing is cached, and nothing broke.
    assert helper(job, "list", "", env) == (0, "{}\n")
    assert not (job.home / ".cache" / "gitlab-xacct" / "ecr-tokens.json").exists()
    assert_files_hold_no_secret(job, tmp_path)


def test_helper_failure_is_one_line_on_stdout(job: Job) -> None:
    env = job.env(XACCT_EXTERNAL_ID="sentinel-wrong-external-id")
    code, out = helper(job, "get", job.registry.host, env)
    assert code == 1
    assert out.count("\n") == 1
    assert out.startswith("docker-credential-xacct: ")
    assert "may not assume arn:aws:iam::222222222222:role/OurThingBuildRole" in out
    assert "sentinel-wrong-external-id" not in out


@pytest.mark.parametrize("how", ["--authfile", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG"])
def test_skopeo_pushes_through_the_helper_in_credhelpers(
    job: Job, layout: Path, tmp_path: Path, how: str
) -> None:
    folder = tmp_path / "auth"
    folder.mkdir()
    config = folder / "config.json"
    config.write_text(json.dumps({"credHelpers": {job.registry.host: "xacct"}}))
    env = job.env()
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # where docker-credential-xacct lives
    args: list[str] = []
    if how == "--authfile":
        args = ["--authfile", str(config)]
    elif how == "REGISTRY_AUTH_FILE":
        env["REGISTRY_AUTH_FILE"] = str(config)
    else:
        env["DOCKER_CONFIG"] = str(folder)

    pushed = skopeo_push(job, layout, f"helper-{how.strip('-').lower()}", env, *args)

    assert pushed.returncode == 0, pushed.stderr
    assert config.read_text() == json.dumps({"credHelpers": {job.registry.host: "xacct"}})
    assert_files_hold_no_secret(job, tmp_path)


def test_skopeo_shows_the_helpers_error(job: Job, layout: Path, tmp_path: Path) -> None:
    config = tmp_path / "auth.json"
    config.write_text(json.dumps({"credHelpers": {job.registry.host: "xacct"}}))
    env = job.env(XACCT_EXTERNAL_ID="sentinel-wrong-external-id")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"

    pushed = skopeo_push(job, layout, "never", env, "--authfile", str(config))

    assert pushed.returncode != 0
    # containers/image puts the helper's stdout into its own error message.
    assert "docker-credential-xacct: " in pushed.stderr
    assert "may not assume" in pushed.stderr
    assert "sentinel-wrong-external-id" not in pushed.stderr
