"""Start several clients at one instant: `python -m tests.standins.startline -- ARGV...`.

Parallel CI jobs start their pushes within milliseconds of each other; eight Python processes
started on a small, busy machine are spread over a second or more by their imports alone, and
the later ones then find every blob uploaded. So this launcher does the slow part first: for
`gitlab-xacct`, it imports the CLI and the copy path; then it prints `ready`, waits for a line
on stdin (the start signal, one for all), and runs the CLI's own entry point with ARGV, or
execs ARGV for any other program (skopeo starts in milliseconds anyway).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path


def main() -> None:
    separator, *argv = sys.argv[1:]
    if separator != "--" or not argv:
        sys.exit("usage: python -m tests.standins.startline -- ARGV...")
    ours = Path(argv[0]).name == "gitlab-xacct"
    if ours:  # the imports a copy makes, before the start signal rather than after it
        for module in ("gitlab_xacct.jobs.copy", "gitlab_xacct.registry.push"):
            importlib.import_module(module)
        from gitlab_xacct.cli import entry
    print("ready", flush=True)
    sys.stdin.readline()
    if not ours:
        os.execvp(argv[0], argv)  # noqa: S606 - an argument list, no shell
    sys.argv = argv
    entry()


if __name__ == "__main__":
    main()
