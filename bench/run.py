"""`make bench` (or `python -m bench.run`): measure, then write docs/benchmarks.md and
bench/results/latest.json.

    python -m bench.run                      # every scenario, 5 runs each
    python -m bench.run --scenario 1,5 --runs 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import report
from bench.images import build_layered_image
from bench.measure import BenchError
from bench.peers import BIN, Registries, build_accounts
from bench.scenarios import GITLAB_XACCT, SCENARIOS, Context, run_all
from tests.standins.servers import StandinError, start_moto

TOOLS = ("docker-registry", "htpasswd", "skopeo")
NEEDS_COPY = frozenset({1, 2, 3, 6})


def say(text: str) -> None:
    print(text, flush=True)


def _numbers(values: Sequence[str]) -> list[int]:
    numbers: set[int] = set()
    for value in values:
        for item in value.split(","):
            if not item.strip().isdigit() or int(item) not in SCENARIOS:
                raise argparse.ArgumentTypeError(f"--scenario: {item!r} is not one of 1-7")
            numbers.add(int(item))
    return sorted(numbers) or sorted(SCENARIOS)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per series (default 5)")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="N[,N]",
        help="scenarios to run, 1-7 (default: all); others keep their earlier results",
    )
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (default 1)")
    parser.add_argument(
        "--big-runs", type=int, help="measured runs of scenario 6 (default: --runs)"
    )
    parser.add_argument(
        "--big-mib", type=int, default=1024, help="size of scenario 6's layer (default 1024)"
    )
    parser.add_argument("--workdir", type=Path, help="where images and registries go (temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and its logs")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave the doc and the JSON alone"
    )
    args = parser.parse_args(argv)
    try:
        args.numbers = _numbers(args.scenario)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.runs < 1 or args.warmup < 0 or (args.big_runs is not None and args.big_runs < 1):
        parser.error("--runs and --big-runs must be at least 1, --warmup at least 0")
    return args


def preflight(numbers: Sequence[int]) -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    missing += [str(p) for p in (BIN / "gitlab-xacct", BIN / "aws") if not p.exists()]
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: run `make bench`, which installs them")
    if NEEDS_COPY & set(numbers):
        probe = subprocess.run(
            [GITLAB_XACCT, "copy", "--help"], capture_output=True, timeout=60, check=False
        )
        if probe.returncode != 0:
            raise BenchError(
                "`gitlab-xacct copy` is not available in this checkout; scenarios "
                f"{sorted(NEEDS_COPY & set(numbers))} need it (run --scenario 4,5 meanwhile)"
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    load_at_start = os.getloadavg()[0]
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    try:
        preflight(args.numbers)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="xacct-bench-", dir=args.workdir))
    say(f"bench: scenarios {args.numbers}, {args.runs} runs, work folder {work}")
    try:
        outcomes = measure(args, work)
    except (BenchError, StandinError) as exc:
        print(f"bench: {exc}\n(work folder kept: {work})", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    for outcome in outcomes:
        outcome["run_started_at"] = started_at  # tells runs apart once results are merged
    document = {
        "started_at": started_at,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "make bench" if argv is None and not sys.argv[1:] else _command(args),
        "runs": args.runs,
        "warmup": args.warmup,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": report.machine(),
        "load_average": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
        "scenarios": outcomes,
    }
    if not args.no_write:
        document = report.merge(report.load_previous(), document)
        report.write_json(document)
        report.write_doc(document)
        say(f"bench: wrote {report.JSON_PATH} and {report.DOC_PATH}")
    for scenario in document["scenarios"]:
        for target in [scenario["target"], *scenario.get("also", [])]:
            mark = "PASS" if target["met"] else "MISS"
            say(
                f"  {scenario['number']} {mark} {target['measure']}: {target['value']:.3f} "
                f"{target['unit']} (target ≤ {target['limit']:g})"
            )
    say(f"bench: done in {time.monotonic() - started:.0f} s")
    return 0


def _command(args: argparse.Namespace) -> str:
    parts = ["python -m bench.run", f"--runs {args.runs}"]
    if args.numbers != sorted(SCENARIOS):
        parts.append("--scenario " + ",".join(map(str, args.numbers)))
    if args.big_runs is not None:
        parts.append(f"--big-runs {args.big_runs}")
    if args.big_mib != 1024:
        parts.append(f"--big-mib {args.big_mib}")
    if args.warmup != 1:
        parts.append(f"--warmup {args.warmup}")
    return shlex.join(parts).replace("'", "")


def measure(args: argparse.Namespace, work: Path) -> list[dict[str, object]]:
    home = work / "home"
    home.mkdir()
    say("bench: building the 200 MiB image (4 x 50 MiB random layers)")
    image = build_layered_image(work / "image")
    with start_moto(work / "moto") as moto:
        keys = build_accounts(moto.url)
        ctx = Context(
            work=work,
            home=home,
            runs=args.runs,
            warmup=args.warmup,
            big_runs=args.big_runs or args.runs,
            big_mib=args.big_mib,
            registries=Registries(work / "registries"),
            keys=keys,
            moto_pid=moto.pid,
            image=image,
            say=say,
        )
        return [outcome.as_dict() for outcome in run_all(ctx, args.numbers)]


if __name__ == "__main__":
    sys.exit(main())
