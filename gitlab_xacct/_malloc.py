"""Keep freed 1 MiB transfer buffers for reuse instead of returning them to the kernel.

Each chunk of a blob passes through a few short-lived 1 MiB buffers. glibc serves those from
mmap or trims them off the heap once freed (upload threads get their own arenas, which shrink
eagerly), so every chunk faults in fresh zeroed pages: measured, about three page faults per
KiB moved registry to registry. Raising the mmap and trim thresholds keeps the pages mapped.
Only glibc has mallopt; elsewhere this does nothing.
"""

from __future__ import annotations

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 64 * 1024 * 1024  # above any buffer we allocate; below that, reuse


def keep_transfer_buffers() -> None:
    import ctypes  # here: a run with nothing to send never pays for it (3 ms)

    # The process's own symbols: no ldconfig subprocess (find_library) on every start.
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, _THRESHOLD)
