"""Keep freed tensor memory in the process instead of handing it back to the OS.

Each message-passing layer allocates and frees several ``nodes x batch x dim``
tensors (megabytes each). With glibc's defaults such blocks are ``mmap``-ed
and unmapped again (or trimmed off the heap top), so every layer pays page
faults to zero fresh pages: on a 2-core CPU this was more than half of the
evaluation time of a GraIL graph (docs/BENCHMARKS.md). Serving every block
from the heap and raising the trim threshold lets the heap reuse them.

Training keeps bigger tensors alive for autograd (a layer's per-pair messages
on fb237_v4: ``21,504 x 16 x 64`` floats, 88 MB), past the 32 MiB that glibc's
mmap threshold can be raised to; so mmap is switched off altogether
(``M_MMAP_MAX = 0``): a fb237_v4 training step took 2.31 s with the threshold
alone and 1.18 s with mmap off, for 18% more peak memory (docs/BENCHMARKS.md,
"Training steps and the allocator").

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
_M_MMAP_MAX = -4
_MMAP_THRESHOLD = 32 << 20     # glibc's ceiling for this option
_TRIM_THRESHOLD = 1 << 30      # return heap memory to the OS only past 1 GiB of free top

_applied = False


def retain_freed_memory(any_size: bool = True) -> bool:
    """Tune glibc malloc so that freed blocks are reused; True if applied.

    ``any_size=False`` keeps mmap for blocks over 32 MiB (the setting before
    mmap was switched off; benchmarks/train_step_bench.py compares the two).
    A no-op (False) off Linux/glibc. Safe to call more than once; the first
    call that applies decides.
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
    # M_MMAP_MAX = 0: no block is mmap-ed, whatever its size; the heap serves them all.
    _applied = all(mallopt(option, value) for option, value in ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD),
                                                                  *([(_M_MMAP_MAX, 0)] if any_size else []),
                                                                  (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)))
    return _applied
