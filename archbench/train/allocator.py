"""glibc malloc settings for a training process: freed memory stays in the heap, and the heap is in huge pages.

A CPU training step allocates and frees the same activations and gradients every step (the default proxy
run's stem maps alone are 6 MiB each: 16 x 24 x 64 x 64 float32). glibc's defaults hand such blocks back to the
kernel when they are freed (blocks above the mmap threshold, 128 KiB at start and at most 32 MiB, are unmapped;
the free top of the heap is trimmed past 128 KiB), so the next step faults the same pages in again and the
kernel zeroes them: about 3,400 minor page faults per step of the default run. :func:`tune_malloc` serves every
block below :data:`MMAP_THRESHOLD` from the heap, never trims it, and asks the kernel to back the heap with
2 MiB transparent huge pages (``madvise(MADV_HUGEPAGE)``, honoured where transparent huge pages are in
``always`` or ``madvise`` mode), which takes TLB misses out of the memory-bound kernels (BatchNorm, ReLU,
pooling, layout copies). Only where memory comes from changes, never the arithmetic: results are the same bit
for bit. The price is memory: the process keeps the heap at its peak size until it exits.

The settings are process-wide, applied once per process, and only on Linux with glibc (elsewhere nothing is
changed). ``docs/performance.md`` ("Memory: malloc settings") has the measurements.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import sys

#: mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: madvise advice asking for transparent huge pages (Linux's mman.h).
MADV_HUGEPAGE = 14
#: Blocks at least this large are still mapped on their own (bytes); everything smaller comes from the heap.
MMAP_THRESHOLD = 2**30
#: Free memory at the heap's top above this is returned to the kernel (bytes): the largest value mallopt takes.
TRIM_THRESHOLD = 2**31 - 1
#: What the heap grows by beyond each request (bytes): one growth holds a run's working set, in one advised range.
TOP_PAD = 2**30


def heap_range(maps: str) -> tuple[int, int] | None:
    """(start, end) addresses of the ``[heap]`` mapping in the text of ``/proc/<pid>/maps``; None without one."""
    for line in maps.splitlines():
        fields = line.split()
        if fields and fields[-1] == "[heap]":
            start, end = (int(part, 16) for part in fields[0].split("-"))
            return start, end
    return None


@functools.cache
def tune_malloc() -> bool:
    """Apply the settings of this module to this process (once); whether they took (False off Linux or glibc).

    The heap is grown by :data:`TOP_PAD` first (one block allocated and freed: untouched pages cost no memory),
    so that the range advised for huge pages covers what training will use; growth beyond it still comes from the
    heap, without the advice.
    """
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None, use_errno=True)  # the C library this process already runs on
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    if not all(libc.mallopt(param, value) == 1 for param, value in settings):
        return False
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    libc.free(libc.malloc(64 * 2**20))  # below the threshold now: the heap grows by it and TOP_PAD, and keeps it
    with open("/proc/self/maps") as maps:
        heap = heap_range(maps.read())
    if heap is not None:
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.madvise(heap[0], heap[1] - heap[0], MADV_HUGEPAGE)  # a kernel without THP refuses: no harm done
    return True
