"""Concurrent pushes that share layers, into one repository of a fresh docker-registry.

Each round starts a docker-registry on empty storage, launches every client's push at once
(each image: the same base layers plus one of its own), waits for all of them within a
deadline, reads every tag back with skopeo and stops the registry by its pid. The integration
test runs it with `gitlab-xacct copy`; `bench/race.py` runs it with skopeo too, the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.imagefactory import gzip_bytes, random_layer, write_oci_layout
from tests.standins.servers import REPO_ROOT, Registry, start_registry, stop_process

REPOSITORY = "team/race"
# The base layers are what the clients race on. A base layer whose upload takes longer than a
# client's own layer, its config and its manifest lets a late client still be committing a base
# layer when an early one PUTs its manifest: the overlap the race needs (2 MiB lost the most
# pushes of the sizes tried, docs/reliability.md); the stagger spreads the starts over as much.
BASE_LAYERS = 4
BASE_SIZE = 2 * 1024 * 1024
OWN_SIZE = 16 * 1024
# Seconds between two clients' start signals: parallel jobs start close together, not at once.
STAGGER = 0.05
STARTLINE = (sys.executable, "-m", "tests.standins.startline", "--")


@dataclass(frozen=True)
class RaceImage:
    ref: str  # the layout's ref name, also the tag it is pushed to
    digest: str  # its manifest digest: where the tag must be


def write_race_layout(layout: Path, clients: int) -> list[RaceImage]:
    """One OCI layout holding an image per client: the shared base layers plus its own."""
    # gzip, as images are: skopeo would compress plain tar layers and change the digest.
    base = [gzip_bytes(random_layer(BASE_SIZE, seed=1900 + n)) for n in range(BASE_LAYERS)]
    images = []
    for n in range(clients):
        own = gzip_bytes(random_layer(OWN_SIZE, seed=1950 + n))
        info = write_oci_layout(layout, [*base, own], ref=f"c{n}")
        images.append(RaceImage(f"c{n}", info.manifest_digest))
    return images


# The command that pushes `oci:LAYOUT:REF` to `docker://HOST/REPOSITORY:REF` with creds.
Command = Callable[[Path, RaceImage, Registry], list[str]]


@dataclass
class Outcome:
    """One push of a round: its exit code and stderr, and where skopeo found its tag."""

    image: RaceImage
    returncode: int
    stderr: str
    found: str | None = None  # the digest skopeo read back, None when the tag is not there

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.found == self.image.digest


@dataclass
class Round:
    outcomes: list[Outcome]
    seconds: float
    registry_log: str = field(repr=False, default="")

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def run_round(
    workdir: Path,
    layout: Path,
    images: Sequence[RaceImage],
    command: Command,
    env: dict[str, str],
    *,
    timeout: float = 60.0,
    stagger: float = STAGGER,
) -> Round:
    """Every image pushed at once into one repository of a registry on fresh storage: each
    client is started through `startline`, and all are let go together once all are ready."""
    registry = start_registry(workdir)
    processes: list[subprocess.Popen[str]] = []
    # Every wait below ends by the deadline: the watchdog stops whatever is still running.
    watchdog = threading.Timer(timeout, _stop_all, (processes,))
    try:
        watchdog.start()
        for image in images:
            processes.append(
                subprocess.Popen(
                    [*STARTLINE, *command(layout, image, registry)],
                    env=env,
                    cwd=REPO_ROOT,
                    text=True,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        for process in processes:
            assert process.stdout is not None
            process.stdout.readline()  # "ready", or "" when it ended before
        started = time.monotonic()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
            time.sleep(stagger)
        outcomes = []
        for image, process in zip(images, processes, strict=True):
            _, stderr = process.communicate()
            outcomes.append(Outcome(image, process.returncode, stderr))
        seconds = time.monotonic() - started
        if not watchdog.is_alive():
            raise TimeoutError(f"a round of pushes took longer than {timeout:g} s")
        for outcome in outcomes:
            outcome.found = read_back(registry, outcome.image.ref)
        log_text = registry.log_path.read_text(errors="replace")
    finally:
        watchdog.cancel()
        _stop_all(processes)
        registry.stop()
    return Round(outcomes, seconds, log_text)


def _stop_all(processes: Sequence[subprocess.Popen[str]]) -> None:
    for process in processes:
        stop_process(process)  # type: ignore[arg-type]  # str or bytes pipes alike


def read_back(registry: Registry, tag: str, *, repository: str = REPOSITORY) -> str | None:
    """The digest skopeo finds at the tag, None when it finds nothing."""
    result = subprocess.run(
        [
            "skopeo", "inspect", "--tls-verify=false",
            "--creds", f"{registry.username}:{registry.password}",
            f"docker://{registry.host}/{repository}:{tag}",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    return str(json.loads(result.stdout)["Digest"])


def xacct_copy(cli: Sequence[str]) -> Command:
    """`gitlab-xacct copy oci:LAYOUT:REF docker://HOST/team/race:REF --dest-creds ...`."""

    def argv(layout: Path, image: RaceImage, registry: Registry) -> list[str]:
        creds = f"{registry.username}:{registry.password}"
        destination = f"docker://{registry.host}/{REPOSITORY}:{image.ref}"
        return [*cli, "copy", f"oci:{layout}:{image.ref}", destination, "--dest-creds", creds]

    return argv


def skopeo_copy(layout: Path, image: RaceImage, registry: Registry) -> list[str]:
    """skopeo doing the same copy."""
    creds = f"{registry.username}:{registry.password}"
    destination = f"docker://{registry.host}/{REPOSITORY}:{image.ref}"
    return [
        "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
        f"oci:{layout}:{image.ref}", destination,
    ]  # fmt: skip
