"""Keep freed tensor memory in the process (glibc), which makes CPU evaluation up to ~2x faster.

An evaluation allocates and frees the same large activations every segment. glibc's malloc serves
blocks above its mmap threshold with fresh mappings and trims freed heap tops back to the OS, so
every segment page-faults (and zeroes) its activations again; on virtual machines that reclaim
memory this costs more than the arithmetic. Raising the thresholds helps only up to glibc's cap of
32 MiB: a larger block (a 512-trajectory mlp_t activation is 42 MiB) is still mapped afresh each
time, and an evaluation spent 32 of its 45 s in the kernel on 15 million page faults. So large
blocks come from the heap too (no mmap), and freed ones stay there for reuse (trim threshold
1 GiB); benchmarks/README.md ("CPU threads") has the measurement. Linux with glibc only; settings
the user gives through MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_MAX_ are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 1 << 30
ENV_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_")


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds; True when they were set."""
    if not sys.platform.startswith("linux") or any(k in os.environ for k in ENV_SETTINGS):
        return False
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "gnu_get_libc_version"):  # musl and others: their own allocator
        return False
    done = all(libc.mallopt(option, value) == 1 for option, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_MMAP_MAX, 0)))
    if done:
        log.debug("allocator: glibc keeps freed blocks (no mmap for large blocks, trim threshold 1 GiB)")
    return done
