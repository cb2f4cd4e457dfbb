"""Keep a stage's resident memory at its working set, however many blocks it goes through.

glibc's allocator serves a block of at least its mmap threshold by mmap, returned to the system
when freed, and smaller ones from its heap. The threshold starts at 128 KB and rises (up to
32 MB) each time such a block is freed, so a process that allocates and frees blocks of a few
MB over and over (a block of frames, a batch of patches through the model) soon serves them
from its heap, where fragmentation lets the resident set creep up with the number of blocks.
On the scenes of `python -m vad bench scale`, with nothing more held, the peak of scoring the
GMFC-VAE motion stream grew from 694 MB at 1x to 807 MB at 16x, and that of drawing its
training patches from 182 MB to 210 MB; with the threshold set (which also stops it moving)
they are 641 and 646 MB, 154 and 165 MB, at no measurable cost in time. Stages call
`fixed_mmap_threshold()` first; other C libraries are left as they are.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 4 * 2**20
ENVIRONMENT = "MALLOC_MMAP_THRESHOLD_"  # the same, read by glibc when a process starts


def fixed_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Serve blocks of `threshold` bytes and more by mmap in this process (glibc's mallopt)
    and in the worker processes it starts (the environment variable). Returns whether this
    process's allocator took it: False off Linux or glibc, and when the variable was set
    already (glibc took it when the process started: a worker, or the user's choice)."""
    if not sys.platform.startswith("linux") or os.environ.get(ENVIRONMENT):
        return False
    os.environ[ENVIRONMENT] = str(threshold)
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1
