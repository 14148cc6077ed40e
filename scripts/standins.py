"""Stand-ins for AWS and ECR in a CI job's shell: the repository's own component test.

    eval "$(PYTHONPATH=. python3 scripts/standins.py start DIR)"   # in before_script
    PYTHONPATH=. python3 scripts/standins.py stop DIR              # in after_script

`start` runs patched moto (auth mode, cross-account trust evaluated) and docker-registry on
127.0.0.1, creates both accounts with the External ID from $STANDIN_EXTERNAL_ID, builds a small
OCI layout at DIR/image:component-test with umoci, and prints the `export` lines the job's
script needs (the runner's keys, the AWS endpoint, the registry endpoint). The servers outlive
this process, since the job's script runs after it; their pids go to DIR/pids, and `stop` ends
exactly those processes.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.standins.aws_world import build_world
from tests.standins.servers import Server, start_moto, start_registry

IMAGE_TAG = "component-test"
REPOSITORY = "team/app"
STOP_WAIT = 10.0


def start(workdir: Path) -> int:
    external_id = os.environ.get("STANDIN_EXTERNAL_ID", "")
    if not external_id:
        sys.exit("standins: set STANDIN_EXTERNAL_ID (the stand-in role's External ID)")
    workdir.mkdir(parents=True, exist_ok=True)
    servers: list[Server] = []
    try:
        moto = start_moto(workdir / "moto")
        servers.append(moto)
        registry = start_registry(workdir / "registry")
        servers.append(registry)
        world = build_world(moto.url, external_id=external_id, repositories=(REPOSITORY,))
        build_image(workdir / "image")
    except BaseException:
        for server in servers:
            server.stop()
        raise
    (workdir / "pids").write_text("".join(f"{server.pid}\n" for server in servers))
    exports = {**world.runner_env(), "XACCT_REGISTRY_ENDPOINT": registry.url}
    for key, value in exports.items():
        print(f"export {key}={shlex.quote(value)}")
    print(f"echo 'stand-ins: moto {moto.url}, docker-registry {registry.url}' >&2")
    return 0


def build_image(layout: Path) -> None:
    payload = layout.parent / "hello.txt"
    payload.write_text("hello from the component test\n")
    for argv in (
        ["umoci", "init", "--layout", str(layout)],
        ["umoci", "new", "--image", f"{layout}:{IMAGE_TAG}"],
        ["umoci", "insert", "--image", f"{layout}:{IMAGE_TAG}", str(payload), "/hello.txt"],
    ):
        subprocess.run(argv, check=True, timeout=120, stdout=subprocess.DEVNULL)


def stop(workdir: Path) -> int:
    """End the processes `start` recorded, and only those: SIGTERM, then SIGKILL past a deadline."""
    pids_file = workdir / "pids"
    if not pids_file.exists():
        return 0
    pids = [int(line) for line in pids_file.read_text().split()]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    pids_file.unlink()
    return 0


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child (it is not once `start` has exited); else probe it.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        sys.exit("usage: standins.py start|stop DIR")
    action, workdir = argv[0], Path(argv[1]).resolve()
    return start(workdir) if action == "start" else stop(workdir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
