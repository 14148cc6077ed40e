"""Keep freed 1 MiB transfer buffers for reuse instead of returning them to the kernel.

Each chunk of a blob passes through a few short-lived 1 MiB buffers. glibc serves those from
mmap or trims them off the heap once freed (upload threads get their own arenas, which shrink
eagerly), so every chunk faults in fresh zeroed pages: measured, about three page faults per
KiB moved registry to registry. Raising the mmap and trim thresholds keeps the pages mapped.
Only glibc has mallopt; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 64 * 1024 * 1024  # above any buffer we allocate; below that, reuse


def keep_transfer_buffers() -> None:
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, _THRESHOLD)
