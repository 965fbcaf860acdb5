"""glibc's malloc, tuned for batched views on a CPU device.

Each op of the batched chain makes a new tensor of the batch's size (512 views of 32 px: 6 MiB;
16 of 224 px: 10 MiB). glibc serves blocks over its mmap threshold with fresh pages and gives them
back on free, and trims the top of its heap when more than its trim threshold is free, so the
next step page-faults the same memory in again: measured on a 2-core machine, a third of the
chain's time, and run-to-run swings of 1.5×. :func:`keep_freed_memory` raises both thresholds
once per process (``mallopt``), the advice PyTorch's CPU performance guide gives with jemalloc
or tcmalloc; the process keeps up to ``trim_mib`` of freed memory for reuse. Elsewhere than
glibc, or with ``CONTRAST_DEFAULT_MALLOC=1``, nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_done = False


def keep_freed_memory(mmap_mib: int = 64, trim_mib: int = 256) -> bool:
    """Raise glibc's mmap threshold to ``mmap_mib`` and its trim threshold to ``trim_mib`` MiB, once
    per process; True when it did (now or before)."""
    global _done
    if _done or os.environ.get("CONTRAST_DEFAULT_MALLOC") == "1":
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, mmap_mib << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_mib << 20))
    return _done
