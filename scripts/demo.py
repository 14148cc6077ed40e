"""`make demo`: the main job end to end, on local stand-ins for AWS and ECR.

1. starts moto (AWS APIs, auth mode on, cross-account trust evaluated) and docker-registry (ECR's
   data plane, accepting the token ECR hands out);
2. creates BUILD's runner identity and OURTHING's role (trust: BUILD + External ID; ECR push);
3. builds a small image with umoci;
4. runs `gitlab-xacct push` exactly as a GitLab job would, and reads the result back with skopeo;
5. shows a wrong External ID refused with the explanation;
6. stops the stand-ins (by their process ids).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.standins.aws_world import build_world
from tests.standins.gitlab_job import job_env
from tests.standins.servers import start_moto, start_registry

ROOT = Path(__file__).resolve().parents[1]
# The test that runs the demo points this elsewhere, so it never touches a developer's .demo/.
WORKDIR = Path(os.environ.get("DEMO_WORKDIR", ROOT / ".demo"))
EXTERNAL_ID = "demo-ExternalId-4b1d9e0c"
MASKED = {EXTERNAL_ID: "[MASKED]"}


def bold(text: str) -> str:
    """Bold on a terminal; plain in a log file, a pipe, or with NO_COLOR (no-color.org)."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return f"\033[1m{text}\033[0m"


def say(title: str) -> None:
    print("\n" + bold(f"== {title}"), flush=True)


def show(text: str, indent: str = "   ") -> None:
    for secret, mask in MASKED.items():
        text = text.replace(secret, mask)
    print(textwrap.indent(text.rstrip("\n"), indent), flush=True)


def run(
    *argv: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, check=False)
    if check and result.returncode != 0:
        sys.exit(f"demo: {argv[0]} failed ({result.returncode}):\n{result.stderr}")
    return result


def build_image(workdir: Path) -> Path:
    layout = workdir / "image"
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:latest")
    app = workdir / "hello.sh"
    app.write_text("#!/bin/sh\necho 'hello from a pipeline in BUILD, running in OURTHING'\n")
    run("umoci", "insert", "--image", f"{layout}:latest", str(app), "/app/hello.sh")
    run("umoci", "config", "--image", f"{layout}:latest", "--config.cmd", "/app/hello.sh")
    return layout


def main() -> int:
    for tool in ("docker-registry", "htpasswd", "skopeo", "umoci", "gitlab-xacct"):
        if shutil.which(tool) is None:
            sys.exit(f"demo: {tool} is not on PATH; run `make demo`, which installs it")
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir()

    say("Starting the stand-ins: moto (AWS) and docker-registry (ECR's registry)")
    with start_moto(WORKDIR / "moto") as moto, start_registry(WORKDIR / "registry") as registry:
        show(f"moto            {moto.url}  (pid {moto.pid})")
        show(f"docker-registry {registry.url}  (pid {registry.pid})")

        say("Setting up both accounts, then turning on AWS's permission checks")
        world = build_world(moto.url, external_id=EXTERNAL_ID, repositories=("team/app",))
        show(
            f"BUILD    {world.build_account}: IAM user gitlab-runner (the runner's identity), "
            f"allowed sts:AssumeRole on the role\n"
            f"OURTHING {world.ourthing_account}: {world.role_arn}\n"
            f"         trust: arn:aws:iam::{world.build_account}:root with "
            f"sts:ExternalId = {EXTERNAL_ID}\n"
            f"         permissions: ECR push; repository team/app"
        )

        say("Building a small image with umoci (an OCI layout, no Docker)")
        layout = build_image(WORKDIR)
        show(f"oci:{layout}:latest")

        env = job_env(
            world,
            registry.url,
            WORKDIR,
            XACCT_SOURCE=f"oci:{layout}:latest",
            XACCT_TAGS="a1b2c3d4 latest",
            XACCT_DOTENV=str(WORKDIR / "xacct.env"),
        )
        say("Running `gitlab-xacct push` as the GitLab job would")
        show("\n".join(f"{k}={v}" for k, v in env.items() if k.startswith("XACCT_")))
        pushed = run("gitlab-xacct", "push", env=env, check=False)
        show(pushed.stderr)
        if pushed.returncode != 0:
            sys.exit(f"demo: gitlab-xacct push failed with exit code {pushed.returncode}")
        print("   stdout:")
        show(pushed.stdout, "     ")
        print("   dotenv report for later jobs:")
        show((WORKDIR / "xacct.env").read_text(), "     ")

        say("Reading the image back with skopeo (an independent client)")
        creds = f"{registry.username}:{registry.password}"
        inspected = json.loads(
            run("skopeo", "inspect", "--tls-verify=false", "--creds", creds,
                f"docker://{registry.host}/team/app:latest").stdout
        )  # fmt: skip
        reported = (WORKDIR / "xacct.env").read_text().split("XACCT_IMAGE_DIGEST=")[1].split()[0]
        show(f"skopeo sees team/app:latest at {inspected['Digest']}")
        show(f"layers: {', '.join(inspected['Layers'])}")
        if inspected["Digest"] != reported:
            sys.exit("demo: the digest skopeo reads differs from the one gitlab-xacct reported")
        show("same digest as gitlab-xacct reported")

        say("The same job with a wrong External ID")
        refused = run(
            "gitlab-xacct", "push",
            env={**env, "XACCT_EXTERNAL_ID": "not-the-agreed-id", "XACCT_TAGS": "wrong"},
            check=False,
        )  # fmt: skip
        show(refused.stderr)
        show(f"exit code {refused.returncode}")
        if refused.returncode != 3:
            sys.exit("demo: a wrong External ID should have been refused with exit code 3")

        say("Stopping the stand-ins")
    print("\ndemo: done. The job pushed with the right External ID and was refused without it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
