"""Run one command and report its resource use: `python -I -S launch.py OUT TIMEOUT -- ARGV...`.

The benchmark cannot start measured commands itself: Linux carries the old address space's peak
RSS across exec (and subprocess's vfork shares the parent's), so every command would report at
least the benchmark's own peak. This small interpreter forks the command and reports, in OUT,
its wall clock, peak RSS (KiB), user and system CPU seconds, from wait4. The floor it adds is
the forked copy of this interpreter, about 7 MiB, below anything measured here.
"""

import os
import signal
import sys
import time
from types import FrameType


def main() -> int:
    out, timeout, separator, *argv = sys.argv[1:]
    if separator != "--" or not argv:
        sys.exit("usage: launch.py OUT TIMEOUT -- ARGV...")
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)  # noqa: S606 - an argument list, no shell
        finally:
            os._exit(127)

    def expire(signum: int, frame: FrameType | None) -> None:
        os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(timeout))
    _, status, usage = os.wait4(pid, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)
    wall = time.perf_counter() - start
    with open(out, "w", encoding="ascii") as report:
        report.write(f"{wall} {usage.ru_maxrss} {usage.ru_utime} {usage.ru_stime}\n")
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
