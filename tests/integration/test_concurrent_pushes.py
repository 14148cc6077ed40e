"""Eight `gitlab-xacct copy` at once into one repository of a real docker-registry, their images
sharing four base layers: distribution's storage loses races between concurrent uploads of one
blob, and no push may be lost to it (tests/standins/race.py runs the rounds)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from tests.imagefactory import random_layer, write_oci_layout
from tests.integration.conftest import CLI
from tests.standins.faultproxy import FaultProxy, RequestInfo
from tests.standins.race import read_back, run_round, write_race_layout, xacct_copy
from tests.standins.servers import Registry

Run = subprocess.CompletedProcess[str]

CLIENTS = 8
ROUNDS = 8  # each on fresh storage: 64 pushes


def test_eight_concurrent_copies_sharing_layers_all_land_at_their_digests(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    images = write_race_layout(layout, CLIENTS)
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    started = time.monotonic()
    failed, healed = [], 0
    for number in range(ROUNDS):
        found = run_round(tmp_path / f"round-{number}", layout, images, xacct_copy([CLI]), env)
        failed += [(number, o.image.ref, o.returncode, o.stderr[-400:]) for o in found.failed]
        healed += sum(o.stderr.count("sending the manifest again") for o in found.outcomes)
        for outcome in found.outcomes:
            assert "Traceback" not in outcome.stderr
    # Every push exited 0 and skopeo finds every tag at its image's digest.
    assert failed == [], f"{len(failed)} of {CLIENTS * ROUNDS} pushes lost: {failed}"
    assert time.monotonic() - started < 150
    print(f"{CLIENTS * ROUNDS} pushes, {healed} manifests sent again after a lost blob")


def _blob_unknown(named: str) -> str:
    """docker-registry's own answer when it read an empty link file."""
    return json.dumps({"errors": [
        {"code": "DIGEST_INVALID", "message": "provided digest did not match uploaded content"},
        {"code": "MANIFEST_BLOB_UNKNOWN", "message": "blob unknown to registry", "detail": named},
    ]})  # fmt: skip


def _copy(layout: Path, destination: str, registry: Registry, home: Path, **env: str) -> Run:
    creds = f"{registry.username}:{registry.password}"
    result = subprocess.run(
        [CLI, "copy", f"oci:{layout}:v1", destination, "--dest-creds", creds],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert registry.password not in result.stdout + result.stderr
    return result


def test_a_blob_the_registry_lost_is_sent_again_before_the_manifest(
    registry: Registry, tmp_path: Path
) -> None:
    """The registry really loses the blob: its link file is removed as the manifest PUT
    arrives, and that PUT gets docker-registry's refusal."""
    info = write_oci_layout(tmp_path / "layout", [random_layer(300_000, seed=71), b"own"], ref="v1")
    lost = info.layer_digests[0]
    link = (registry.log_path.parent / "registry-data/docker/registry/v2/repositories/team"
            / "lost/_layers/sha256" / lost.removeprefix("sha256:") / "link")  # fmt: skip

    def losing(_: RequestInfo) -> bool:
        link.unlink(missing_ok=True)
        return True

    with FaultProxy(registry.url) as proxy:
        proxy.fail_next(
            1, status=400, body=_blob_unknown(lost), method="PUT",
            path=re.compile("/manifests/"), predicate=losing,
        )  # fmt: skip
        host = proxy.url.removeprefix("http://")
        result = _copy(tmp_path / "layout", f"docker://{host}/team/lost:v1", registry, tmp_path)
        heads = proxy.route_count("HEAD", f"/v2/team/lost/blobs/{lost}")
    assert result.returncode == 0, result.stderr
    assert f"blob {lost} was missing, sent again; sending the manifest again" in result.stderr
    assert heads == 2  # the push's own, and the one after the refusal
    assert link.exists()
    assert read_back(registry, "v1", repository="team/lost") == info.manifest_digest


def test_a_blob_refused_past_the_bound_is_exit_5_in_one_line_and_no_tag(
    registry: Registry, tmp_path: Path
) -> None:
    info = write_oci_layout(tmp_path / "layout", [b"base", b"own"], ref="v1")
    named = info.layer_digests[1]
    with FaultProxy(registry.url) as proxy:
        proxy.fail_next(
            100, status=400, body=_blob_unknown(named), method="PUT",
            path=re.compile("/manifests/"),
        )  # fmt: skip
        host = proxy.url.removeprefix("http://")
        result = _copy(
            tmp_path / "layout", f"docker://{host}/team/refused:v1", registry, tmp_path,
            XACCT_RETRIES="1",
        )  # fmt: skip
        puts = proxy.route_count("PUT", "/v2/team/refused/manifests/v1")
    assert result.returncode == 5
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [
        f"gitlab-xacct: error: registry {host}: PUT of manifest v1 failed after 2 attempts (last "
        f"answer: HTTP 400: DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN): it does not know blob "
        f"{named}, though each time it lacked one it was sent again; check the registry's "
        "storage and logs, try again later, or raise XACCT_RETRIES"
    ]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert puts == 2
    assert read_back(registry, "v1", repository="team/refused") is None
