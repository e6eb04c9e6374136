"""Process-level runtime tuning for CPU training.

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and
returns it with ``munmap`` when freed, so each full-batch ``[B, T, N]`` temporary (47 MB at the SC
shape B = 835, T = 219, N = 65) is page-faulted in again on every use: measured on the 2-core CI
machine, a full-batch EIRNN forward+backward took 374 ms with the default allocator and 111 ms
after :func:`tune_cpu_allocator`. The setting is process-wide, so the library never applies it on
import; the ``eirnn-fast`` command line applies it, and library users opt in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def tune_cpu_allocator(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 30) -> bool:
    """Keep large CPU tensors on the glibc heap (``mallopt``) so freed blocks are reused.

    Args:
        mmap_threshold: allocations above this many bytes still use ``mmap`` (default 1 GiB).
        trim_threshold: free heap memory kept before returning it to the OS (default 1 GiB).

    Returns:
        True when applied (Linux with glibc), False elsewhere (nothing changes).
    """
    global _applied
    if not sys.platform.startswith("linux"):
        return False
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if not isinstance(value, int) or value <= 0 or value >= 2**31:
            raise ValueError(f"{name} must be a positive int below 2**31 bytes, got {value!r}")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    _applied = _applied or ok
    return ok


def allocator_tuned() -> bool:
    """Whether :func:`tune_cpu_allocator` has been applied in this process."""
    return _applied


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of ``workers`` parallel runs: ``OMP_NUM_THREADS`` when the user set it
    (a positive integer), else ``cores // workers`` (at least 1). Without the first rule,
    ``--workers 1`` on a machine shared with other jobs took every core: measured on the 2-core dev
    machine with two other processes busy, an SC epoch went from 0.1 s to 3.8 s at 2 threads."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))
