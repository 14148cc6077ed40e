"""Profile one gitlab-xacct command in-process, every thread included.

    python -m bench.threadprof [--out FILE.prof] [--top N] -- copy SRC DEST --dest-creds U:P

`python -m cProfile` sees only the main thread, which in a push just waits for the upload
threads; here each thread gets its own profiler and the stats are merged. The figures are wall
time inside each function (a thread waiting in sendall or for the GIL counts), so read them with
the CPU columns of docs/benchmarks.md, and `perf stat` for page faults and system time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.threadprof")
    parser.add_argument("--out", type=Path, help="also write the merged stats here (pstats)")
    parser.add_argument("--top", type=int, default=25, help="functions to print (default 25)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then gitlab-xacct's argv")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the gitlab-xacct command after --")

    profiles: list[tuple[str, cProfile.Profile]] = []
    original_run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append((thread.name, profile))
        profile.runcall(original_run, thread)

    threading.Thread.run = profiled_run  # type: ignore[method-assign,assignment]
    main_profile = cProfile.Profile()
    started = time.perf_counter()
    try:
        # Imported under the profiler: start-up is part of what a job pays.
        code = main_profile.runcall(_run_cli, command)
    finally:
        threading.Thread.run = original_run  # type: ignore[method-assign]
    wall = time.perf_counter() - started
    stats = pstats.Stats(main_profile, stream=sys.stderr)
    for _, profile in profiles:
        stats.add(profile)
    if args.out:
        stats.dump_stats(args.out)
    print(f"\n{len(profiles)} threads besides main; {wall:.3f} s in-process", file=sys.stderr)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    return code


def _run_cli(command: list[str]) -> int:
    from gitlab_xacct.cli import main as cli_main

    return cli_main(command)


if __name__ == "__main__":
    sys.exit(main())
