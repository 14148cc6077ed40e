"""Whole-process measurements: wall clock, peak RSS and CPU time of one command.

Each command runs under launch.py, which forks it from a small interpreter and reads its
rusage with wait4 (see there for why the benchmark does not start it directly). Peak RSS is
the kernel's high-water mark of the process and of the descendants it waited for: for the
shell recipe, the largest of aws, aws and skopeo. `resource.getrusage(RUSAGE_CHILDREN)` cannot
be used per run: its `ru_maxrss` is a maximum over every child ever reaped, so a delta only
shows a run that beat all earlier ones.

Around each run it also reads the CPU time of the stand-ins it talks to (registries, moto) from
/proc/PID/stat, and the machine's busy time from /proc/stat: what is left after the command and
the stand-ins is CPU that other processes took from the run (the benchmark idles meanwhile).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("launch.py")


class BenchError(RuntimeError):
    """A measured command failed or a peer did not start; the message says which and where."""


_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    wall_s: float
    max_rss_mib: float
    user_s: float
    sys_s: float
    peer_cpu_s: float = 0.0  # the stand-ins' CPU during the run
    busy_s: float = 0.0  # the whole machine's busy CPU during the run

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def other_cpu_s(self) -> float:
        return max(self.busy_s - self.cpu_s - self.peer_cpu_s, 0.0)

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (not idle, not waiting for I/O)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    guests = sum(fields[8:10])  # guest time is already counted in user and nice
    return (sum(fields) - idle - guests) / _TICKS


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one live process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path,
    peers: Sequence[int] = (),
    timeout: float = 600.0,
) -> Sample:
    """Run `argv` to completion with output to `log`; raise BenchError unless it exits 0.

    `peers` are the pids of the stand-ins the command talks to, whose CPU time is recorded.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    usage = log.with_suffix(".usage")
    launcher = [sys.executable, "-I", "-S", str(LAUNCHER), str(usage), str(timeout), "--"]
    peer_before = sum((process_cpu_seconds(pid) for pid in peers), 0.0)
    busy_before = machine_busy_seconds()
    with log.open("wb") as out:
        done = subprocess.run(
            [*launcher, *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            timeout=timeout + 30,  # the launcher kills the command at `timeout` itself
            check=False,
        )
    busy = machine_busy_seconds() - busy_before
    peer = sum((process_cpu_seconds(pid) for pid in peers), 0.0) - peer_before
    if done.returncode != 0:
        raise BenchError(
            f"{' '.join(argv[:3])} ... exited {done.returncode}; log {log}:\n{tail(log)}"
        )
    wall, max_rss_kib, user, system = usage.read_text().split()
    return Sample(
        wall_s=float(wall),
        max_rss_mib=int(max_rss_kib) / 1024,  # KiB on Linux
        user_s=float(user),
        sys_s=float(system),
        peer_cpu_s=peer,
        busy_s=busy,
    )


@dataclass(frozen=True)
class Summary:
    """Median and spread of one measure over the runs of one series."""

    median: float
    minimum: float
    maximum: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise BenchError("no samples to summarise")
        ordered = sorted(values)
        if len(ordered) > 1:
            q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        else:
            q1 = q3 = ordered[0]
        return cls(statistics.median(ordered), ordered[0], ordered[-1], q1, q3)

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


@dataclass
class Series:
    """The runs of one command (ours, skopeo, the recipe, ...) within one scenario."""

    name: str
    command: str
    samples: list[Sample]

    def summary(self, measure: str) -> Summary:
        return Summary.of([float(getattr(s, measure)) for s in self.samples])

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "command": self.command,
            "runs": len(self.samples),
            "wall_s": self.summary("wall_s").as_dict(),
            "max_rss_mib": self.summary("max_rss_mib").as_dict(),
            "cpu_s": Summary.of([s.cpu_s for s in self.samples]).as_dict(),
            "peer_cpu_s": Summary.of([s.peer_cpu_s for s in self.samples]).as_dict(),
            "other_cpu_s": Summary.of([s.other_cpu_s for s in self.samples]).as_dict(),
            "samples": [s.as_dict() for s in self.samples],
        }
