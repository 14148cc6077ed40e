"""Concurrent pushes sharing layers, ours beside skopeo's, in one run (docs/reliability.md).

`PYTHONPATH=. .venv/bin/python -m bench.race [--rounds 8]`: each round, eight clients copy their
image (four shared base layers plus one of their own) at once into one repository of a fresh
docker-registry, first `gitlab-xacct copy`, then `skopeo copy` the same way; every tag is read
back with skopeo. Prints, per client, the pushes lost (non-zero exit, or a tag not at its
digest), the manifests we sent again after the registry lost a blob and the requests we sent
again after a 5xx (the registry's answer to a HEAD that reads a link file being rewritten).
Not part of `make bench`: it measures a registry's race, not speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.standins.race import (
    Command,
    run_round,
    skopeo_copy,
    write_race_layout,
    xacct_copy,
)

CLIENTS = 8
CLI = str(Path(sys.executable).with_name("gitlab-xacct"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    rounds = parser.parse_args().rounds
    clients: dict[str, Command] = {"gitlab-xacct": xacct_copy([CLI]), "skopeo": skopeo_copy}
    lost = dict.fromkeys(clients, 0)
    healed = dict.fromkeys(clients, 0)
    retried = dict.fromkeys(clients, 0)
    errors: dict[str, list[str]] = {name: [] for name in clients}
    seconds = dict.fromkeys(clients, 0.0)
    with tempfile.TemporaryDirectory(prefix="race-") as scratch:
        root = Path(scratch)
        images = write_race_layout(root / "layout", CLIENTS)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}
        for number in range(rounds):
            for name, command in clients.items():  # alternated, so both see the same machine
                started = time.monotonic()
                found = run_round(root / f"{name}-{number}", root / "layout", images, command, env)
                seconds[name] += time.monotonic() - started
                lost[name] += len(found.failed)
                errors[name] += [o.stderr.strip().splitlines()[-1:][0] for o in found.failed
                                 if o.stderr.strip()]  # fmt: skip
                retried[name] += sum(o.stderr.count("; trying again in") for o in found.outcomes)
                healed[name] += sum(o.stderr.count("sending the manifest again")
                                    for o in found.outcomes)  # fmt: skip
    total = rounds * CLIENTS
    for name in clients:
        print(f"{name}: {lost[name]} of {total} pushes lost, {healed[name]} manifests sent "
              f"again after a lost blob, {retried[name]} requests retried after a 5xx, "
              f"{seconds[name]:.1f} s for {rounds} rounds")  # fmt: skip
        for line in errors[name]:
            print(f"  {line[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
