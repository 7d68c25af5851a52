"""Keep freed tensor memory in the process instead of handing it back to the OS.

Each message-passing layer allocates and frees several ``nodes x batch x dim``
tensors (megabytes each). With glibc's defaults such blocks are ``mmap``-ed
and unmapped again (or trimmed off the heap top), so every layer pays page
faults to zero fresh pages: on a 2-core CPU this was more than half of the
evaluation time of a GraIL graph (docs/BENCHMARKS.md). Raising the mmap and
trim thresholds lets the heap reuse those blocks.

It is a process-wide setting, so the library never applies it on import: the
``tofu`` commands and the benchmarks call :func:`retain_freed_memory`; code
using the Python API may call it too.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20     # glibc's ceiling for this option; bigger tensors are still mmap-ed
_TRIM_THRESHOLD = 1 << 30      # return heap memory to the OS only past 1 GiB of free top

_applied = False


def retain_freed_memory() -> bool:
    """Tune glibc malloc so freed blocks up to 32 MiB are reused; True if applied.

    A no-op (False) off Linux/glibc. Safe to call more than once.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _applied
